//! A host's facts, read in one round trip, and the observed resources they describe.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;

use hermes_core::resource::IMAGE_ID_ATTR;
use hermes_core::{Address, Kind, ObservedResource};
use hermes_render::{HostFacts, Phase};

use crate::agents::{AgentManifest, MANIFESTS, Names};
use crate::manifest::Manifest;

/// What the facts script reports.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Facts {
    /// Format version.
    pub(crate) v: u32,
    /// `systemd-detect-virt --container`: `none` on a VM or a cloud server.
    pub(crate) container: String,
    /// The address the admin connection comes from.
    pub(crate) admin_source: String,
    /// `loaded` when hermes-infra's nftables table is in the ruleset.
    pub(crate) firewall: String,
    /// `systemctl is-active` of the services the phases run.
    pub(crate) services: BTreeMap<String, String>,
    /// Each phase that left a manifest.
    pub(crate) phases: BTreeMap<String, PhaseFacts>,
    /// Each agent's manifest text (lines joined by spaces), by agent.
    #[serde(default)]
    pub(crate) agents: BTreeMap<String, String>,
    /// Agent containers, `name|image|state|status;` each (read only where agents are).
    #[serde(default)]
    pub(crate) containers: String,
    /// The host's images, `repository:tag|id;` each (read only where agents are).
    #[serde(default)]
    pub(crate) images: String,
}

/// One phase's manifest and the current digests of its files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct PhaseFacts {
    /// The manifest's text (lines joined by spaces; control characters as spaces).
    manifest: String,
    /// `sha256:<hex>` or `missing`, by path.
    files: BTreeMap<String, String>,
}

impl Facts {
    /// Reads the facts script's output.
    pub(crate) fn parse(stdout: &[u8]) -> Result<Self, String> {
        let text = String::from_utf8_lossy(stdout);
        let line = text
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .unwrap_or("");
        let facts: Facts = serde_json::from_str(line)
            .map_err(|e| format!("the facts script's output is not the expected JSON ({e})"))?;
        if facts.v != 2 {
            return Err(format!("facts format {} is not supported", facts.v));
        }
        Ok(facts)
    }

    /// What the renderer needs.
    pub(crate) fn host_facts(&self) -> HostFacts {
        HostFacts {
            kernel_own: self.container == "none",
            admin_source: self.admin_source.parse::<IpAddr>().ok(),
        }
    }

    fn active(&self, service: &str) -> bool {
        self.services.get(service).map(String::as_str) == Some("active")
    }

    /// The resource of `phase` on `host` as the host reports it, if the phase ran there.
    pub(crate) fn observed(&self, host: &str, phase: Phase) -> Option<ObservedResource> {
        let found = self.phases.get(phase.as_str())?;
        let kind = match phase {
            Phase::HostHardening => Kind::HostHardening,
            Phase::DockerEngine => Kind::DockerEngine,
            Phase::ReverseProxy => Kind::ReverseProxy,
        };
        let mut observed = ObservedResource::new(Address::new(kind, host), host.to_owned());
        let manifest = serde_json::from_str::<Manifest>(&found.manifest).ok();
        let Some(manifest) = manifest else {
            observed.drift.insert(
                format!("/etc/hermes-infra/manifest.d/{phase}.json"),
                "unreadable".to_owned(),
            );
            return Some(observed);
        };
        observed.attrs = manifest.spec.clone();
        for (path, recorded) in &manifest.files {
            match found.files.get(path).map(String::as_str) {
                Some(actual) if actual == recorded => {}
                Some("missing") | None => {
                    observed
                        .drift
                        .insert(path.clone(), "missing on the host".to_owned());
                }
                Some(_) => {
                    observed
                        .drift
                        .insert(path.clone(), "edited on the host".to_owned());
                }
            }
        }
        match phase {
            Phase::HostHardening => {
                if !self.active("ssh") {
                    observed.drift.insert("ssh".into(), "not running".into());
                }
                if crate::manifest::fail2ban_enabled(&manifest.spec) && !self.active("fail2ban") {
                    observed
                        .drift
                        .insert("fail2ban".into(), "not running".into());
                }
                if self.firewall != "loaded" {
                    observed.drift.insert(
                        "firewall".into(),
                        "the hermes-infra nftables table is not loaded".into(),
                    );
                }
            }
            Phase::DockerEngine => {
                if !self.active("docker") {
                    observed.drift.insert("docker".into(), "not running".into());
                }
            }
            Phase::ReverseProxy => {
                if !self.active("nginx") {
                    observed.drift.insert("nginx".into(), "not running".into());
                }
            }
        }
        Some(observed)
    }
}

