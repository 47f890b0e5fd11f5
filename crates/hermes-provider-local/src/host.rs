//! Local hosts: one systemd container per host, on a Docker network of its own per stack and
//! environment, with the stack's ownership labels. What a host is and how it differs from a
//! cloud host is written down in `HOSTS.md`.

use std::collections::BTreeMap;

use hermes_core::resource::VM_FORWARD_ATTR;
use hermes_core::seams::ProviderError;
use hermes_core::{Address, Resource, Scope, labels};

use crate::{FORWARD_LABEL, KIND_LABEL, SIZE_LABEL};

/// CPUs and memory of a local host size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeLimits {
    /// CPU limit (clamped to this machine's CPUs).
    pub cpus: u32,
    /// Memory limit in GiB.
    pub memory_gib: u32,
}

/// The limits of `size` (`small`, `medium`, `large`).
pub fn size_limits(size: &str) -> Option<SizeLimits> {
    match size {
        "small" => Some(SizeLimits {
            cpus: 1,
            memory_gib: 2,
        }),
        "medium" => Some(SizeLimits {
            cpus: 2,
            memory_gib: 4,
        }),
        "large" => Some(SizeLimits {
            cpus: 4,
            memory_gib: 8,
        }),
        _ => None,
    }
}

/// Docker object names of one stack and environment. Names are derived, so that two stacks
/// (or two environments of one stack) never share a network or a container.
#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
}

impl Names {
    /// Names for `scope`.
    pub fn new(scope: &Scope) -> Self {
        Self {
            prefix: format!("hermes-{}-{}", scope.stack, scope.env),
        }
    }

    /// The network of the stack and environment.
    pub fn network(&self) -> String {
        self.prefix.clone()
    }

    /// The container of host `host`.
    pub fn container(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }
}

/// Labels of a host container (and of its Docker data volume).
pub fn host_labels(scope: &Scope, desired: &Resource) -> BTreeMap<String, String> {
    let mut l = labels::ownership(scope, &desired.address);
    l.insert(labels::SPEC_DIGEST.to_owned(), desired.spec_digest());
    for (attr, label) in [
        ("size", SIZE_LABEL),
        ("kind", KIND_LABEL),
        ("role", labels::ROLE),
        (VM_FORWARD_ATTR, FORWARD_LABEL),
    ] {
        if let Some(v) = desired.attrs.get(attr).and_then(|v| v.as_str()) {
            l.insert(label.to_owned(), v.to_owned());
        }
    }
    l
}

/// The host name of a host address.
pub fn host_name(address: &Address) -> Result<&str, ProviderError> {
    if address.kind == hermes_core::Kind::Host {
        Ok(&address.name)
    } else {
        Err(ProviderError::Other(format!("`{address}` is not a host")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hermes_core::Kind;

    #[test]
    fn names_keep_stacks_and_environments_apart() {
        let a = Names::new(&Scope::new("shop", "dev"));
        let b = Names::new(&Scope::new("shop", "prod"));
        assert_ne!(a.network(), b.network());
        assert_ne!(a.container("web-1"), b.container("web-1"));
        assert_eq!(a.container("web-1"), "hermes-shop-dev-web-1");
    }

    #[test]
    fn labels_carry_ownership_size_kind_role_and_spec_digest() {
        let scope = Scope::new("shop", "dev");
        let r = Resource::new(Address::new(Kind::Host, "web-1"))
            .fixed_attr("size", "medium")
            .attr("role", "agents");
        let l = host_labels(&scope, &r);
        assert_eq!(l[labels::ADDRESS], "host.web-1");
        assert_eq!(l[SIZE_LABEL], "medium");
        assert_eq!(l[labels::ROLE], "agents");
        assert!(l[labels::SPEC_DIGEST].starts_with("sha256:"));
        assert!(labels::is_owned_by(&l, &scope));
    }

    #[test]
    fn sizes() {
        assert_eq!(
            size_limits("medium"),
            Some(SizeLimits {
                cpus: 2,
                memory_gib: 4
            })
        );
        assert_eq!(size_limits("huge"), None);
    }
}
