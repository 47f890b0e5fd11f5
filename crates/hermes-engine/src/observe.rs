//! Observation: asking every provider what exists.

use std::collections::BTreeMap;

use hermes_core::{Address, ObservedResource, Scope};

use crate::engine::Engine;
use crate::error::EngineError;
use crate::event::Event;

impl Engine {
    /// Everything the providers find in `scope`. Providers are asked one after the other, in
    /// the order given to [`Engine::new`], each seeing what the earlier ones found (an SSH-based
    /// provider needs the hosts' addresses); each must report only its own kinds. One call per
    /// provider, no retries (providers own their retry policy).
    pub async fn observe(&self, scope: &Scope) -> Result<Vec<ObservedResource>, EngineError> {
        self.reporter.event(&Event::Observing);
        let mut world: BTreeMap<Address, ObservedResource> = BTreeMap::new();
        let mut all = Vec::new();
        for provider in &self.providers {
            let found =
                provider
                    .observe(scope, &world)
                    .await
                    .map_err(|source| EngineError::Observe {
                        provider: provider.name().to_owned(),
                        scope: scope.clone(),
                        source,
                    })?;
            tracing::debug!(provider = provider.name(), found = found.len(), "observed");
            for resource in found {
                if !provider.kinds().contains(&resource.address.kind) {
                    return Err(EngineError::ForeignObservation {
                        provider: provider.name().to_owned(),
                        address: resource.address,
                    });
                }
                world.insert(resource.address.clone(), resource.clone());
                all.push(resource);
            }
        }
        Ok(all)
    }
}

/// Digest of observed resources, independent of the order providers listed them in: the value a
/// plan records as its `observed_digest` (the same computation as `hermes_plan::plan`).
pub fn observed_digest(observed: &[ObservedResource]) -> String {
    let mut sorted: Vec<&ObservedResource> = observed.iter().collect();
    sorted.sort_by(|a, b| a.address.cmp(&b.address).then_with(|| a.id.cmp(&b.id)));
    hermes_core::digest::of_json(&sorted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hermes_core::{Kind, Resource};
    use hermes_plan::{Desired, plan};

    #[test]
    fn digest_matches_the_planners_whatever_the_order() {
        let observed = vec![
            ObservedResource::new(Address::new(Kind::Agent, "a"), "c1").attr("image", "x"),
            ObservedResource::new(Address::new(Kind::Host, "h"), "s2").attr("size", "m"),
            ObservedResource::new(Address::new(Kind::Host, "h"), "s1"),
        ];
        let desired = Desired {
            scope: Scope::new("shop", "prod"),
            stack_digest: "sha256:stack".to_owned(),
            resources: vec![Resource::new(Address::new(Kind::Host, "h"))],
        };
        let planned = plan(&desired, &observed).observed_digest;
        assert_eq!(observed_digest(&observed), planned);
        let mut reversed = observed.clone();
        reversed.reverse();
        assert_eq!(observed_digest(&reversed), planned);
        assert_ne!(observed_digest(&observed[..2]), planned);
    }
}
