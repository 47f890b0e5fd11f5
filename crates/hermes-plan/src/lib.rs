//! Planning, as a pure function: [`desired`] turns a loaded stack into the resources it wants,
//! and [`plan`] compares them with what providers observed, giving an ordered [`Plan`] in which
//! every change carries its reason. [`text::render`] and serde give the human and JSON forms of
//! the same value.
//!
//! No I/O happens here: no clock, no network, no files. The same inputs always give the same plan
//! and the same plan hash.

mod desired;
mod diff;
mod model;
mod target;
pub mod text;

pub use desired::desired;
pub use diff::plan;
pub use model::{Action, AttrDiff, Change, Desired, PLAN_FORMAT, Plan, Summary};
pub use target::Target;
