//! Invitation emails over SMTP (`lettre`): when the operator configures a relay
//! (`--smtp-url smtp://relay:25`, `smtps://user:pass@relay:465`, or
//! `smtp://relay:587?tls=required`), `invite create` mails the person their activation code
//! and the enroll command. The code is a secret: it goes to the person's own address only.

use lettre::message::{header::ContentType, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Why an invitation could not be mailed.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid SMTP URL: {0}")]
    Url(String),
    #[error("invalid email address {0:?}")]
    Address(String),
    #[error("building the message failed: {0}")]
    Build(String),
    #[error("the SMTP relay refused or failed: {0}")]
    Send(String),
}

/// An SMTP relay and the sender address.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// What an invitation says.
pub struct Invitation<'a> {
    pub to: &'a str,
    pub user_name: &'a str,
    pub code: &'a str,
    pub command: &'a str,
    pub expires: &'a str,
}

impl Mailer {
    pub fn new(url: &str, from: &str) -> Result<Mailer, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| MailError::Url(e.to_string()))?
            .build();
        let from = from
            .parse()
            .map_err(|_| MailError::Address(from.to_string()))?;
        Ok(Mailer { transport, from })
    }

    /// Sends one invitation.
    pub async fn send(&self, invitation: &Invitation<'_>) -> Result<(), MailError> {
        let to: Mailbox = invitation
            .to
            .parse()
            .map_err(|_| MailError::Address(invitation.to.to_string()))?;
        let body = format!(
            "Hello {user},\n\n\
             Your organisation uses Palisade to set up Claude Code on your computer. To enroll this\n\
             computer as yours, run this in a terminal (administrator rights needed):\n\n\
             {command}\n\n\
             The activation code works once and expires {expires}. If you did not expect this\n\
             message, tell your IT or security team and do not use the code.\n",
            user = invitation.user_name,
            command = invitation.command,
            expires = invitation.expires,
        );
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject("Enroll your computer with Palisade")
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| MailError::Build(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| MailError::Send(e.to_string()))
    }
}
