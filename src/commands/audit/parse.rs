//! Pure readers of what the auditors print: Lynis' report and log lines, ssh-audit's JSON,
//! `fail2ban-client status`, `ss -Htlnup` and the security-update count. No I/O here.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

/// One Lynis run's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct LynisRun {
    /// `hardening_index=` of the report.
    pub(crate) index: u32,
    /// `warning[]=` lines.
    pub(crate) warnings: usize,
    /// `suggestion[]=` lines.
    pub(crate) suggestions: usize,
    /// Test ids in `tests_executed=`.
    pub(crate) tests: usize,
    /// Hardening points by test id: `[points, maximum]`, summed over the test's items.
    pub(crate) points: BTreeMap<String, [u32; 2]>,
}

impl LynisRun {
    /// Tests that did not get all their points, largest loss first: `(id, lost, maximum)`.
    pub(crate) fn losses(&self) -> Vec<(&str, u32, u32)> {
        let mut lost: Vec<(&str, u32, u32)> = self
            .points
            .iter()
            .filter(|(_, [got, max])| got < max)
            .map(|(id, [got, max])| (id.as_str(), max - got, *max))
            .collect();
        lost.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        lost
    }
}

/// Reads the Lynis script's output: report lines after `@@report`, log lines after `@@log`.
pub(crate) fn lynis(output: &str) -> Result<LynisRun, String> {
    let (report, log) = output
        .split_once("@@report\n")
        .and_then(|(_, rest)| rest.split_once("@@log\n"))
        .ok_or("the Lynis script printed no report (no `@@report`/`@@log` sections)")?;
    let mut index = None;
    let (mut warnings, mut suggestions, mut tests) = (0, 0, 0);
    for line in report.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "hardening_index" => {
                index = Some(value.trim().parse::<u32>().map_err(|e| {
                    format!("the report's hardening_index `{value}` is not a number ({e})")
                })?);
            }
            "warning[]" => warnings += 1,
            "suggestion[]" => suggestions += 1,
            "tests_executed" => tests = value.split('|').filter(|t| !t.is_empty()).count(),
            _ => {}
        }
    }
    let index = index.ok_or("the Lynis report has no hardening_index")?;
    Ok(LynisRun {
        index,
        warnings,
        suggestions,
        tests,
        points: lynis_points(log),
    })
}

/// Sums the "Hardening: assigned ... hardening points" lines of a Lynis log by the test they
/// follow ("Performing test ID <ID>"); points outside any test are kept under `-`.
pub(crate) fn lynis_points(log: &str) -> BTreeMap<String, [u32; 2]> {
    const TEST: &str = "Performing test ID ";
    const FULL: &str = "Hardening: assigned maximum number of hardening points for this item (";
    const PARTIAL: &str = "Hardening: assigned partial number of hardening points (";
    let mut points: BTreeMap<String, [u32; 2]> = BTreeMap::new();
    let mut current = "-".to_owned();
    for line in log.lines() {
        if let Some(at) = line.find(TEST) {
            let rest = &line[at + TEST.len()..];
            rest.split_whitespace()
                .next()
                .unwrap_or("-")
                .clone_into(&mut current);
            continue;
        }
        let assigned = if let Some(at) = line.find(FULL) {
            number_before_paren(&line[at + FULL.len()..]).map(|max| (max, max))
        } else if let Some(at) = line.find(PARTIAL) {
            let inner = &line[at + PARTIAL.len()..];
            inner
                .split_once(')')
                .and_then(|(pair, _)| pair.split_once(" of "))
                .and_then(|(got, max)| Some((got.trim().parse().ok()?, max.trim().parse().ok()?)))
        } else {
            None
        };
        if let Some((got, max)) = assigned {
            let entry = points.entry(current.clone()).or_default();
            entry[0] += got;
            entry[1] += max;
        }
    }
    points
}

fn number_before_paren(text: &str) -> Option<u32> {
    text.split_once(')')?.0.trim().parse().ok()
}

/// ssh-audit's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct SshAudit {
    /// Exit code: 0 clean, 2 warnings, 3 failures.
    pub(crate) exit: i32,
    /// Algorithms (kex, host key, cipher, MAC) with a failure note.
    pub(crate) fail: usize,
    /// Algorithms with a warning note.
    pub(crate) warn: usize,
}

