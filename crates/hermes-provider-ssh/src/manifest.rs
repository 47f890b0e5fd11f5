//! The manifest each phase leaves on the host (`/etc/hermes-infra/manifest.d/<phase>.json`):
//! the desired attributes it applied, the templates' digest, and every managed file's digest.
//! Observation reads it back: the attributes become the observed ones, and a file whose digest
//! no longer matches is drift.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use hermes_core::Attrs;

/// What a phase recorded on the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// Format version.
    pub(crate) v: u32,
    /// The phase (`host-hardening`, `docker-engine`).
    pub(crate) phase: String,
    /// The desired attributes applied (never secret values: references only).
    pub(crate) spec: Attrs,
    /// Managed files and their `sha256:` digests, by path.
    pub(crate) files: BTreeMap<String, String>,
    /// Settings left out on this host, with the reason.
    #[serde(default)]
    pub(crate) not_applicable: Vec<String>,
}

/// Whether the `host-hardening` attributes `spec` run fail2ban (on unless they say otherwise).
pub(crate) fn fail2ban_enabled(spec: &Attrs) -> bool {
    spec.get("fail2ban")
        .and_then(|f| f.get("enabled"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(true)
}
