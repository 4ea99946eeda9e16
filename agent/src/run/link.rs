//! The connection state of the run loop: connecting, streaming, or waiting to retry, and the
//! next event each yields.

use super::*;

/// The policy stream's state.
pub(super) enum Link {
    /// Not connecting: not enrolled, or wiped.
    Idle,
    /// Backing off before the next attempt.
    Waiting(Pin<Box<Sleep>>),
    /// Opening the stream.
    Connecting(ConnectFuture),
    /// Open.
    Up {
        stream: PolicyStream,
        since: Instant,
        healthy: bool,
    },
    /// Our side is closed (after a wipe); waiting for the server to end its side.
    Closing {
        stream: PolicyStream,
        until: Pin<Box<Sleep>>,
    },
}

pub(super) enum LinkEvent {
    Retry,
    Connected(PolicyStream),
    ConnectFailed(StreamError),
    Message(ServerEvent),
    Ended(Option<StreamError>),
    Closed,
}

impl Link {
    /// The next event; cancel-safe (every state keeps its progress).
    pub(super) async fn next(&mut self) -> LinkEvent {
        match self {
            Link::Idle => std::future::pending().await,
            Link::Waiting(sleep) => {
                sleep.as_mut().await;
                LinkEvent::Retry
            }
            Link::Connecting(fut) => match fut.as_mut().await {
                Ok(stream) => LinkEvent::Connected(stream),
                Err(e) => LinkEvent::ConnectFailed(e),
            },
            Link::Up { stream, .. } => match stream.next().await {
                Ok(Some(event)) => LinkEvent::Message(event),
                Ok(None) => LinkEvent::Ended(None),
                Err(e) => LinkEvent::Ended(Some(e)),
            },
            Link::Closing { stream, until } => {
                tokio::select! {
                    () = until.as_mut() => LinkEvent::Closed,
                    () = async { while let Ok(Some(_)) = stream.next().await {} } => LinkEvent::Closed,
                }
            }
        }
    }

    pub(super) fn stream(&self) -> Option<&PolicyStream> {
        match self {
            Link::Up { stream, .. } => Some(stream),
            _ => None,
        }
    }

    pub(super) fn was_healthy(&self) -> bool {
        matches!(self, Link::Up { since, healthy, .. } if *healthy || since.elapsed() >= HEALTHY_AFTER)
    }
}
