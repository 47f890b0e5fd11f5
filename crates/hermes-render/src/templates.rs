//! The templates, embedded from the repository's `templates/` at build time.

use crate::Phase;

macro_rules! template {
    ($name:literal) => {
        template!("host", $name)
    };
    ($dir:literal, $name:literal) => {
        (
            $name,
            include_str!(concat!("../../../templates/", $dir, "/", $name)),
        )
    };
}

/// The host-hardening templates, by name.
pub(crate) const HARDENING: &[(&str, &str)] = &[
    template!("sshd.conf.tera"),
    template!("authorized_keys.tera"),
    template!("sudoers.tera"),
    template!("nftables.conf.tera"),
    template!("nftables-service.conf.tera"),
    template!("login.defs.sed.tera"),
    template!("issue.tera"),
    template!("tmout.sh.tera"),
    template!("core-limits.conf.tera"),
    template!("coredump.conf.tera"),
    template!("modprobe.conf.tera"),
    template!("fail2ban.local.tera"),
    template!("unattended-upgrades.conf.tera"),
    template!("auto-upgrades.conf.tera"),
    template!("sysctl.conf.tera"),
];

/// The Docker engine templates, by name.
pub(crate) const DOCKER: &[(&str, &str)] = &[template!("daemon.json.tera")];

/// The reverse proxy's templates.
pub(crate) const PROXY: &[(&str, &str)] = &[
    template!("proxy", "agents.conf.tera"),
    template!("proxy", "proxy-certs.sh.tera"),
    template!("proxy", "proxy-acme.sh.tera"),
    template!("proxy", "certbot-ca.conf.tera"),
];

/// An agent's templates: its Hermes configuration, its egress proxy's, and the image recipe's
/// install step.
pub(crate) const AGENT: &[(&str, &str)] = &[
    template!("agent", "config.yaml.tera"),
    template!("egress", "tinyproxy.conf.tera"),
    template!("agent-image", "install.sh.tera"),
];

/// The templates of `phase`.
pub(crate) fn of_phase(phase: Phase) -> &'static [(&'static str, &'static str)] {
    match phase {
        Phase::HostHardening => HARDENING,
        Phase::DockerEngine => DOCKER,
        Phase::ReverseProxy => PROXY,
    }
}

/// Renders template `name` of `phase` with `context`.
pub(crate) fn render(
    phase: Phase,
    name: &str,
    context: &tera::Context,
) -> Result<String, crate::RenderError> {
    render_from(of_phase(phase), name, context)
}

/// Renders template `name` of `templates` with `context`.
pub(crate) fn render_from(
    templates: &[(&str, &str)],
    name: &str,
    context: &tera::Context,
) -> Result<String, crate::RenderError> {
    let source = templates
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .ok_or_else(|| crate::RenderError::Template {
            template: name.to_owned(),
            message: "no such template".to_owned(),
        })?;
    let mut tera = tera::Tera::default();
    // Config files, not HTML: nothing is escaped.
    tera.autoescape_on(Vec::new());
    tera.add_raw_template(name, source)
        .and_then(|()| tera.render(name, context))
        .map_err(|e| crate::RenderError::Template {
            template: name.to_owned(),
            message: chain(&e),
        })
}

/// Tera's error with its causes (the first line alone often says only "failed to render").
fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
