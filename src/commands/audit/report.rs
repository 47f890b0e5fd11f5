//! What `audit` reports for each host, and its text form. A figure that could not be measured
//! is `null`, and the host's `errors` say which step failed and why.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::parse::{AgentChecks, Fail2ban, LynisRun, SshAudit};
use super::tenancy::Tenancy;

/// How many of the largest Lynis point losses the text shows per host.
const LOSSES_SHOWN: usize = 5;

/// Lynis' figures for one host.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Lynis {
    /// The profile of the run: `hermes-compare` on hosts that share this machine's kernel,
    /// `default` on hosts that own theirs.
    pub(crate) profile: &'static str,
    #[serde(flatten)]
    pub(crate) run: LynisRun,
}

/// One host's audit.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct HostAudit {
    /// `shared` (a container on the machine's kernel), `own` (a VM or a cloud server), or
    /// `unknown`.
    pub(crate) kernel: String,
    pub(crate) lynis: Option<Lynis>,
    pub(crate) ssh_audit: Option<SshAudit>,
    pub(crate) fail2ban: Option<Fail2ban>,
    pub(crate) listeners: Option<Vec<String>>,
    pub(crate) pending_security_updates: Option<u32>,
    /// The CIS Docker section 5 checks of each running agent container, by agent.
    pub(crate) agents: Option<BTreeMap<String, AgentChecks>>,
    /// The tenant boundary: agents' UIDs, probes from inside them, the proxy's TLS checks.
    pub(crate) tenancy: Option<Tenancy>,
    /// Steps that failed, each naming the host and the step.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) errors: Vec<String>,
}

impl HostAudit {
    /// An audit with nothing measured yet.
    pub(crate) fn new(kernel: &str) -> Self {
        Self {
            kernel: kernel.to_owned(),
            lynis: None,
            ssh_audit: None,
            fail2ban: None,
            listeners: None,
            pending_security_updates: None,
            agents: None,
            tenancy: None,
            errors: Vec::new(),
        }
    }

    /// The figure, or the error (naming `host` and `step`) recorded in its place.
    pub(crate) fn keep<T>(
        &mut self,
        host: &str,
        step: &str,
        measured: Result<T, String>,
    ) -> Option<T> {
        match measured {
            Ok(value) => Some(value),
            Err(message) => {
                self.errors.push(if message.starts_with("host `") {
                    message
                } else {
                    format!("host `{host}`, step `{step}`: {message}")
                });
                None
            }
        }
    }
}

/// The text form: one block per host.
pub(crate) fn text(scope: &str, hosts: &BTreeMap<String, HostAudit>) -> String {
    let mut out = format!("{scope}: {} host(s) audited\n", hosts.len());
    for (name, host) in hosts {
        let kind = match host.kernel.as_str() {
            "shared" => "container host, shared kernel",
            "own" => "own kernel",
            _ => "kernel unknown",
        };
        let _ = writeln!(out, "\n{name} ({kind})");
        let mut row = |label: &str, value: String| {
            let _ = writeln!(out, "  {label:<18} {value}");
        };
        row("lynis", host.lynis.as_ref().map_or_else(none, lynis_line));
        if let Some(lynis) = &host.lynis {
            let losses: Vec<String> = lynis
                .run
                .losses()
                .iter()
                .take(LOSSES_SHOWN)
                .map(|(id, lost, max)| format!("{id} -{lost}/{max}"))
                .collect();
            if !losses.is_empty() {
                row("  largest losses", losses.join(", "));
            }
        }
        row(
            "ssh-audit",
            host.ssh_audit.map_or_else(none, |s| {
                format!("{} fail, {} warn (exit {})", s.fail, s.warn, s.exit)
            }),
        );
        row(
            "fail2ban",
            host.fail2ban.as_ref().map_or_else(none, fail2ban_line),
        );
        row(
            "listeners",
            host.listeners.as_ref().map_or_else(none, |l| {
                if l.is_empty() {
                    "none".to_owned()
                } else {
                    l.join(", ")
                }
            }),
        );
        row(
            "security updates",
            host.pending_security_updates
                .map_or_else(none, |n| format!("{n} pending")),
        );
        match &host.agents {
            None => row("agents (CIS 5)", none()),
            Some(agents) if agents.is_empty() => row("agents (CIS 5)", "none running".to_owned()),
            Some(agents) => {
                for (agent, checks) in agents {
                    let warned: Vec<&str> = checks.warnings.iter().map(|f| f.id).collect();
                    let mut line = format!(
                        "{} checks, {} warnings",
                        checks.checks,
                        checks.warnings.len()
                    );
                    if !warned.is_empty() {
                        let _ = write!(line, " ({})", warned.join(", "));
                    }
                    if !checks.not_applicable.is_empty() {
                        let _ = write!(
                            line,
                            "; not applicable: {}",
                            checks.not_applicable.join("; ")
                        );
                    }
                    row(&format!("agent {agent}"), line);
                }
            }
        }
        row(
            "tenancy",
            host.tenancy.as_ref().map_or_else(none, tenancy_line),
        );
        if let Some(tenancy) = &host.tenancy {
            for problem in &tenancy.problems {
                let _ = writeln!(out, "    problem: {problem}");
            }
        }
        for error in &host.errors {
            let _ = writeln!(out, "  error: {error}");
        }
    }
    out
}

