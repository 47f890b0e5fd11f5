//! The Docker engine phase: Debian's Docker packages and the daemon settings of the CIS Docker
//! Benchmark section 2 that do not break the agents (the template explains each one).

use crate::templates::render;
use crate::{HostFacts, ManagedFile, Phase, Reload, RenderError, Rendered};

/// The files of the Docker engine phase for one host.
pub fn docker_files(facts: &HostFacts) -> Result<Rendered, RenderError> {
    let mut context = tera::Context::new();
    context.insert("kernel_own", &facts.kernel_own);
    let daemon_json = render(Phase::DockerEngine, "daemon.json.tera", &context)?;
    Ok(Rendered {
        phase: Phase::DockerEngine,
        files: vec![ManagedFile {
            path: "/etc/docker/daemon.json".to_owned(),
            mode: 0o644,
            reload: Reload::Docker,
            content: daemon_json,
        }],
        not_applicable: Vec::new(),
    })
}
