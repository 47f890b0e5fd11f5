//! Ownership labels. Every cloud object and container `hermes-infra` creates carries them, and
//! discovery is by these labels only: nothing without them is ever modified or deleted.

use std::collections::BTreeMap;

use crate::resource::{Address, Scope};

/// Label key: the stack's name.
pub const STACK: &str = "hermes-infra/stack";
/// Label key: the environment.
pub const ENV: &str = "hermes-infra/env";
/// Label key: the resource address (`kind.name`) inside the stack.
pub const ADDRESS: &str = "hermes-infra/address";
/// Label key: digest of the resource's desired attributes when it was last applied.
pub const SPEC_DIGEST: &str = "hermes-infra/spec-digest";
/// Label key: the host role (for hosts).
pub const ROLE: &str = "hermes-infra/role";

/// The labels that mark `address` as owned by `scope`.
pub fn ownership(scope: &Scope, address: &Address) -> BTreeMap<String, String> {
    BTreeMap::from([
        (STACK.to_owned(), scope.stack.clone()),
        (ENV.to_owned(), scope.env.clone()),
        (ADDRESS.to_owned(), address.to_string()),
    ])
}

/// Whether `labels` say the object belongs to `scope` (stack and environment both match).
pub fn is_owned_by(labels: &BTreeMap<String, String>, scope: &Scope) -> bool {
    labels.get(STACK) == Some(&scope.stack) && labels.get(ENV) == Some(&scope.env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Kind;

    #[test]
    fn ownership_round_trips() {
        let scope = Scope::new("shop", "prod");
        let labels = ownership(&scope, &Address::new(Kind::Host, "web-1"));
        assert!(is_owned_by(&labels, &scope));
        assert!(!is_owned_by(&labels, &Scope::new("shop", "staging")));
        assert!(!is_owned_by(&labels, &Scope::new("other", "prod")));
        assert_eq!(labels[ADDRESS], "host.web-1");
    }
}
