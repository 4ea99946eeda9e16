//! SCIM filter expressions (RFC 7644 §3.4.2.2), PATCH paths (§3.5.2) and sortBy ordering: parsing
//! with hard size and nesting limits, validation against a resource type's schema, and evaluation
//! against canonical resource JSON (per-attribute case rules, any-match on multi-valued
//! attributes, chronological dateTime comparison, and the quirks real identity providers send).
//!
//! The pipeline, one module a stage:
//! - `lexer`: filter text → tokens with byte positions (string literals are JSON strings);
//! - `parser`: tokens → the `ast` ([`Filter`], [`AttrPath`], [`PatchPath`]), iteratively
//!   for `and`/`or` chains and with a depth limit for everything that nests;
//! - `validate`: the AST against a resource type's schema (400 `invalidFilter`);
//! - `resolve`: where a path points in the schema and how to read its values from JSON,
//!   shared by validation, evaluation and sorting;
//! - `eval`: in-memory matching of resources ([`matches`](fn@matches)) and of one element of a
//!   multi-valued attribute ([`matches_element`], for PATCH value paths);
//! - `pushdown`: the filter shapes the list handlers answer from a store index ([`as_eq_on`]);
//! - `sort`: sortBy ordering ([`compare_by`]).
//!
//! Only the items re-exported here are used outside this module.

mod ast;
mod eval;
mod lexer;
mod parser;
mod pushdown;
mod resolve;
mod sort;
#[cfg(test)]
mod test_util;
mod validate;

pub use ast::{AttrPath, CompareOp, Filter, PatchPath};
pub use eval::{matches, matches_element};
pub use parser::{parse_filter, parse_patch_path};
pub use pushdown::as_eq_on;
pub use sort::compare_by;
pub use validate::validate;

/// Longest filter (or PATCH path) accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// Deepest nesting of parentheses, `not` and value paths accepted.
pub const MAX_FILTER_DEPTH: usize = 32;
