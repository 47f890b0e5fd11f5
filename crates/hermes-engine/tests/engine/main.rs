//! Specifications of the engine, run against in-memory fakes of every seam (see `support`).

mod cancel;
mod failure;
mod lock;
mod observe;
mod ordering;
mod refusals;
mod secrets;
mod support;
