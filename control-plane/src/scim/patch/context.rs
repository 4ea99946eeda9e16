//! The types one PATCH application carries between its parts (dispatch in `apply.rs`,
//! multi-valued attributes in `multi_valued.rs`, membership in `members.rs`): the context, which
//! elements an operation selects, and what it produced besides the resource.

use crate::scim::filter::Filter;
use crate::scim::schema::ResourceType;

/// What applying a PATCH produced besides the modified resource.
#[derive(Debug, Default)]
pub struct PatchOutcome {
    /// Membership changes in request order (only when `members_external` is true).
    pub member_changes: Vec<MemberChange>,
}

/// Group membership changes, returned instead of applied when `members_external` is true so the
/// store can apply them as row inserts/deletes (no read-modify-write of a member list).
#[derive(Debug, Clone, PartialEq)]
pub enum MemberChange {
    /// Add these member ids (already-present ids are the store's no-op).
    Add(Vec<String>),
    /// Remove these member ids (absent ids are a no-op).
    Remove(Vec<String>),
    /// Remove the members matching this filter (relative to one member: `value eq "id"`).
    RemoveMatching(Filter),
    /// Remove every member.
    RemoveAll,
    /// Make the member list exactly these ids.
    ReplaceAll(Vec<String>),
}

/// The state of one PATCH application.
pub(super) struct Ctx<'a> {
    pub(super) rt: &'a ResourceType,
    pub(super) members_external: bool,
    pub(super) outcome: PatchOutcome,
}

/// Which elements of a multi-valued attribute an operation addresses.
#[derive(Clone, Copy)]
pub(super) enum Select<'f> {
    All,
    Matching(&'f Filter),
}