/// Reads `ssh-audit -j` output; exit code 1 (or any JSON that is not a report) is a failure to
/// audit, not a figure.
pub(crate) fn ssh_audit(stdout: &[u8], exit: i32) -> Result<SshAudit, String> {
    let report: serde_json::Value = serde_json::from_slice(stdout)
        .map_err(|e| format!("ssh-audit (exit {exit}) printed no JSON report ({e})"))?;
    if exit == 1 || report.get("kex").is_none() {
        return Err(format!(
            "ssh-audit could not audit the server (exit {exit}): {}",
            report
                .get("error")
                .or_else(|| report.get("errors"))
                .map_or_else(
                    || "no key exchange in its report".to_owned(),
                    ToString::to_string
                )
        ));
    }
    let (mut fail, mut warn) = (0, 0);
    let noted = |entry: &serde_json::Value, kind: &str| {
        entry["notes"][kind]
            .as_array()
            .is_some_and(|notes| !notes.is_empty())
    };
    for section in ["kex", "key", "enc", "mac"] {
        for entry in report[section].as_array().into_iter().flatten() {
            fail += usize::from(noted(entry, "fail"));
            warn += usize::from(noted(entry, "warn"));
        }
    }
    Ok(SshAudit { exit, fail, warn })
}

/// fail2ban's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Fail2ban {
    /// `running`, `not-installed` or `not-running`.
    pub(crate) state: String,
    /// The jails up, sorted.
    pub(crate) jails: Vec<String>,
    /// "Currently banned" per jail.
    pub(crate) banned: BTreeMap<String, u32>,
}

/// Reads the fail2ban script's output (`@@state`, `@@status`, then `@@jail NAME` sections).
pub(crate) fn fail2ban(output: &str) -> Result<Fail2ban, String> {
    let mut state = None;
    let mut jails = Vec::new();
    let mut banned = BTreeMap::new();
    let mut jail: Option<String> = None;
    for line in output.lines() {
        if let Some(s) = line.strip_prefix("@@state ") {
            state = Some(s.trim().to_owned());
        } else if line == "@@status" {
            jail = None;
        } else if let Some(name) = line.strip_prefix("@@jail ") {
            jail = Some(name.trim().to_owned());
        } else if let Some((_, list)) = line.split_once("Jail list:") {
            if jail.is_none() {
                jails.extend(
                    list.split(',')
                        .map(str::trim)
                        .filter(|j| !j.is_empty())
                        .map(str::to_owned),
                );
            }
        } else if let (Some(name), Some((_, count))) =
            (jail.as_ref(), line.split_once("Currently banned:"))
        {
            let count = count
                .trim()
                .parse()
                .map_err(|e| format!("jail `{name}`: \"Currently banned\" `{count}` ({e})"))?;
            banned.insert(name.clone(), count);
        }
    }
    let state = state.ok_or("the fail2ban script printed no state")?;
    jails.sort();
    Ok(Fail2ban {
        state,
        jails,
        banned,
    })
}

/// Non-loopback listeners from `ss -Htlnup`, as `PROTO ADDRESS:PORT (PROCESS)`, sorted and
/// without duplicates. Loopback (127.0.0.0/8, `::1`, so also Docker's embedded DNS on
/// 127.0.0.11) is left out.
pub(crate) fn listeners(ss: &str) -> Vec<String> {
    let mut found: Vec<String> = ss
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // Netid State Recv-Q Send-Q Local:Port Peer:Port [Process]
            let (proto, local) = (*fields.first()?, *fields.get(4)?);
            let (host, port) = local.rsplit_once(':')?;
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let bare = bare.split_once('%').map_or(bare, |(ip, _)| ip);
            if bare
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback() || is_mapped_loopback(ip))
            {
                return None;
            }
            let process = fields.get(6).and_then(|p| process_name(p));
            Some(match process {
                Some(name) => format!("{proto} {host}:{port} ({name})"),
                None => format!("{proto} {host}:{port}"),
            })
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

fn is_mapped_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        IpAddr::V4(_) => false,
    }
}

/// `users:(("sshd",pid=1,fd=3),...)` -> `sshd`.
fn process_name(field: &str) -> Option<&str> {
    let start = field.find("((\"")? + 3;
    let len = field[start..].find('"')?;
    Some(&field[start..start + len])
}

/// The security-update count the script printed.
pub(crate) fn security_updates(output: &str) -> Result<u32, String> {
    let last = output
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    last.trim()
        .parse()
        .map_err(|e| format!("the update count `{last}` is not a number ({e})"))
}

/// The CIS Docker section 5 checks of one agent container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct AgentChecks {
    /// Checks run.
    pub(crate) checks: usize,
    /// The checks that warned, with what was seen.
    pub(crate) warnings: Vec<hermes_audit::Finding>,
    /// Checks that do not apply, with the reason (`5.2: the kernel has AppArmor disabled`).
    pub(crate) not_applicable: Vec<String>,
}

