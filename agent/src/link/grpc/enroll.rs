//! The enrollment calls: `Enroll` (MDM fleet token plus a person, or an activation code),
//! and the interactive sign-in (`StartSignIn`, then `PollSignIn` until the person confirms).
//! Each is bounded by the enrollment timeout.

use std::time::Duration;

use palisade_proto::v1 as pb;

use super::{refused, ClientError, ServerTarget, AGENT_VERSION, ENROLL_TIMEOUT};

/// What `Enroll` (or a completed sign-in) returned.
#[derive(Clone, PartialEq, Eq)]
pub struct Enrollment {
    /// The server's id for the device.
    pub device_id: String,
    /// The device credential (shown once; empty when an enrolled device was only verified).
    pub device_credential: String,
    /// The organisation.
    pub org_slug: String,
    /// The user, as the server spells it.
    pub user_name: String,
    /// Whether the person is proven (false: MDM enrollment awaiting confirmation).
    pub verified: bool,
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrollment")
            .field("device_id", &self.device_id)
            .field("device_credential", &"<redacted>")
            .field("org_slug", &self.org_slug)
            .field("user_name", &self.user_name)
            .field("verified", &self.verified)
            .finish()
    }
}

impl From<pb::EnrollResponse> for Enrollment {
    fn from(r: pb::EnrollResponse) -> Enrollment {
        Enrollment {
            device_id: r.device_id,
            device_credential: r.device_credential,
            org_slug: r.org_slug,
            user_name: r.user_name,
            verified: r.verified,
        }
    }
}

/// How a device proves whom it belongs to when it enrolls with `Enroll`.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// The MDM fleet token plus the person the MDM names.
    FleetToken {
        /// The organisation's enrollment token.
        token: String,
        /// The person's userName.
        user_name: String,
    },
    /// A per-user activation code.
    ActivationCode(String),
}

/// What the device says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFacts {
    /// This machine's name.
    pub hostname: String,
    /// The installation key (a secret in the state directory) that makes re-enrollment of this
    /// machine renew its device instead of adding one.
    pub install_key: String,
}

async fn with_timeout<T>(
    target: &ServerTarget,
    call: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    tokio::time::timeout(ENROLL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(ClientError::Unreachable {
                url: target.url.clone(),
                message: format!("no answer within {ENROLL_TIMEOUT:?}"),
            })
        })
}

/// Calls `Enroll`.
pub async fn enroll(
    target: &ServerTarget,
    credential: &Credential,
    facts: &DeviceFacts,
) -> Result<Enrollment, ClientError> {
    let call = async {
        let channel = target.connect().await?;
        let mut client = pb::agent_service_client::AgentServiceClient::new(channel);
        let mut request = pb::EnrollRequest {
            hostname: facts.hostname.clone(),
            os: std::env::consts::OS.to_owned(),
            agent_version: AGENT_VERSION.to_owned(),
            install_key: facts.install_key.clone(),
            ..Default::default()
        };
        match credential {
            Credential::FleetToken { token, user_name } => {
                request.enroll_token = token.clone();
                request.user_name = user_name.clone();
            }
            Credential::ActivationCode(code) => request.activation_code = code.clone(),
        }
        let response = client.enroll(request).await.map_err(refused)?.into_inner();
        if response.device_credential.is_empty() || response.device_id.is_empty() {
            return Err(ClientError::Refused {
                code: tonic::Code::Internal,
                message: "the server returned no device id or credential".into(),
            });
        }
        Ok(Enrollment::from(response))
    };
    with_timeout(target, call).await
}

/// What `StartSignIn` returned: what to show the person, and the secret to poll with.
#[derive(Clone, PartialEq, Eq)]
pub struct SignIn {
    /// Secret; poll with it.
    pub device_code: String,
    /// What the person may type.
    pub user_code: String,
    /// The page to open.
    pub verification_uri: String,
    /// The page with the code filled in.
    pub verification_uri_complete: String,
    /// How long the person has.
    pub expires_in: Duration,
    /// How often to poll.
    pub interval: Duration,
}

/// Calls `StartSignIn`. With `device_credential`, the sign-in confirms that enrolled device.
pub async fn start_sign_in(
    target: &ServerTarget,
    org: &str,
    facts: &DeviceFacts,
    device_credential: Option<&str>,
) -> Result<SignIn, ClientError> {
    let call = async {
        let channel = target.connect().await?;
        let mut client = pb::agent_service_client::AgentServiceClient::new(channel);
        let mut request = tonic::Request::new(pb::StartSignInRequest {
            org: org.to_owned(),
            hostname: facts.hostname.clone(),
            os: std::env::consts::OS.to_owned(),
            agent_version: AGENT_VERSION.to_owned(),
            install_key: facts.install_key.clone(),
        });
        if let Some(credential) = device_credential {
            let value =
                format!("Bearer {credential}")
                    .parse()
                    .map_err(|_| ClientError::Refused {
                        code: tonic::Code::InvalidArgument,
                        message: "the device credential is not valid metadata".into(),
                    })?;
            request.metadata_mut().insert("authorization", value);
        }
        let r = client
            .start_sign_in(request)
            .await
            .map_err(refused)?
            .into_inner();
        Ok(SignIn {
            device_code: r.device_code,
            user_code: r.user_code,
            verification_uri: r.verification_uri,
            verification_uri_complete: r.verification_uri_complete,
            expires_in: Duration::from_secs(u64::try_from(r.expires_in_seconds).unwrap_or(600)),
            interval: Duration::from_secs(
                u64::try_from(r.interval_seconds).unwrap_or(5).clamp(1, 60),
            ),
        })
    };
    with_timeout(target, call).await
}

/// What one `PollSignIn` learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// Not yet.
    Pending,
    /// Poll slower.
    SlowDown,
    /// Done: a new device, or (empty credential) the enrolled device is now verified.
    Done(Enrollment),
}

/// Calls `PollSignIn` once.
pub async fn poll_sign_in(
    target: &ServerTarget,
    device_code: &str,
    facts: &DeviceFacts,
) -> Result<Poll, ClientError> {
    use pb::poll_sign_in_response::State;
    let call = async {
        let channel = target.connect().await?;
        let mut client = pb::agent_service_client::AgentServiceClient::new(channel);
        let r = client
            .poll_sign_in(pb::PollSignInRequest {
                device_code: device_code.to_owned(),
                install_key: facts.install_key.clone(),
                hostname: facts.hostname.clone(),
                os: std::env::consts::OS.to_owned(),
                agent_version: AGENT_VERSION.to_owned(),
            })
            .await
            .map_err(refused)?
            .into_inner();
        Ok(
            match State::try_from(r.state).unwrap_or(State::Unspecified) {
                State::Pending | State::Unspecified => Poll::Pending,
                State::SlowDown => Poll::SlowDown,
                State::Enrolled | State::Verified => match r.enrollment {
                    Some(e) => Poll::Done(Enrollment::from(e)),
                    None => {
                        return Err(ClientError::Refused {
                            code: tonic::Code::Internal,
                            message: "the server finished the sign-in without an enrollment".into(),
                        })
                    }
                },
            },
        )
    };
    with_timeout(target, call).await
}
