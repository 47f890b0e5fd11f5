//! Specifications of the engine, run against in-memory fakes of every seam (see `support`).

mod cancel;
mod failure;
mod host_keys;
mod image_history;
mod lock;
mod observe;
mod ordering;
mod refusals;
mod secrets;
mod ssh_ports;
mod support;
