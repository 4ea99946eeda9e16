//! The credentials the agent hands out and takes back: the developer's copy of the API key
//! for `apiKeyHelper` ([`keyfile`]) and what deprovisioning removes ([`wipe`]).

pub mod keyfile;
pub mod wipe;
