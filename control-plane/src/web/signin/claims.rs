//! Claim mapping: which verified claim names the person, and which active provisioned user
//! it is. The one place that decides "this IdP account is that Palisade user".

use super::oidc::PersonClaims;
use crate::domain::{IdentityClaim, OidcConfig, SignedInPerson};
use crate::store::{Store, StoreError};

/// Why a verified sign-in does not make anyone a Palisade user. Shown in general terms on the
/// page; the detail goes to the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchFailure {
    #[error("the identity provider sent no {0} claim")]
    MissingClaim(&'static str),
    #[error("the identity provider says the email {0:?} is not verified")]
    UnverifiedEmail(String),
    #[error("no provisioned user matches {0:?}")]
    NoUser(String),
    #[error("user {0:?} is not active")]
    Inactive(String),
    #[error("several users match {0:?}")]
    Ambiguous(String),
}

/// The value of the configured claim.
pub fn claim_value(claims: &PersonClaims, claim: IdentityClaim) -> Result<String, MatchFailure> {
    let value = match claim {
        IdentityClaim::Email => {
            if let (Some(email), Some(false)) = (&claims.email, claims.email_verified) {
                return Err(MatchFailure::UnverifiedEmail(email.clone()));
            }
            claims.email.clone()
        }
        IdentityClaim::PreferredUsername => claims.preferred_username.clone(),
        IdentityClaim::Sub => Some(claims.sub.clone()),
        IdentityClaim::Upn => claims.upn.clone(),
    };
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty() && v.len() <= 512)
        .ok_or(MatchFailure::MissingClaim(claim.as_str()))
}

/// Maps verified claims to the active user of the organisation they name.
pub async fn match_person(
    store: &Store,
    config: &OidcConfig,
    claims: &PersonClaims,
) -> Result<Result<SignedInPerson, MatchFailure>, StoreError> {
    let value = match claim_value(claims, config.claim) {
        Ok(v) => v,
        Err(f) => return Ok(Err(f)),
    };
    match store
        .active_user_by(&config.org_id, config.match_attribute, &value)
        .await
    {
        Ok(Some((user_id, user_name, true))) => {
            if !store
                .person_may_hold_device(&config.org_id, &user_id)
                .await?
            {
                return Ok(Err(MatchFailure::Inactive(user_name)));
            }
            Ok(Ok(SignedInPerson {
                org_id: config.org_id.clone(),
                user_id,
                user_name,
            }))
        }
        Ok(Some((_, user_name, false))) => Ok(Err(MatchFailure::Inactive(user_name))),
        Ok(None) => Ok(Err(MatchFailure::NoUser(value))),
        Err(StoreError::Ambiguous(_)) => Ok(Err(MatchFailure::Ambiguous(value))),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> PersonClaims {
        PersonClaims {
            sub: "00u1".into(),
            email: Some("Ada@Example.com".into()),
            email_verified: None,
            preferred_username: Some("ada".into()),
            upn: None,
            groups: vec![],
        }
    }

    #[test]
    fn picks_the_configured_claim() {
        assert_eq!(
            claim_value(&claims(), IdentityClaim::Email).unwrap(),
            "Ada@Example.com"
        );
        assert_eq!(
            claim_value(&claims(), IdentityClaim::PreferredUsername).unwrap(),
            "ada"
        );
        assert_eq!(claim_value(&claims(), IdentityClaim::Sub).unwrap(), "00u1");
        assert_eq!(
            claim_value(&claims(), IdentityClaim::Upn),
            Err(MatchFailure::MissingClaim("upn"))
        );
    }

    #[test]
    fn an_unverified_email_names_nobody() {
        let c = PersonClaims {
            email_verified: Some(false),
            ..claims()
        };
        assert!(matches!(
            claim_value(&c, IdentityClaim::Email),
            Err(MatchFailure::UnverifiedEmail(_))
        ));
    }
}