/// Reads the agent containers' script: each agent container's CIS Docker section 5 checks, by
/// agent (its `hermes-infra/address` label without `agent.`).
pub(crate) fn agent_containers(output: &str) -> Result<BTreeMap<String, AgentChecks>, String> {
    let (head, inspect) = output
        .split_once("\ninspect\n")
        .ok_or("the agent container script printed no `inspect` line")?;
    let apparmor = head.lines().any(|l| l.trim() == "apparmor Y");
    let mut processes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = None;
    for line in head.lines() {
        if let Some(id) = line.strip_prefix("container ") {
            current = Some(id.trim().to_owned());
        } else if let (Some(id), Some(args)) = (&current, line.strip_prefix("process ")) {
            processes
                .entry(id.clone())
                .or_default()
                .push(args.to_owned());
        }
    }
    let containers: Vec<serde_json::Value> = serde_json::from_str(inspect.trim())
        .map_err(|e| format!("docker container inspect is not JSON: {e}"))?;
    let mut out = BTreeMap::new();
    for container in &containers {
        let id = container["Id"].as_str().unwrap_or_default();
        let label = container["Config"]["Labels"]["hermes-infra/address"]
            .as_str()
            .unwrap_or(id);
        let agent = label.strip_prefix("agent.").unwrap_or(label).to_owned();
        let listed = processes
            .iter()
            .find(|(short, _)| !short.is_empty() && id.starts_with(short.as_str()))
            .map(|(_, p)| p.clone());
        let context = hermes_audit::AuditContext {
            apparmor_enabled: apparmor,
            processes: listed,
        };
        let findings = hermes_audit::cis_container_checks(container, &context);
        let warnings = findings
            .iter()
            .filter(|f| f.status == hermes_audit::Status::Warn)
            .cloned()
            .collect();
        let not_applicable = findings
            .iter()
            .filter_map(|f| match &f.status {
                hermes_audit::Status::NotApplicable(why) => Some(format!("{}: {why}", f.id)),
                _ => None,
            })
            .collect();
        out.insert(
            agent,
            AgentChecks {
                checks: findings.len(),
                warnings,
                not_applicable,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
2026-12-02 00:33:55 Performing test ID CORE-1000 (Check all system binaries)
2026-12-02 00:34:05 Performing test ID DEB-0280 (Checking if libpam-tmpdir is installed and enabled.)
2026-12-02 00:34:05 Hardening: assigned partial number of hardening points (0 of 2). Currently having 0 points (out of 2)
2026-12-02 00:34:05 Performing test ID KRNL-6000 (Check sysctl key pairs in scan profile)
2026-12-02 00:34:05 Hardening: assigned maximum number of hardening points for this item (3). Currently having 3 points (out of 5)
2026-12-02 00:34:05 Hardening: assigned partial number of hardening points (0 of 1). Currently having 3 points (out of 6)
2026-12-02 00:34:05 Hardening: assigned maximum number of hardening points for this item (1). Currently having 4 points (out of 7)
";

    #[test]
    fn lynis_points_are_summed_per_test() {
        let points = lynis_points(LOG);
        assert_eq!(points.len(), 2);
        assert_eq!(points["DEB-0280"], [0, 2]);
        assert_eq!(points["KRNL-6000"], [4, 5]);
    }

    #[test]
    fn a_lynis_run_reads_the_report_and_the_log() {
        let output = format!(
            "@@report\nhardening_index=57\ntests_executed=A-1|B-2|C-3|\n\
             warning[]=PKGS-7392|Found vulnerable packages|-|-|\n\
             suggestion[]=DEB-0280|Install libpam-tmpdir|-|-|\n\
             suggestion[]=KRNL-6000|One or more sysctl values differ|-|-|\n@@log\n{LOG}"
        );
        let run = lynis(&output).unwrap();
        assert_eq!(
            (run.index, run.warnings, run.suggestions, run.tests),
            (57, 1, 2, 3)
        );
        assert_eq!(run.losses(), [("DEB-0280", 2, 2), ("KRNL-6000", 1, 5)]);
        assert!(lynis("nothing").is_err());
        assert!(lynis("@@report\ntests_executed=A\n@@log\n").is_err());
    }

    #[test]
    fn ssh_audit_counts_algorithms_with_failures_and_warnings() {
        let json = br#"{
          "kex": [{"algorithm": "curve25519-sha256", "notes": {"warn": ["not PQ safe"]}},
                  {"algorithm": "sntrup761x25519-sha512", "notes": {}}],
          "key": [{"algorithm": "ecdsa-sha2-nistp256", "notes": {"fail": ["NIST"], "warn": ["rng"]}}],
          "enc": [{"algorithm": "aes256-ctr", "notes": {"fail": [], "warn": []}}],
          "mac": [{"algorithm": "hmac-sha1", "notes": {"fail": ["SHA-1"]}}]
        }"#;
        assert_eq!(
            ssh_audit(json, 3).unwrap(),
            SshAudit {
                exit: 3,
                fail: 2,
                warn: 2
            }
        );
        assert!(ssh_audit(b"", 1).is_err());
        assert!(ssh_audit(br#"{"errors": ["timeout"]}"#, 1).is_err());
    }

    #[test]
    fn fail2ban_jails_and_bans_are_read() {
        let output = "@@state running\n@@status\nStatus\n|- Number of jail:\t2\n\
                      `- Jail list:\tsshd, recidive\n@@jail recidive\nStatus for the jail: recidive\n\
                      `- Actions\n   |- Currently banned:\t0\n   |- Total banned:\t0\n\
                      @@jail sshd\n|- Filter\n|  |- Currently failed:\t1\n`- Actions\n\
                      \x20  |- Currently banned:\t2\n   `- Banned IP list:\t192.0.2.1 192.0.2.2\n";
        let f = fail2ban(output).unwrap();
        assert_eq!(f.state, "running");
        assert_eq!(f.jails, ["recidive", "sshd"]);
        assert_eq!(
            f.banned,
            BTreeMap::from([("recidive".into(), 0), ("sshd".into(), 2)])
        );
        let missing = fail2ban("@@state not-installed\n").unwrap();
        assert!(missing.jails.is_empty() && missing.state == "not-installed");
        assert!(fail2ban("").is_err());
    }

    #[test]
    fn listeners_leave_out_loopback_and_name_the_process() {
        let ss = "\
udp UNCONN 0 0 127.0.0.11:45313 0.0.0.0:*
tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:((\"sshd\",pid=101,fd=3))
tcp LISTEN 0 4096 127.0.0.53%lo:53 0.0.0.0:* users:((\"systemd-resolve\",pid=9,fd=14))
tcp LISTEN 0 128 [::]:22 [::]:* users:((\"sshd\",pid=101,fd=4))
tcp LISTEN 0 128 [::1]:25 [::]:* users:((\"exim4\",pid=7,fd=4))
tcp LISTEN 0 128 [::ffff:127.0.0.1]:631 [::]:*
udp UNCONN 0 0 *:5353 *:* users:((\"avahi-daemon\",pid=5,fd=12),(\"x\",pid=6,fd=1))
";
        assert_eq!(
            listeners(ss),
            [
                "tcp 0.0.0.0:22 (sshd)",
                "tcp [::]:22 (sshd)",
                "udp *:5353 (avahi-daemon)"
            ]
        );
        assert!(listeners("").is_empty());
    }

    #[test]
    fn the_security_update_count_is_the_last_line() {
        assert_eq!(security_updates("3\n"), Ok(3));
        assert_eq!(security_updates("0"), Ok(0));
        assert!(security_updates("").is_err());
    }

    #[test]
    fn agent_containers_are_checked_by_agent() {
        let inspect = serde_json::json!([{
            "Id": "4f2a9c0d1e",
            "AppArmorProfile": "",
            "Config": {"Image": "sha256:aa", "Labels": {"hermes-infra/address": "agent.acme"}},
            "State": {"Health": {"Status": "healthy"}},
            "HostConfig": {
                "SecurityOpt": ["no-new-privileges"], "CapAdd": null, "CapDrop": ["ALL"],
                "Privileged": false, "NetworkMode": "hermes-net-acme", "Memory": 1024,
                "NanoCpus": 1000, "ReadonlyRootfs": true, "PidsLimit": 256,
                "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0}
            },
            "Mounts": [], "NetworkSettings": {"Ports": {}}
        }]);
        let output = format!(
            "apparmor N\ncontainer 4f2a9c0d1e\nprocess /usr/bin/tini -- hermes gateway run\ninspect\n{inspect}\n"
        );
        let agents = agent_containers(&output).unwrap();
        let acme = &agents["acme"];
        assert!(acme.warnings.is_empty(), "{:?}", acme.warnings);
        assert_eq!(
            acme.not_applicable,
            ["5.2: the kernel has AppArmor disabled"]
        );
        assert!(acme.checks >= 25);
        assert!(
            agent_containers("apparmor Y\ninspect\n[]\n")
                .unwrap()
                .is_empty()
        );
        assert!(agent_containers("apparmor Y\n").is_err());
    }
}
