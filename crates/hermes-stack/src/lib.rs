//! The stack file of `hermes-infra`: its format (version 1), per-environment overlays,
//! validation with `file:line:column` and a fix for every error, and its JSON schema.
//!
//! Loading is pure apart from reading the one file: no network, no SSH, no cloud call, and no
//! secret is resolved here (secrets are references until apply time). The result,
//! [`LoadedStack`], is what the planner turns into desired resources.

mod diagnostic;
mod explain;
mod load;
mod model;
mod validate;
pub mod values;
pub mod wire;

pub use diagnostic::{Diagnostic, LoadError};
pub use load::{DEFAULT_ENV, load, load_all, load_str};
pub use model::{HostSpec, LOCAL_DEFAULT_SIZE, LoadedStack};
pub use wire::StackFile;

/// The JSON Schema of the stack format, for editors.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(StackFile)).unwrap_or_default()
}
