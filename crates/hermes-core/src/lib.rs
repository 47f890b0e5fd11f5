//! Shared vocabulary of `hermes-infra`: resource addresses and kinds, desired and observed
//! resources, ownership labels, secret references and redacted secret values, digests, and the
//! seam traits (`Provider`, `Connector`/`Remote`, `StateStore`) that effects live behind.
//!
//! This crate does no I/O and knows no cloud, SSH library or file format: it only names things
//! so that the stack loader, the planner, the engine and the providers agree on them.

pub mod actor;
pub mod digest;
pub mod labels;
pub mod resource;
pub mod seams;
pub mod secret;
pub mod version;

pub use actor::Actor;
pub use resource::{Address, Attrs, Kind, ObservedResource, Resource, Scope};
pub use secret::{Secret, SecretRef, SecretRefError};
