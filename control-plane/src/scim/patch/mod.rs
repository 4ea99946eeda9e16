//! SCIM PATCH (RFC 7644 §3.5.2): parses PatchOp request bodies and applies their operations to a
//! canonical resource, accepting the shapes Okta and Microsoft Entra send (capitalised ops, string
//! booleans, path-less multi-attribute values, value-path targets on absent arrays, member removal
//! by value list). Group membership changes can be returned instead of applied, so the store can
//! turn them into row inserts and deletes.
//!
//! The modules:
//! - `operations`: the PatchOp body → [`PatchOperation`]s (paths parsed by
//!   [`parse_patch_path`](super::filter::parse_patch_path), which shares the filter grammar);
//! - `path`: a path or path-less key → the attribute it names and the JSON object holding it;
//! - `apply`: [`apply_patch`], operation by operation, then the resource-wide clean-up;
//! - `multi_valued`: whole-attribute and value-filtered element changes of multi-valued attributes;
//! - `members`: Group membership as [`MemberChange`] deltas when members live outside the JSON;
//! - `values`: shaping and comparing the values written (deltas, canonical elements, value keys).

mod apply;
mod context;
mod members;
mod multi_valued;
mod operations;
mod path;
#[cfg(test)]
mod test_util;
mod values;

pub use apply::apply_patch;
pub use context::{MemberChange, PatchOutcome};
pub use operations::{parse_patch_request, PatchOpKind, PatchOperation};
