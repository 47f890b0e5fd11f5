//! Images from the stack's registry: a host logs in (the password on the script's standard
//! input, kept in a root-only client configuration), trusts the registry's CA when the stack
//! names one, and pulls what its agents run (`assets/pull.sh`), one round trip.

use std::collections::BTreeMap;

use hermes_core::seams::{ProviderError, StepContext};
use hermes_core::{Address, ObservedResource};

use crate::connections::Inner;
use crate::scripts::{self, with_settings};
use crate::{RegistryAccess, images};

impl Inner {
    /// Pulls `references` on `host` from `registry`; returns the id each names there, in order.
    pub(crate) async fn pull_images(
        &self,
        host: &str,
        world: &BTreeMap<Address, ObservedResource>,
        registry: &RegistryAccess,
        ctx: &StepContext,
        references: &[String],
    ) -> Result<Vec<String>, ProviderError> {
        let plain = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "./:-_@".contains(c))
        };
        if let Some(bad) = references.iter().find(|r| !plain(r)) {
            return Err(ProviderError::Other(format!(
                "`{bad}` is not an image reference"
            )));
        }
        let resolve = async |reference: &Option<hermes_core::SecretRef>, what: &str| match reference
        {
            Some(r) => ctx.secrets.resolve(r).await.map(Some).map_err(|e| {
                ProviderError::Other(format!("registry `{}`: {what}: {e}", registry.server))
            }),
            None => Ok(None),
        };
        let password = resolve(&registry.password, "password").await?;
        let ca = resolve(&registry.ca, "ca").await?;
        let mut files: Vec<(&str, &[u8])> = Vec::new();
        if let Some(password) = &password {
            files.push(("password", password.expose().as_bytes()));
        }
        if let Some(ca) = &ca {
            files.push(("ca.crt", ca.expose().as_bytes()));
        }
        let payload = crate::payload::of_files(&files)
            .map_err(|e| ProviderError::Other(format!("cannot build the registry bundle: {e}")))?;
        let settings = [
            ("SERVER", registry.server.clone()),
            ("USERNAME", registry.username.clone().unwrap_or_default()),
            ("REFS", references.join(" ")),
        ];
        let out = self
            .run_root_checked(
                host,
                world,
                "image-pull",
                &with_settings(&settings, scripts::PULL),
                &payload,
            )
            .await?;
        let ids: BTreeMap<&str, &str> = out.lines().filter_map(|l| l.split_once(' ')).collect();
        references
            .iter()
            .map(|r| {
                let id = ids.get(r.as_str()).copied().unwrap_or_default();
                images::checked_id(id).map(|_| id.to_owned())
            })
            .collect()
    }
}
