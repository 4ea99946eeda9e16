//! `palisade-control-plane admin login-link --org O`: a one-time, short-lived link that signs in
//! to the console as owner — the first setup before the IdP is connected, and the break-glass
//! path when it is down. Audited as its creation and, when used, as a sign-in.

use clap::Subcommand;

use super::find_org;
use crate::domain::{to_rfc3339, Actor};
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum ConsoleCommand {
    /// Print a one-time link (valid 10 minutes) that signs in to the console as owner.
    LoginLink {
        #[arg(long)]
        org: String,
    },
}

pub async fn admin(
    store: &Store,
    public_url: Option<&str>,
    cmd: ConsoleCommand,
) -> anyhow::Result<()> {
    match cmd {
        ConsoleCommand::LoginLink { org } => {
            let org = find_org(store, &org).await?;
            let (secret, expires) = store.create_login_link(&org.id, &Actor::operator()).await?;
            eprintln!(
                "one-time owner sign-in for organisation {:?}, valid until {} (open it once, in the browser you will use):",
                org.slug,
                to_rfc3339(expires)
            );
            println!(
                "{}/console/login?link={secret}",
                super::identity::base_url(public_url)
            );
        }
    }
    Ok(())
}
