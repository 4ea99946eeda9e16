//! Policy administration from the command line: policies, role mappings, enrollment tokens,
//! API keys and organisation rules. Each change is stored with its change record in one
//! transaction; the running control plane (or the next to start) recomputes the people it
//! touches and pushes their new versions — nothing is recomputed here.

use crate::domain::AuditAction;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use clap::Subcommand;

use super::find_org;
use crate::admin::settings::check_upstream_url;
use crate::crypto::SecretsKey;
use crate::distribution::{compute, overrides};
use crate::domain::{to_rfc3339, Actor, Micros};
use crate::roles::Role;
use crate::store::{KeyDelivery, OfflineRule, Store, StoreError};
use palisade_policy::{
    explain, parse_policy, render_bytes, GroupPolicy, Policy, PolicyFormat, RenderOptions, Scope,
    TargetOs,
};

use crate::secrets_key::SECRETS_KEY_ENV;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Apply a folder of policy files (`defaults.json` and `groups/<group name>.json`, or
    /// .toml/.yaml): prints the diff, then saves it (policy as code, e.g. from CI).
    Apply {
        #[arg(long)]
        org: String,
        #[arg(long)]
        dir: PathBuf,
        /// Print the diff only.
        #[arg(long)]
        dry_run: bool,
        /// Also remove the override of every group that has no file.
        #[arg(long)]
        prune: bool,
    },
    /// Set the organisation's default policy from a JSON or TOML file.
    SetDefault {
        #[arg(long)]
        org: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// Set a group's policy override from a JSON or TOML file.
    SetGroup {
        #[arg(long)]
        org: String,
        /// The group's displayName as provisioned by the IdP.
        #[arg(long)]
        group: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// Show a user's effective policy.
    Show {
        #[arg(long)]
        org: String,
        #[arg(long)]
        user: String,
        /// Say, for each key, its merge rule and which sources set it.
        #[arg(long)]
        explain: bool,
        #[arg(long)]
        json: bool,
        /// Print the Claude Code drop-in file the user's agents write, byte for byte.
        #[arg(long, conflicts_with_all = ["explain", "json"])]
        render: bool,
        /// With --render: the laptop's platform (linux, macos, windows).
        #[arg(long, default_value = "linux", requires = "render")]
        os: String,
        /// With --render: the agent's apiKeyHelper command (default: the packaged agent's,
        /// when the user has a key).
        #[arg(long, requires = "render")]
        api_key_helper: Option<String>,
        /// With --render and proxy key delivery: where the laptop's relay listens (the
        /// agent's `--relay-addr`).
        #[arg(long, default_value = "127.0.0.1:47913", requires = "render")]
        relay_addr: String,
    },
    /// Check a policy file without storing it; prints it in the canonical version-2 form, or
    /// with --render the drop-in a person holding only this policy would get.
    Check {
        #[arg(long)]
        file: PathBuf,
        /// Check it as a group's policy (org-only keys are refused).
        #[arg(long)]
        group: bool,
        /// Print the Claude Code drop-in file it renders to (its level's bundle included).
        #[arg(long)]
        render: bool,
        /// With --render: the laptop's platform (linux, macos, windows).
        #[arg(long, default_value = "linux", requires = "render")]
        os: String,
        /// With --render: an apiKeyHelper command to include.
        #[arg(long, requires = "render")]
        api_key_helper: Option<String>,
    },
    /// List every policy key: its kind, merge rule and the Claude Code settings it renders.
    Keys {
        #[arg(long)]
        json: bool,
    },
}

/// `apiKeyHelper` of the packaged agent on each platform (the path the installers use).
pub fn packaged_helper(os: TargetOs) -> &'static str {
    match os {
        TargetOs::Linux => "/usr/bin/palisade-agent api-key",
        TargetOs::MacOs => "'/Library/Application Support/Palisade/bin/palisade-agent' api-key",
        TargetOs::Windows => "\"C:\\Program Files\\Palisade\\palisade-agent.exe\" api-key",
    }
}

#[derive(Debug, Subcommand)]
pub enum RoleMapCommand {
    /// Map a group to a role (admin, security, developer, read-only).
    Set {
        #[arg(long)]
        org: String,
        #[arg(long)]
        group: String,
        #[arg(long)]
        role: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EnrollTokenCommand {
    /// Mint an enrollment token for MDM; prints only the token.
    Create {
        #[arg(long)]
        org: String,
        /// Lifetime such as 30d, 12h, 90m (at most 365d).
        #[arg(long, default_value = "30d")]
        expires_in: String,
    },
    /// Mint a new enrollment token and make the others expire after an overlap, so MDM
    /// profiles can be switched over; prints only the new token.
    Rotate {
        #[arg(long)]
        org: String,
        /// How long the previous tokens keep working (e.g. 7d; 0 ends them now).
        #[arg(long, default_value = "7d")]
        overlap: String,
        /// Lifetime of the new token (at most 365d).
        #[arg(long, default_value = "30d")]
        expires_in: String,
    },
    /// List enrollment tokens (never their secrets).
    List {
        #[arg(long)]
        org: String,
    },
    /// Revoke an enrollment token by id or prefix (enrolled devices keep working).
    Revoke {
        #[arg(long)]
        org: String,
        id_or_prefix: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Store the Anthropic API key for the organisation or a group, read from standard input.
    Set {
        #[arg(long)]
        org: String,
        #[arg(long)]
        group: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[arg(long)]
    pub org: String,
    /// Only this user's events and those of their devices.
    #[arg(long)]
    pub user: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct OrgSettingsArgs {
    #[arg(long)]
    pub org: String,
    /// What agents do when cut off past the grace period: keep-last or lockdown.
    #[arg(long)]
    pub offline_rule: Option<String>,
    /// How long a policy stays valid without contact, e.g. 7d, 12h.
    #[arg(long)]
    pub offline_grace: Option<String>,
    /// Deprovision a user when removed from their last synced group (true/false).
    #[arg(long)]
    pub deprovision_without_groups: Option<bool>,
    /// Trust the person the MDM names at enrollment (true/false). Off by default: with it, anyone
    /// holding the fleet enrollment token can enroll as any active person and receive their API
    /// key. Turn on only when MDM itself proves who uses each machine.
    #[arg(long)]
    pub trust_mdm_identity: Option<bool>,
    /// How agents give Claude Code the API key: `proxy` (the agent keeps the key and relays
    /// Claude Code's requests; the developer holds only a local token) or `helper`
    /// (`apiKeyHelper` prints the key). New organisations start with `proxy`; organisations
    /// created before it existed keep `helper` until switched.
    #[arg(long)]
    pub key_delivery: Option<String>,
    /// Where agents' relays forward (an Anthropic-API-compatible base URL, https; http only
    /// to a loopback address). `default` is the Anthropic API.
    #[arg(long)]
    pub upstream_url: Option<String>,
}

/// An enrollment token's expiry from a lifetime (at most a year: a fleet secret must turn over).
fn token_expiry(lifetime: &str) -> anyhow::Result<Micros> {
    let secs = parse_duration_secs(lifetime)?;
    if secs > 365 * 24 * 3600 {
        anyhow::bail!("an enrollment token lives at most 365d");
    }
    Ok(crate::domain::now_micros() + secs.saturating_mul(1_000_000))
}

/// Parses `30d`, `12h`, `90m`, `45s` into seconds.
pub fn parse_duration_secs(text: &str) -> anyhow::Result<i64> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 = num.parse().map_err(|_| {
        anyhow!("invalid duration {text:?}: use a number and a unit, like 30d, 12h, 90m")
    })?;
    let mult = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" | "" => 1,
        _ => bail!("invalid duration {text:?}: the unit must be d, h, m or s"),
    };
    if n <= 0 {
        bail!("invalid duration {text:?}: it must be positive");
    }
    n.checked_mul(mult)
        .ok_or_else(|| anyhow!("duration {text:?} is too long"))
}

/// Reads and checks a policy file for `scope`; notices (a version-1 file was migrated) go to
/// standard error.
pub(super) fn read_policy_file(path: &Path, scope: Scope) -> anyhow::Result<Policy> {
    let name = path.to_string_lossy();
    let format = PolicyFormat::from_path_name(&name).map_err(|e| anyhow!("{e}"))?;
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {name}"))?;
    let loaded = parse_policy(format, &text)
        .map_err(|errors| anyhow!("{name} is not a valid policy:\n{errors}"))?;
    loaded
        .policy
        .check_scope(scope)
        .map_err(|errors| anyhow!("{name} is not a valid group policy:\n{errors}"))?;
    for notice in &loaded.notices {
        eprintln!("notice: {name}: {notice}");
    }
    Ok(loaded.policy)
}

pub(super) async fn require_group(
    store: &Store,
    org_id: &str,
    slug: &str,
    name: &str,
) -> anyhow::Result<crate::domain::Group> {
    store
        .group_by_display_name(org_id, name)
        .await?
        .ok_or_else(|| anyhow!("no group {name:?} in organisation {slug:?} (groups are provisioned by the IdP over SCIM)"))
}

pub async fn policy(store: &Store, cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::SetDefault { org, file } => {
            let policy = read_policy_file(&file, Scope::Org)?;
            let o = find_org(store, &org).await?;
            let mut settings = store.org_settings(&o.id).await?;
            settings.default_policy = policy.to_value();
            store
                .set_org_settings(
                    &o.id,
                    &settings,
                    &Actor::operator(),
                    AuditAction::OrgPolicySetDefault,
                )
                .await?;
            let users = store.org_user_ids(&o.id).await?;
            println!(
                "default policy of {org} set{}",
                delivery_note(store, &users).await?
            );
        }
        PolicyCommand::SetGroup { org, group, file } => {
            let policy = read_policy_file(&file, Scope::Group)?;
            let o = find_org(store, &org).await?;
            let g = require_group(store, &o.id, &org, &group).await?;
            store
                .set_group_policy(&o.id, &g.id, Some(&policy.to_value()), &Actor::operator())
                .await?;
            let users = store.group_member_ids(&g.id).await?;
            println!(
                "policy of group {group:?} set{}",
                delivery_note(store, &users).await?
            );
        }
        PolicyCommand::Check {
            file,
            group,
            render,
            os,
            api_key_helper,
        } => {
            let scope = if group { Scope::Group } else { Scope::Org };
            let policy = read_policy_file(&file, scope)?;
            if render {
                // The level's bundle is added by the merge, as for a person.
                let merged = palisade_policy::effective(&policy, &[]);
                print_render(&merged, &os, |_| api_key_helper)?;
            } else {
                print!("{}", policy.to_pretty_json());
            }
        }
        PolicyCommand::Keys { json } => print_keys(json)?,
        PolicyCommand::Apply {
            org,
            dir,
            dry_run,
            prune,
        } => super::policy_apply::apply(store, &org, &dir, dry_run, prune).await?,
        PolicyCommand::Show {
            org,
            user,
            explain: want_explain,
            json,
            render,
            os,
            api_key_helper,
            relay_addr,
        } => {
            let o = find_org(store, &org).await?;
            let u = store
                .user_by_user_name(&o.id, &user)
                .await?
                .ok_or_else(|| anyhow!("no user {user:?} in organisation {org:?}"))?;
            let inputs = store
                .user_policy_inputs(&u.id)
                .await?
                .ok_or_else(|| anyhow!("no user {user:?}"))?;
            let computed = compute(&inputs).map_err(|e| anyhow!("{e}"))?;
            if render {
                let has_key = computed.api_key_ref.is_some();
                // With proxy delivery the agent points Claude Code at its relay and its helper
                // checks the relay; a person without a key gets neither, as on the laptop.
                let relayed =
                    has_key && store.org_settings(&o.id).await?.key_delivery == KeyDelivery::Proxy;
                let base_url = relayed.then(|| format!("http://{relay_addr}"));
                return print_render_with(&computed.policy, &os, base_url, |os| {
                    api_key_helper.or_else(|| {
                        has_key.then(|| match relayed {
                            true => format!("{} --relay {relay_addr}", packaged_helper(os)),
                            false => packaged_helper(os).to_owned(),
                        })
                    })
                });
            }
            let stored = store.stored_user_policy(&u.id).await?;
            // The stored version lags what the inputs say until a control plane applies the
            // recorded change (at once when one runs).
            let pending = inputs.active
                && stored.as_ref().is_some_and(|s| {
                    s.policy_sha256 != computed.sha256
                        || s.api_key_ref != computed.api_key_ref
                        || s.delivery != computed.delivery
                });
            let roles = crate::roles::effective_roles(
                inputs
                    .primary_role
                    .as_deref()
                    .and_then(|r| r.parse::<Role>().ok()),
                &inputs
                    .groups
                    .iter()
                    .filter_map(|g| g.role.as_deref().and_then(|r| r.parse::<Role>().ok()))
                    .collect::<Vec<_>>(),
            );
            let (defaults, overrides) = overrides(&inputs).map_err(|e| anyhow!("{e}"))?;
            let groups: Vec<GroupPolicy<'_>> = overrides
                .iter()
                .map(|(g, p)| GroupPolicy {
                    group: g,
                    policy: p,
                })
                .collect();
            let explanation = explain(&defaults, &groups);
            let role_names: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
            if json {
                let mut out = serde_json::json!({
                    "user": u.user_name,
                    "active": inputs.active,
                    "roles": role_names,
                    "groups": inputs.groups.iter().map(|g| g.display_name.clone()).collect::<Vec<_>>(),
                    "policy": computed.policy.to_value(),
                    "sha256": computed.sha256,
                    "version": stored.as_ref().map(|s| s.version),
                    "pending": pending,
                    "api_key": computed.api_key_ref.as_ref().map(|r| if r.starts_with('#') { "organisation" } else { "group" }),
                });
                if want_explain {
                    out["explain"] = explanation.to_value()["keys"].clone();
                }
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!(
                    "user: {}{}",
                    u.user_name,
                    if inputs.active {
                        ""
                    } else {
                        " (deactivated: no policy is delivered)"
                    }
                );
                println!("roles: {}", role_names.join(", "));
                println!(
                    "groups: {}",
                    inputs
                        .groups
                        .iter()
                        .map(|g| g.display_name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                println!(
                    "version: {}{}",
                    stored
                        .as_ref()
                        .map(|s| s.version.to_string())
                        .unwrap_or_else(|| "none yet".to_string()),
                    if pending {
                        " (a newer policy is pending: the control plane stores and delivers it)"
                    } else {
                        ""
                    }
                );
                if want_explain {
                    print!("{explanation}");
                } else {
                    print!("{}", computed.policy.to_pretty_json());
                }
            }
        }
    }
    Ok(())
}

/// Prints the drop-in `policy` renders to on the platform named `os`, with the `apiKeyHelper`
/// that `helper` chooses for that platform.
fn print_render(
    policy: &Policy,
    os: &str,
    helper: impl FnOnce(TargetOs) -> Option<String>,
) -> anyhow::Result<()> {
    print_render_with(policy, os, None, helper)
}

/// [`print_render`], pointing Claude Code at a relay's `base_url` when there is one.
fn print_render_with(
    policy: &Policy,
    os: &str,
    base_url: Option<String>,
    helper: impl FnOnce(TargetOs) -> Option<String>,
) -> anyhow::Result<()> {
    use std::io::Write;
    let os = TargetOs::parse(os)
        .ok_or_else(|| anyhow!("--os {os:?}: expected linux, macos or windows"))?;
    let opts = RenderOptions {
        api_key_helper: helper(os),
        os,
        base_url,
        ..RenderOptions::default()
    };
    std::io::stdout().write_all(&render_bytes(policy, &opts))?;
    Ok(())
}

fn print_keys(json: bool) -> anyhow::Result<()> {
    use palisade_policy::keys::KEYS;
    if json {
        let keys: Vec<serde_json::Value> = KEYS
            .iter()
            .map(|k| {
                serde_json::json!({
                    "key": k.name,
                    "kind": k.kind.describe(),
                    "merge": k.merge.describe(),
                    "renders": k.renders,
                    "help": k.help,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&keys)?);
        return Ok(());
    }
    for k in KEYS {
        println!(
            "{}  ({}; {})",
            k.name,
            k.kind.describe(),
            k.merge.describe()
        );
        println!("    {}", k.help);
        println!("    renders: {}", k.renders);
    }
    Ok(())
}

pub async fn role_map(store: &Store, cmd: RoleMapCommand) -> anyhow::Result<()> {
    let RoleMapCommand::Set { org, group, role } = cmd;
    let role: Role = role.parse().map_err(|e| anyhow!("{e}"))?;
    let o = find_org(store, &org).await?;
    let g = require_group(store, &o.id, &org, &group).await?;
    store
        .set_group_role(&o.id, &g.id, Some(&role.to_string()), &Actor::operator())
        .await?;
    println!("group {group:?} maps to role {role}");
    Ok(())
}

pub async fn enroll_token(store: &Store, cmd: EnrollTokenCommand) -> anyhow::Result<()> {
    match cmd {
        EnrollTokenCommand::Create { org, expires_in } => {
            let o = find_org(store, &org).await?;
            let expires_at = token_expiry(&expires_in)?;
            let (_, secret) = store
                .create_enroll_token(&o.id, Some(expires_at), &Actor::operator())
                .await?;
            println!("{secret}");
        }
        EnrollTokenCommand::Rotate {
            org,
            overlap,
            expires_in,
        } => {
            let o = find_org(store, &org).await?;
            let expires_at = token_expiry(&expires_in)?;
            let overlap = if overlap.trim() == "0" {
                0
            } else {
                parse_duration_secs(&overlap)?.saturating_mul(1_000_000)
            };
            let (_, secret) = store
                .rotate_enroll_token(&o.id, Some(expires_at), overlap, &Actor::operator())
                .await?;
            println!("{secret}");
        }
        EnrollTokenCommand::List { org } => {
            let o = find_org(store, &org).await?;
            println!(
                "{:<36}  {:<18}  {:<24}  {:<24}  {:<24}  REVOKED",
                "ID", "PREFIX", "CREATED", "EXPIRES", "LAST USED"
            );
            let opt = |t: Option<i64>| t.map(to_rfc3339).unwrap_or_else(|| "-".to_string());
            for t in store.list_enroll_tokens(&o.id).await? {
                println!(
                    "{:<36}  {:<18}  {:<24}  {:<24}  {:<24}  {}",
                    t.id,
                    t.prefix,
                    to_rfc3339(t.created_at),
                    opt(t.expires_at),
                    opt(t.last_used_at),
                    opt(t.revoked_at)
                );
            }
        }
        EnrollTokenCommand::Revoke { org, id_or_prefix } => {
            let o = find_org(store, &org).await?;
            let t = store
                .revoke_enroll_token(&o.id, &id_or_prefix, &Actor::operator())
                .await
                .map_err(|e| match e {
                    StoreError::NotFound => {
                        anyhow!("no enrollment token {id_or_prefix:?} in organisation {org:?}")
                    }
                    StoreError::Ambiguous(m) => anyhow!(m),
                    other => other.into(),
                })?;
            println!("revoked {} ({})", t.id, t.prefix);
        }
    }
    Ok(())
}

pub async fn api_key(
    store: &Store,
    secrets: Option<SecretsKey>,
    cmd: ApiKeyCommand,
) -> anyhow::Result<()> {
    let ApiKeyCommand::Set { org, group } = cmd;
    let key = secrets
        .ok_or_else(|| anyhow!("give --secrets-key-file (or set {SECRETS_KEY_ENV}): the base64 32-byte key that encrypts API keys at rest"))?;
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading the API key from standard input")?;
    let api_key = text.trim();
    if api_key.is_empty()
        || api_key.len() > 512
        || api_key.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        bail!("the API key read from standard input is empty or malformed (one line, no spaces)");
    }
    let o = find_org(store, &org).await?;
    let (group_id, users) = match &group {
        Some(name) => {
            let g = require_group(store, &o.id, &org, name).await?;
            let members = store.group_member_ids(&g.id).await?;
            (Some(g.id), members)
        }
        None => (None, store.org_user_ids(&o.id).await?),
    };
    store
        .set_api_key(
            &o.id,
            group_id.as_deref(),
            &key.encrypt(api_key),
            &Actor::operator(),
        )
        .await?;
    println!(
        "API key stored for {}{}",
        group
            .map(|g| format!("group {g:?}"))
            .unwrap_or_else(|| format!("organisation {org}")),
        delivery_note(store, &users).await?
    );
    Ok(())
}

/// What happens next to a change of `users`' policy inputs: the change is recorded with the
/// write, and the running control plane (or the next one to start) delivers it.
async fn delivery_note(store: &Store, users: &[String]) -> anyhow::Result<String> {
    let enrolled = store.users_with_policies(users).await?.len();
    Ok(format!(
        "; {enrolled} of {} people have enrolled devices: the control plane delivers the change \
         to those online now and to the others when they next connect",
        users.len()
    ))
}

pub async fn audit(store: &Store, args: AuditArgs) -> anyhow::Result<()> {
    let o = find_org(store, &args.org).await?;
    let events = match &args.user {
        None => store.audit_events(&o.id, None).await?,
        Some(name) => {
            let u = store.user_by_user_name(&o.id, name).await?;
            let uid = match u {
                Some(u) => u.id,
                // A deleted user keeps its history: look it up among all events by userName.
                None => store
                    .audit_events(&o.id, None)
                    .await?
                    .iter()
                    .rev()
                    .find(|e| {
                        e.action == AuditAction::UserCreate.as_str()
                            && e.detail["userName"]
                                .as_str()
                                .is_some_and(|n| n.eq_ignore_ascii_case(name))
                    })
                    .and_then(|e| e.resource_id.clone())
                    .ok_or_else(|| anyhow!("no user {name:?} in organisation {:?}", args.org))?,
            };
            let devices: Vec<String> = store
                .devices_of_user(&uid)
                .await?
                .into_iter()
                .map(|d| d.id)
                .collect();
            let mut all = store.audit_events(&o.id, Some(&uid)).await?;
            for d in &devices {
                all.extend(store.audit_events(&o.id, Some(d)).await?);
            }
            all.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
            all
        }
    };
    for e in events {
        if args.json {
            println!(
                "{}",
                serde_json::json!({"at": to_rfc3339(e.at), "actor": e.actor, "action": e.action, "resourceType": e.resource_type, "resourceId": e.resource_id, "detail": e.detail})
            );
        } else {
            println!(
                "{}  {:<22}  {:<28}  {} {}  {}",
                to_rfc3339(e.at),
                e.action,
                e.actor,
                e.resource_type,
                e.resource_id.unwrap_or_default(),
                e.detail
            );
        }
    }
    Ok(())
}

pub async fn org_settings(store: &Store, args: OrgSettingsArgs) -> anyhow::Result<()> {
    let o = find_org(store, &args.org).await?;
    let mut s = store.org_settings(&o.id).await?;
    if let Some(rule) = &args.offline_rule {
        s.offline_rule = OfflineRule::parse(rule)
            .ok_or_else(|| anyhow!("unknown offline rule {rule:?}: use keep-last or lockdown"))?;
    }
    if let Some(g) = &args.offline_grace {
        s.offline_grace_seconds = parse_duration_secs(g)?;
    }
    if let Some(d) = args.deprovision_without_groups {
        s.deprovision_without_groups = d;
    }
    if let Some(t) = args.trust_mdm_identity {
        s.trust_mdm_identity = t;
    }
    if let Some(k) = &args.key_delivery {
        s.key_delivery = KeyDelivery::parse(k)
            .ok_or_else(|| anyhow!("unknown key delivery {k:?}: use proxy or helper"))?;
    }
    if let Some(u) = &args.upstream_url {
        s.upstream_url = match u.as_str() {
            "default" | "" => None,
            other => Some(check_upstream_url(other)?),
        };
    }
    store
        .set_org_settings(&o.id, &s, &Actor::operator(), AuditAction::OrgSettingsSet)
        .await?;
    println!(
        "{}: offline rule {}, grace {}s, deprovision without groups: {}, trust MDM identity: {}, \
         key delivery: {}, upstream: {}",
        args.org,
        s.offline_rule.as_str().replace('_', "-"),
        s.offline_grace_seconds,
        s.deprovision_without_groups,
        s.trust_mdm_identity,
        s.key_delivery.as_str(),
        s.upstream_url.as_deref().unwrap_or("the Anthropic API")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls() {
        assert_eq!(
            check_upstream_url("https://gw.example.com/anthropic/").unwrap(),
            "https://gw.example.com/anthropic"
        );
        assert_eq!(
            check_upstream_url("http://127.0.0.1:9/").unwrap(),
            "http://127.0.0.1:9"
        );
        for bad in [
            "http://gw.example.com",
            "ftp://x",
            "https://u:p@gw.example.com",
            "https://gw.example.com/?k=v",
            "not a url",
        ] {
            assert!(check_upstream_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("30d").unwrap(), 30 * 86_400);
        assert_eq!(parse_duration_secs("12h").unwrap(), 12 * 3_600);
        assert_eq!(parse_duration_secs("90m").unwrap(), 5_400);
        assert!(parse_duration_secs("0d").is_err());
        assert!(parse_duration_secs("3w").is_err());
        assert!(parse_duration_secs("d").is_err());
    }
}