/// `docker ps`'s status without its durations (`Exited (143) 2 seconds ago` is `Exited (143)`,
/// `Up 1 minute (unhealthy)` is `Up (unhealthy)`): the plan's digest of what it saw must not
/// change with the clock between planning and applying.
fn timeless(status: &str) -> String {
    let mut words = status.split_whitespace();
    let mut kept: Vec<&str> = words.next().into_iter().collect();
    let mut depth = 0_usize;
    for word in words {
        let opens = word.starts_with('(');
        if depth > 0 || opens {
            kept.push(word);
        }
        depth = (depth + word.matches('(').count()).saturating_sub(word.matches(')').count());
    }
    kept.join(" ")
}

/// One agent container as `docker ps` shows it.
struct AgentContainer<'a> {
    image: &'a str,
    state: &'a str,
    status: &'a str,
}

impl Facts {
    /// The agents on `host` as it reports them: the attributes their last apply recorded, and
    /// drift when a container is missing, stopped or unhealthy, or when the image tag it was
    /// deployed from now names another image on the host (a newer push).
    pub(crate) fn agents(&self, host: &str) -> Vec<ObservedResource> {
        let containers: BTreeMap<&str, AgentContainer<'_>> = entries(&self.containers)
            .filter_map(|e| {
                let mut parts = e.splitn(4, '|');
                Some((
                    parts.next()?,
                    AgentContainer {
                        image: parts.next()?,
                        state: parts.next()?,
                        status: parts.next().unwrap_or_default(),
                    },
                ))
            })
            .collect();
        let images: BTreeMap<&str, &str> = entries(&self.images)
            .filter_map(|e| e.split_once('|'))
            .collect();
        let mut found = Vec::new();
        for (agent, text) in &self.agents {
            let mut observed =
                ObservedResource::new(Address::new(Kind::Agent, agent), host.to_owned());
            let Ok(manifest) = serde_json::from_str::<AgentManifest>(text) else {
                observed
                    .drift
                    .insert(format!("{MANIFESTS}/{agent}.json"), "unreadable".to_owned());
                found.push(observed);
                continue;
            };
            observed.attrs = manifest.spec;
            let names = Names::of(agent);
            let container = containers.get(names.container.as_str());
            // The image it runs, healthy or not (an unhealthy agent is one to roll back).
            if let Some(c) = container.filter(|c| c.image.starts_with("sha256:")) {
                observed
                    .attrs
                    .insert(IMAGE_ID_ATTR.to_owned(), c.image.into());
            }
            match container {
                None => {
                    observed
                        .drift
                        .insert("container".into(), "missing on the host".into());
                }
                Some(c) if c.state != "running" => {
                    observed.drift.insert(
                        "container".into(),
                        format!("{} ({})", c.state, timeless(c.status)),
                    );
                }
                Some(c) if !c.status.contains("(healthy)") => {
                    observed.drift.insert(
                        "container".into(),
                        format!("not healthy ({})", timeless(c.status)),
                    );
                }
                Some(c) => {
                    let tag = observed.attrs.get("image").and_then(|v| v.as_str());
                    if let Some(now) = tag.and_then(|t| images.get(t))
                        && *now != c.image
                    {
                        observed.drift.insert(
                            "image".into(),
                            format!("{} now names {now}", tag.unwrap_or_default()),
                        );
                    }
                }
            }
            found.push(observed);
        }
        found
    }
}

/// The `;`-terminated entries of a facts list, trimmed.
fn entries(list: &str) -> impl Iterator<Item = &str> {
    list.split(';').map(str::trim).filter(|e| !e.is_empty())
}

