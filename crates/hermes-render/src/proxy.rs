//! The reverse proxy phase: nginx from Debian's packages with one TLS server per agent
//! hostname, forwarding to that agent only, from the desired `reverse-proxy` attributes. Its
//! certificates come from a local CA kept on the host (`self-signed`), or from an ACME
//! directory (`acme`: Debian's certbot, HTTP-01 through nginx on port 80, renewed by certbot's
//! timer), with the local CA's as stand-ins until they are issued. Each server answers 421 to
//! a request for another name than its TLS session's, hides nginx's version, sends one HSTS
//! header, offers TLS 1.2 with ECDHE and AEAD ciphers only, and limits each client's rate per
//! hostname (see `templates/proxy/agents.conf.tera`).

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
    /// ACME: the contact address.
    #[serde(default)]
    pub acme_email: Option<String>,
    /// ACME: the directory (none: Let's Encrypt's).
    #[serde(default)]
    pub acme_directory: Option<String>,
    /// ACME: the reference of the CA certificate to trust for the directory.
    #[serde(default)]
    pub acme_ca: Option<String>,
}

/// TLS 1.2's cipher suites: ECDHE key exchange with AEAD ciphers only (no CBC, SHA-1, CCM,
/// ARIA, Camellia or DHE). TLS 1.3 keeps OpenSSL's suites, which are all of that kind.
const TLS12_CIPHERS: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
                             ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:\
                             ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/// Let's Encrypt's production ACME directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

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

    /// Whether certificates come from an ACME directory.
    pub fn acme(&self) -> bool {
        self.tls == "acme"
    }

    /// Debian packages the phase needs beyond [`Phase::packages`].
    pub fn extra_packages(&self) -> &'static [&'static str] {
        if self.acme() { &["certbot"] } else { &[] }
    }
}

fn spec(message: String) -> RenderError {
    RenderError::Spec {
        phase: Phase::ReverseProxy,
        message,
    }
}

/// The reverse proxy's files for one host; `acme_ca` is the PEM text of the CA to trust for a
/// private ACME directory (`acme-ca`, resolved by the caller).
pub fn proxy_files(spec_: &ProxySpec, acme_ca: Option<&str>) -> Result<Rendered, RenderError> {
    if !matches!(spec_.tls.as_str(), "self-signed" | "acme") {
        return Err(spec(format!(
            "`proxy.tls = \"{}\"` is not built yet; use `tls = \"self-signed\"` (a local CA on \
             the host) or `tls = \"acme\"`",
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
    let acme = acme_context(spec_, acme_ca)?;
    let mut context = tera::Context::new();
    context.insert("port", &spec_.port);
    context.insert("routes", &spec_.routes);
    context.insert("allow_from", &spec_.allow_from);
    context.insert("acme", &acme);
    context.insert("ciphers", TLS12_CIPHERS);
    let conf = render(Phase::ReverseProxy, "agents.conf.tera", &context)?;
    let certs = render(Phase::ReverseProxy, "proxy-certs.sh.tera", &context)?;
    let issue = render(Phase::ReverseProxy, "proxy-acme.sh.tera", &context)?;
    let mut files = vec![
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
        ManagedFile {
            path: ACME_SCRIPT.to_owned(),
            mode: 0o755,
            reload: Reload::None,
            content: issue,
        },
    ];
    if let (Some(acme), Some(pem)) = (&acme, acme_ca) {
        files.push(ManagedFile {
            path: acme.ca_path.to_owned(),
            mode: 0o644,
            reload: Reload::None,
            content: pem.to_owned(),
        });
        files.push(ManagedFile {
            path: "/etc/systemd/system/certbot.service.d/hermes-infra.conf".to_owned(),
            mode: 0o644,
            reload: Reload::SystemdUnit,
            content: render(Phase::ReverseProxy, "certbot-ca.conf.tera", &context)?,
        });
    }
    Ok(Rendered {
        phase: Phase::ReverseProxy,
        files,
        not_applicable: Vec::new(),
    })
}

/// The script that has certbot issue what the ACME directory has not issued yet (a no-op
/// without ACME); the phase runs it once nginx serves the challenges.
pub const ACME_SCRIPT: &str = "/usr/lib/hermes-infra/proxy-acme";

/// What the ACME templates need.
#[derive(Debug, Serialize)]
struct AcmeContext {
    email: String,
    directory: String,
    /// Where the CA of a private directory goes (set only with one).
    ca_path: &'static str,
    with_ca: bool,
}

fn acme_context(
    spec_: &ProxySpec,
    acme_ca: Option<&str>,
) -> Result<Option<AcmeContext>, RenderError> {
    if !spec_.acme() {
        return Ok(None);
    }
    let email = spec_
        .acme_email
        .clone()
        .ok_or_else(|| spec("ACME needs `proxy.acme-email`".to_owned()))?;
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "@._+-:/%~".contains(c))
    };
    if !plain(&email) || !email.contains('@') {
        return Err(spec(format!("`{email}` is not a plain e-mail address")));
    }
    let directory = spec_
        .acme_directory
        .clone()
        .unwrap_or_else(|| LETS_ENCRYPT.to_owned());
    if !plain(&directory) || !directory.starts_with("https://") {
        return Err(spec(format!(
            "`{directory}` is not a plain https:// ACME directory URL"
        )));
    }
    if let Some(pem) = acme_ca
        && !pem.contains("-----BEGIN CERTIFICATE-----")
    {
        return Err(spec(
            "`proxy.acme-ca` does not hold a PEM certificate".to_owned(),
        ));
    }
    Ok(Some(AcmeContext {
        email,
        directory,
        ca_path: "/etc/hermes-infra/proxy/acme-ca.pem",
        with_ca: acme_ca.is_some(),
    }))
}