fn none() -> String {
    "not measured (see the error below)".to_owned()
}

fn tenancy_line(t: &Tenancy) -> String {
    let uids: std::collections::BTreeSet<&u32> = t.users.values().flat_map(|u| &u.uids).collect();
    format!(
        "{} agent(s) on {} UID(s), {} probe(s) from inside agents, {} proxy check(s), {} problem(s)",
        t.users.len(),
        uids.len(),
        t.probes,
        t.tls_checks,
        t.problems.len()
    )
}

fn lynis_line(lynis: &Lynis) -> String {
    let run = &lynis.run;
    format!(
        "index {} with profile {} ({} tests, {} warnings, {} suggestions)",
        run.index, lynis.profile, run.tests, run.warnings, run.suggestions
    )
}

fn fail2ban_line(f: &Fail2ban) -> String {
    if f.state != "running" {
        return f.state.replace('-', " ");
    }
    if f.jails.is_empty() {
        return "running, no jails".to_owned();
    }
    let jails: Vec<String> = f
        .jails
        .iter()
        .map(|j| match f.banned.get(j) {
            Some(n) => format!("{j} ({n} banned)"),
            None => j.clone(),
        })
        .collect();
    format!("jails {}", jails.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audited() -> HostAudit {
        let mut host = HostAudit::new("shared");
        host.lynis = Some(Lynis {
            profile: "hermes-compare",
            run: LynisRun {
                index: 81,
                warnings: 0,
                suggestions: 12,
                tests: 230,
                points: BTreeMap::from([
                    ("AUTH-9262".into(), [0, 3]),
                    ("SSH-7408".into(), [20, 20]),
                ]),
            },
        });
        host.ssh_audit = Some(SshAudit {
            exit: 2,
            fail: 0,
            warn: 1,
        });
        host.fail2ban = Some(Fail2ban {
            state: "running".into(),
            jails: vec!["recidive".into(), "sshd".into()],
            banned: BTreeMap::from([("recidive".into(), 0), ("sshd".into(), 0)]),
        });
        host.listeners = Some(vec!["tcp 0.0.0.0:22 (sshd)".into()]);
        host.pending_security_updates = Some(0);
        host.tenancy = Some(Tenancy {
            probes: 17,
            tls_checks: 9,
            problems: vec!["agent acme: reached host 10.213.0.1:443".into()],
            ..Tenancy::default()
        });
        host
    }

    #[test]
    fn the_text_has_one_block_per_host_with_every_figure() {
        let mut broken = HostAudit::new("own");
        let kept: Option<u32> = broken.keep("b-1", "ssh-audit", Err("missing".into()));
        assert!(kept.is_none());
        let hosts = BTreeMap::from([("a-1".to_owned(), audited()), ("b-1".to_owned(), broken)]);
        let text = text("shop/dev", &hosts);
        for expected in [
            "shop/dev: 2 host(s) audited",
            "a-1 (container host, shared kernel)",
            "index 81 with profile hermes-compare (230 tests, 0 warnings, 12 suggestions)",
            "largest losses   AUTH-9262 -3/3\n",
            "0 fail, 1 warn (exit 2)",
            "jails recidive (0 banned), sshd (0 banned)",
            "tcp 0.0.0.0:22 (sshd)",
            "0 pending",
            "0 agent(s) on 0 UID(s), 17 probe(s) from inside agents, 9 proxy check(s), 1 problem(s)",
            "    problem: agent acme: reached host 10.213.0.1:443\n",
            "b-1 (own kernel)",
            "error: host `b-1`, step `ssh-audit`: missing",
        ] {
            assert!(text.contains(expected), "`{expected}` missing in:\n{text}");
        }
    }

    #[test]
    fn the_json_flattens_lynis_and_leaves_failed_figures_null() {
        let json = serde_json::to_value(audited()).unwrap();
        assert_eq!(json["lynis"]["index"], 81);
        assert_eq!(json["lynis"]["profile"], "hermes-compare");
        assert_eq!(
            json["lynis"]["points"]["AUTH-9262"],
            serde_json::json!([0, 3])
        );
        assert!(json.get("errors").is_none());
        let empty = serde_json::to_value(HostAudit::new("shared")).unwrap();
        assert!(empty["ssh_audit"].is_null());
    }
}
