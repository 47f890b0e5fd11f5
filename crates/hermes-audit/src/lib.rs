//! Pure checks behind `hermes-infra audit`: the CIS Docker Benchmark's container runtime checks
//! (section 5, docker-bench-security's numbering, CIS Docker 1.6.0) on one container's
//! `docker inspect` object. No I/O: the caller runs `docker inspect` where the container is.
//!
//! Checks that need more than `inspect` (5.1 swarm mode, 5.9 needed ports, 5.23/5.24 `docker
//! exec` use) are left out; 5.7 (no sshd) uses the container's process list when the caller
//! has it.

mod cis;

pub use cis::{AuditContext, Finding, Status, cis_container_checks};
