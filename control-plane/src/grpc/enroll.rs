//! The enrollment RPCs: `Enroll` (MDM fleet token plus a claimed person, or a per-user
//! activation code), `StartSignIn` and `PollSignIn` (interactive sign-in on the control
//! plane's pages). Every refusal gets the same status and message; the reason goes to the log
//! and, once an organisation is known, to its audit trail.

use palisade_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::service::{bearer, internal, AgentGrpc};
use crate::domain::{DeviceInfo, Enrollment, DEFAULT_ORG_SLUG};
use crate::store::{
    EnrollContext, EnrollRefusal, PollOutcome, GRANT_LIFETIME_MICROS, POLL_INTERVAL_SECONDS,
};

/// The one answer to every refused enrollment, so nothing can enumerate users, tokens or codes.
pub const ENROLL_REFUSED: &str = "enrollment refused: the token or code is not valid, or this \
     person cannot enroll a device; ask your administrator";

/// The answer when sign-in cannot start: an unknown organisation or one without an IdP.
const SIGN_IN_UNAVAILABLE: &str = "sign-in is not available for this organisation; check --org, \
     or ask your administrator for an activation code";

fn refused(refusal: &EnrollRefusal, method: &str, source: &str) -> Status {
    tracing::info!(%method, %source, reason = %refusal, "enrollment refused");
    Status::unauthenticated(ENROLL_REFUSED)
}

