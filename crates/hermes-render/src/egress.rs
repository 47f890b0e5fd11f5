//! An agent's egress proxy (tinyproxy, its only way out): its configuration, its filter, and
//! its container's health check.
//!
//! The filter matches whole URLs (`FilterURLs On`), so that it limits ports as well as names:
//! - every allowed hostname is reachable through CONNECT (HTTPS) on port 443 only (tinyproxy
//!   filters a CONNECT as `host:port`);
//! - a model endpoint at `https://host:port` adds CONNECT to that port, for that host alone;
//! - plain HTTP (tinyproxy filters `http://host[:port]/path`) is allowed only to a model
//!   endpoint at `http://host:port`, on that port.
//!
//! Everything else gets tinyproxy's 403 (`FilterDefaultDeny`), without a name lookup.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::RenderError;
use crate::agent::{AgentSpec, EGRESS_PROXY_PORT, spec_error};
use crate::templates::{AGENT, render_from};

/// A name no filter allows (`.invalid` never resolves): the health check asks the proxy for it
/// and expects tinyproxy's own 403, so nothing leaves the container.
const HEALTH_PROBE_HOST: &str = "hermes-infra-health.invalid";

/// The egress proxy's configuration and filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressFiles {
    /// `tinyproxy.conf`.
    pub config: String,
    /// The filter: one anchored extended regular expression a line.
    pub filter: String,
}

/// The egress proxy's files for an agent. `*.example.com` allows the subdomains of
/// `example.com`, not the name itself.
pub fn egress_proxy_files(name: &str, spec: &AgentSpec) -> Result<EgressFiles, RenderError> {
    let mut filter = String::new();
    let mut connect_ports = BTreeSet::from([443_u16]);
    for host in &spec.egress {
        let _ = writeln!(filter, "^{}:443$", host_pattern(name, host)?);
    }
    let models = std::iter::once(&spec.model).chain(spec.fallback_model.as_ref());
    for base_url in models.filter_map(|model| model.base_url.as_deref()) {
        let endpoint = Endpoint::parse(base_url)
            .ok_or_else(|| spec_error(name, format!("model endpoint `{base_url}` is not a URL")))?;
        let host = host_pattern(name, &endpoint.host)?;
        match (endpoint.https, endpoint.port) {
            (true, 443) => {}
            (true, port) => {
                let _ = writeln!(filter, "^{host}:{port}$");
                connect_ports.insert(port);
            }
            (false, port) => {
                if port == 80 {
                    let _ = writeln!(filter, "^http://{host}(/|$)");
                }
                let _ = writeln!(filter, "^http://{host}:{port}(/|$)");
            }
        }
    }
    let mut context = tera::Context::new();
    context.insert("agent", name);
    context.insert("port", &EGRESS_PROXY_PORT);
    context.insert("connect_ports", &connect_ports);
    let config = render_from(AGENT, "tinyproxy.conf.tera", &context)?;
    Ok(EgressFiles { config, filter })
}

/// The egress proxy container's health check (the image has bash, not curl): tinyproxy must
/// answer a request for a name nothing allows with its own 403.
pub fn egress_health_command() -> String {
    format!(
        "bash -c 'exec 3<>/dev/tcp/127.0.0.1/{EGRESS_PROXY_PORT} && \
         printf \"GET http://{HEALTH_PROBE_HOST}/ HTTP/1.0\\r\\n\\r\\n\" >&3 && \
         head -n 1 <&3 | grep -q \" 403 \"'"
    )
}

/// A model endpoint's scheme, host and port.
struct Endpoint {
    https: bool,
    host: String,
    port: u16,
}

impl Endpoint {
    fn parse(url: &str) -> Option<Self> {
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else {
            (false, url.strip_prefix("http://")?)
        };
        let authority = rest.split(['/', '?', '#']).next()?;
        let authority = authority.rsplit('@').next()?;
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().ok()?),
            None => (authority, if https { 443 } else { 80 }),
        };
        (!host.is_empty()).then(|| Self {
            https,
            host: host.to_owned(),
            port,
        })
    }
}

/// The extended regular expression of an allowed hostname (unanchored), or an error when it
/// is not a hostname.
fn host_pattern(agent: &str, host: &str) -> Result<String, RenderError> {
    let (subdomains, name) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, host),
    };
    let valid = !name.is_empty()
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !valid {
        return Err(spec_error(
            agent,
            format!("egress host `{host}` is not a hostname"),
        ));
    }
    let escaped = name.to_ascii_lowercase().replace('.', "\\.");
    Ok(if subdomains {
        format!("([a-z0-9-]+\\.)+{escaped}")
    } else {
        escaped
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn hostnames_become_patterns_and_nothing_else_does() {
        assert_eq!(
            host_pattern("a", "api.openai.com").unwrap(),
            "api\\.openai\\.com"
        );
        assert_eq!(
            host_pattern("a", "*.example.com").unwrap(),
            "([a-z0-9-]+\\.)+example\\.com"
        );
        assert!(host_pattern("a", "evil.com$|.*").is_err());
        assert!(host_pattern("a", "").is_err());
        assert!(host_pattern("a", "a..b").is_err());
    }

    #[test]
    fn endpoints_name_their_port() {
        let e = Endpoint::parse("http://llm.internal:8000/v1").unwrap();
        assert_eq!(
            (e.https, e.host.as_str(), e.port),
            (false, "llm.internal", 8000)
        );
        let e = Endpoint::parse("https://api.example.com/v1").unwrap();
        assert_eq!(
            (e.https, e.host.as_str(), e.port),
            (true, "api.example.com", 443)
        );
        assert!(Endpoint::parse("ftp://x/").is_none());
        assert!(Endpoint::parse("http://:80/").is_none());
    }
}
