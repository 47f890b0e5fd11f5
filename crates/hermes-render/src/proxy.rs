//! The reverse proxy phase: nginx from Debian's packages with one TLS server per agent
//! hostname, forwarding to that agent only, and the certificates of a local CA kept on the
//! host, from the desired `reverse-proxy` attributes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::templates::render;
use crate::{ManagedFile, Phase, Reload, RenderError, Rendered};

/// The desired `reverse-proxy` attributes, as the planner writes them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ProxySpec {
    /// `self-signed`, `acme` or `off`.
    pub tls: String,
    /// `public` or `private`.
    pub listen: String,
    /// The HTTPS port.
    pub port: u16,
    /// Sources allowed (none: anyone the firewall lets in).
    #[serde(default)]
    pub allow_from: Vec<String>,
    /// Hostname to agent.
    pub routes: Vec<Route>,
}

/// One hostname and the agent it forwards to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The agent.
    pub agent: String,
    /// Its hostname.
    pub hostname: String,
}

impl ProxySpec {
    /// Reads the desired attributes of a `reverse-proxy` resource.
    pub fn from_attrs(attrs: &hermes_core::Attrs) -> Result<Self, RenderError> {
        let object: serde_json::Map<String, Value> =
            attrs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        serde_json::from_value(Value::Object(object)).map_err(|e| spec(e.to_string()))
    }
}

fn spec(message: String) -> RenderError {
    RenderError::Spec {
        phase: Phase::ReverseProxy,
        message,
    }
}

/// The reverse proxy's files for one host.
pub fn proxy_files(spec_: &ProxySpec) -> Result<Rendered, RenderError> {
    if spec_.tls != "self-signed" {
        return Err(spec(format!(
            "`proxy.tls = \"{}\"` is not built yet; use `tls = \"self-signed\"` (a local CA on \
             the host)",
            spec_.tls
        )));
    }
    if spec_.listen != "public" {
        return Err(spec(format!(
            "`proxy.listen = \"{}\"` is not built yet; the proxy listens on every address of \
             the host (the firewall decides who reaches it)",
            spec_.listen
        )));
    }
    for route in &spec_.routes {
        let safe = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        };
        if !safe(&route.hostname) || !safe(&route.agent) {
            return Err(spec(format!(
                "route `{}` -> `{}` is not a hostname and an agent name",
                route.hostname, route.agent
            )));
        }
    }
    let mut context = tera::Context::new();
    context.insert("port", &spec_.port);
    context.insert("routes", &spec_.routes);
    context.insert("allow_from", &spec_.allow_from);
    let conf = render(Phase::ReverseProxy, "agents.conf.tera", &context)?;
    let certs = render(Phase::ReverseProxy, "proxy-certs.sh.tera", &context)?;
    Ok(Rendered {
        phase: Phase::ReverseProxy,
        files: vec![
            ManagedFile {
                path: "/etc/nginx/conf.d/hermes-agents.conf".to_owned(),
                mode: 0o644,
                reload: Reload::Nginx,
                content: conf,
            },
            ManagedFile {
                path: "/usr/lib/hermes-infra/proxy-certs".to_owned(),
                mode: 0o755,
                reload: Reload::Certificates,
                content: certs,
            },
        ],
        not_applicable: Vec::new(),
    })
}