fn source_of<T>(request: &Request<T>) -> String {
    request
        .remote_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Rejects oversized fields before anything touches the store.
fn check_len(what: &str, value: &str, max: usize) -> Result<(), Status> {
    if value.len() > max {
        return Err(Status::invalid_argument(format!(
            "{what} is longer than {max} bytes"
        )));
    }
    Ok(())
}

fn device_info(hostname: String, os: String, agent_version: String) -> Result<DeviceInfo, Status> {
    check_len("hostname", &hostname, 1024)?;
    check_len("os", &os, 256)?;
    check_len("agent_version", &agent_version, 256)?;
    Ok(DeviceInfo {
        hostname,
        os,
        agent_version,
    })
}

fn response(e: Enrollment) -> pb::EnrollResponse {
    pb::EnrollResponse {
        device_id: e.device_id,
        device_credential: e.credential,
        org_slug: e.org_slug,
        user_name: e.user_name,
        verified: e.verified,
    }
}

impl AgentGrpc {
    /// After a new device: make sure its user has a stored policy before its first stream.
    async fn after_enrollment(&self, e: &Enrollment, source: &str) {
        tracing::info!(device_id = %e.device_id, user = %e.user_name, org = %e.org_slug,
            method = e.method.as_str(), verified = e.verified, %source, "device enrolled");
        if let Err(err) = self.distributor.recompute_user(&e.user_id).await {
            tracing::error!(error = %err, "computing the policy of a newly enrolled user failed");
        }
    }

    pub(super) async fn enroll_rpc(
        &self,
        request: Request<pb::EnrollRequest>,
    ) -> Result<Response<pb::EnrollResponse>, Status> {
        let source = source_of(&request);
        let r = request.into_inner();
        check_len("install_key", &r.install_key, 200)?;
        let info = device_info(r.hostname, r.os, r.agent_version)?;
        let ctx = EnrollContext {
            info: &info,
            install_key: Some(r.install_key.as_str()).filter(|k| !k.is_empty()),
            source: &source,
        };
        let store = &self.distributor.store;
        let (method, outcome) = if !r.activation_code.is_empty() {
            check_len("activation_code", &r.activation_code, 200)?;
            (
                "activation-code",
                store
                    .enroll_with_invite(r.activation_code.trim(), &ctx)
                    .await
                    .map_err(internal)?,
            )
        } else {
            if r.enroll_token.is_empty() {
                return Err(Status::invalid_argument(
                    "an enrollment token (with --user) or an activation code is required",
                ));
            }
            check_len("enroll_token", &r.enroll_token, 200)?;
            let user = r.user_name.trim();
            if user.is_empty() {
                return Err(Status::invalid_argument(
                    "the person's userName is required with an enrollment token",
                ));
            }
            check_len("user_name", user, 512)?;
            (
                "mdm-token",
                store
                    .enroll_with_token(&r.enroll_token, user, &ctx)
                    .await
                    .map_err(internal)?,
            )
        };
        match outcome {
            Ok(e) => {
                self.after_enrollment(&e, &source).await;
                Ok(Response::new(response(e)))
            }
            Err(refusal) => Err(refused(&refusal, method, &source)),
        }
    }

    pub(super) async fn start_sign_in_rpc(
        &self,
        request: Request<pb::StartSignInRequest>,
    ) -> Result<Response<pb::StartSignInResponse>, Status> {
        let source = source_of(&request);
        let store = &self.distributor.store;
        // With a device credential, the sign-in confirms that (unverified) device.
        let device = match bearer(&request) {
            Some(credential) => Some(
                store
                    .authenticate_device(&credential)
                    .await
                    .map_err(internal)?
                    .filter(|d| d.revoked_reason.is_none())
                    .ok_or_else(|| Status::unauthenticated(ENROLL_REFUSED))?,
            ),
            None => None,
        };
        let r = request.into_inner();
        check_len("install_key", &r.install_key, 200)?;
        check_len("org", &r.org, 63)?;
        let info = device_info(r.hostname, r.os, r.agent_version)?;
        let org_id = match &device {
            Some(d) => d.org_id.clone(),
            None => {
                let slug = if r.org.is_empty() {
                    DEFAULT_ORG_SLUG
                } else {
                    r.org.as_str()
                };
                let org = store.org_by_slug(slug).await.map_err(internal)?;
                let Some(org) = org else {
                    tracing::info!(%slug, %source, "sign-in for an unknown organisation");
                    return Err(Status::failed_precondition(SIGN_IN_UNAVAILABLE));
                };
                org.id
            }
        };
        // Without an identity provider nobody could ever confirm: say so now (in the same
        // words as for an unknown organisation, so slugs cannot be probed).
        if store
            .oidc_config(&org_id)
            .await
            .map_err(internal)?
            .is_none()
        {
            return Err(Status::failed_precondition(SIGN_IN_UNAVAILABLE));
        }
        let ctx = EnrollContext {
            info: &info,
            install_key: Some(r.install_key.as_str()).filter(|k| !k.is_empty()),
            source: &source,
        };
        let started = store
            .start_device_grant(&org_id, device.as_ref().map(|d| d.device_id.as_str()), &ctx)
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                tracing::warn!(%source, "too many sign-ins waiting; refusing a new one");
                Status::resource_exhausted(
                    "too many sign-ins are waiting; try again in a few minutes",
                )
            })?;
        let base = format!("{}/enroll/device", self.public_url.trim_end_matches('/'));
        let code = &started.grant.user_code;
        tracing::info!(grant = %started.grant.id, %source, confirm = device.is_some(), "sign-in started");
        Ok(Response::new(pb::StartSignInResponse {
            device_code: started.device_code,
            user_code: code.clone(),
            verification_uri_complete: format!("{base}?code={code}"),
            verification_uri: base,
            expires_in_seconds: GRANT_LIFETIME_MICROS / 1_000_000,
            interval_seconds: POLL_INTERVAL_SECONDS,
        }))
    }

    pub(super) async fn poll_sign_in_rpc(
        &self,
        request: Request<pb::PollSignInRequest>,
    ) -> Result<Response<pb::PollSignInResponse>, Status> {
        use pb::poll_sign_in_response::State;
        let source = source_of(&request);
        let r = request.into_inner();
        check_len("device_code", &r.device_code, 200)?;
        check_len("install_key", &r.install_key, 200)?;
        let info = device_info(r.hostname, r.os, r.agent_version)?;
        let install_key = Some(r.install_key.as_str()).filter(|k| !k.is_empty());
        let outcome = self
            .distributor
            .store
            .poll_device_grant(&r.device_code, install_key, &info, &source)
            .await
            .map_err(internal)?;
        let (state, enrollment) = match outcome {
            PollOutcome::Pending => (State::Pending, None),
            PollOutcome::SlowDown => (State::SlowDown, None),
            PollOutcome::Refused(reason) => {
                tracing::info!(%source, %reason, "sign-in poll refused");
                return Err(Status::permission_denied(reason));
            }
            PollOutcome::Enrolled(e) => {
                self.after_enrollment(&e, &source).await;
                (State::Enrolled, Some(response(e)))
            }
            PollOutcome::Verified {
                device_id,
                user_name,
            } => {
                tracing::info!(%device_id, user = %user_name, %source, "device verified by its person");
                (
                    State::Verified,
                    Some(pb::EnrollResponse {
                        device_id,
                        device_credential: String::new(),
                        org_slug: String::new(),
                        user_name,
                        verified: true,
                    }),
                )
            }
        };
        Ok(Response::new(pb::PollSignInResponse {
            state: state as i32,
            enrollment,
        }))
    }
}