/// The setup of a host whose facts could not be read, as drift naming why: planned as an
/// update, whose apply then fails with the same reason.
pub(crate) fn unreadable(host: &str, why: &str) -> ObservedResource {
    let mut observed =
        ObservedResource::new(Address::new(Kind::HostHardening, host), host.to_owned());
    observed
        .drift
        .insert("facts".to_owned(), format!("unreadable: {why}"));
    observed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts_with(manifest: &Manifest, files: &[(&str, &str)]) -> Facts {
        let text = serde_json::to_string(manifest).expect("json");
        let files: BTreeMap<&str, &str> = files.iter().copied().collect();
        let line = json!({
            "v": 2, "container": "docker", "admin_source": "172.18.0.1", "firewall": "loaded",
            "services": {"ssh": "active", "fail2ban": "active", "nftables": "active", "docker": "inactive"},
            "phases": {"host-hardening": {"manifest": text, "files": files}},
        });
        Facts::parse(format!("noise\n{line}\n").as_bytes()).expect("facts parse")
    }

    fn manifest() -> Manifest {
        Manifest {
            v: 1,
            phase: "host-hardening".into(),
            spec: [("ssh-port".to_owned(), json!(22))].into_iter().collect(),
            files: [("/etc/a".to_owned(), "sha256:aa".to_owned())]
                .into_iter()
                .collect(),
            not_applicable: Vec::new(),
        }
    }

    #[test]
    fn an_intact_phase_reports_its_applied_attributes_and_no_drift() {
        let facts = facts_with(&manifest(), &[("/etc/a", "sha256:aa")]);
        let observed = facts
            .observed("web-1", Phase::HostHardening)
            .expect("phase ran");
        assert_eq!(observed.attrs.get("ssh-port"), Some(&json!(22)));
        assert!(observed.drift.is_empty(), "{:?}", observed.drift);
        assert!(!facts.host_facts().kernel_own);
        assert_eq!(
            facts.host_facts().admin_source,
            Some("172.18.0.1".parse().expect("ip"))
        );
    }

    #[test]
    fn an_edited_or_missing_file_is_drift() {
        let edited = facts_with(&manifest(), &[("/etc/a", "sha256:bb")]);
        let drift = edited
            .observed("web-1", Phase::HostHardening)
            .expect("phase ran")
            .drift;
        assert_eq!(
            drift.get("/etc/a").map(String::as_str),
            Some("edited on the host")
        );
        let missing = facts_with(&manifest(), &[("/etc/a", "missing")]);
        let drift = missing
            .observed("web-1", Phase::HostHardening)
            .expect("phase ran")
            .drift;
        assert_eq!(
            drift.get("/etc/a").map(String::as_str),
            Some("missing on the host")
        );
    }

    /// Runs the real facts script with `sh`, reading manifests from `state` instead of
    /// `/etc/hermes-infra/manifest.d`.
    fn run_script(state: &std::path::Path) -> Facts {
        let script = crate::scripts::FACTS.replace(
            "state=/etc/hermes-infra/manifest.d",
            &format!("state={}", state.display()),
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script, "facts", "192.0.2.7 50000 22"])
            .output()
            .expect("sh runs");
        assert!(out.status.success(), "{out:?}");
        Facts::parse(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
    }

    #[test]
    fn the_script_reports_manifests_digests_and_missing_files_as_json() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = dir.path();
        let kept = state.join("kept");
        std::fs::write(&kept, "y").expect("write");
        let gone = state.join("gone");
        let mut m = manifest();
        m.spec.insert("note".into(), json!("a \"quoted\" \\ value"));
        std::fs::write(
            state.join("host-hardening.json"),
            serde_json::to_string_pretty(&m).expect("json"),
        )
        .expect("write");
        std::fs::write(
            state.join("host-hardening.files"),
            format!("{}\n{}\n", kept.display(), gone.display()),
        )
        .expect("write");
        // A hand-broken manifest of the other phase.
        std::fs::write(state.join("docker-engine.json"), "{\"v\": 1, \t\u{1}broken")
            .expect("write");

        let facts = run_script(state);
        assert_eq!(facts.admin_source, "192.0.2.7");
        let observed = facts
            .observed("h", Phase::HostHardening)
            .expect("the phase ran");
        assert_eq!(observed.attrs["note"], json!("a \"quoted\" \\ value"));
        let digests = &facts.phases["host-hardening"].files;
        assert_eq!(
            digests
                .get(kept.to_str().expect("utf-8"))
                .map(String::as_str),
            Some("sha256:a1fce4363854ff888cff4b8e7875d600c2682390412a8cf79b37d0b11148b0fa")
        );
        assert!(!digests.contains_key(gone.to_str().expect("utf-8")));
        let broken = facts
            .observed("h", Phase::DockerEngine)
            .expect("a manifest exists");
        assert_eq!(
            broken.drift.values().next().map(String::as_str),
            Some("unreadable")
        );
    }

    #[test]
    fn the_script_reports_no_phase_on_a_host_never_hardened() {
        let dir = tempfile::tempdir().expect("temp dir");
        let facts = run_script(&dir.path().join("absent"));
        assert!(facts.phases.is_empty());
        assert!(facts.agents.is_empty());
        assert_eq!(
            facts
                .services
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["docker", "fail2ban", "nftables", "nginx", "ssh"]
        );
    }

    #[test]
    fn a_phase_that_never_ran_is_not_observed() {
        let facts = facts_with(&manifest(), &[]);
        assert!(facts.observed("web-1", Phase::DockerEngine).is_none());
    }

    fn agent_facts(containers: &str, images: &str) -> Facts {
        let manifest = json!({"v": 1, "agent": "acme", "spec": {"image": "hermes-agent:0.19.0", "host": "web-1"}});
        let line = json!({
            "v": 2, "container": "docker", "admin_source": "172.18.0.1", "firewall": "loaded",
            "services": {}, "phases": {},
            "agents": {"acme": manifest.to_string()},
            "containers": containers, "images": images,
        });
        Facts::parse(line.to_string().as_bytes()).expect("facts parse")
    }

    #[test]
    fn a_healthy_agent_on_its_tags_image_has_no_drift() {
        let facts = agent_facts(
            "hermes-agent-acme|sha256:aa|running|Up 3 minutes (healthy); ",
            "hermes-agent:0.19.0|sha256:aa; other:1|sha256:bb;",
        );
        let agents = facts.agents("web-1");
        assert_eq!(agents.len(), 1);
        assert_eq!(agents[0].address, Address::new(Kind::Agent, "acme"));
        assert_eq!(agents[0].id, "web-1");
        assert_eq!(
            agents[0].attrs.get("image"),
            Some(&json!("hermes-agent:0.19.0"))
        );
        assert_eq!(
            agents[0].attrs.get(IMAGE_ID_ATTR),
            Some(&json!("sha256:aa")),
            "the image it runs, for the state's history"
        );
        assert!(agents[0].drift.is_empty(), "{:?}", agents[0].drift);
    }

    #[test]
    fn a_containers_drift_does_not_change_with_the_clock() {
        for (status, timeless_status) in [
            ("Exited (143) 2 seconds ago", "Exited (143)"),
            ("Up 1 minute (unhealthy)", "Up (unhealthy)"),
            (
                "Up About a minute (health: starting)",
                "Up (health: starting)",
            ),
            ("Restarting (1) Less than a second ago", "Restarting (1)"),
            ("Created", "Created"),
        ] {
            assert_eq!(timeless(status), timeless_status);
        }
        let images = "hermes-agent:0.19.0|sha256:new;";
        let drift = |status: &str| {
            agent_facts(
                &format!("hermes-agent-acme|sha256:new|exited|{status};"),
                images,
            )
            .agents("web-1")[0]
                .drift
                .clone()
        };
        assert_eq!(
            drift("Exited (143) 2 seconds ago"),
            drift("Exited (143) 3 seconds ago")
        );
        assert_eq!(
            drift("Exited (143) 2 seconds ago")["container"],
            "exited (Exited (143))"
        );
    }

    #[test]
    fn a_missing_stopped_unhealthy_or_outdated_agent_is_drift() {
        let images = "hermes-agent:0.19.0|sha256:new;";
        for (containers, expected) in [
            ("", "container"),
            (
                "hermes-agent-acme|sha256:new|exited|Exited (1) 2 minutes ago;",
                "container",
            ),
            (
                "hermes-agent-acme|sha256:new|running|Up 1 minute (unhealthy);",
                "container",
            ),
            (
                "hermes-agent-acme|sha256:old|running|Up 1 minute (healthy);",
                "image",
            ),
        ] {
            let drift = &agent_facts(containers, images).agents("web-1")[0].drift;
            assert!(drift.contains_key(expected), "{containers}: {drift:?}");
        }
    }
}
