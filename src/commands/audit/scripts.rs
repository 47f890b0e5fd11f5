//! The scripts `audit` runs as root on a host, one per figure, and the Lynis profile it ships.
//! Each prints only what its parser in [`super::parse`] reads; a failure exits non-zero with the
//! reason on standard error.

/// The one Lynis profile for container and VM hosts alike (hardening.md §3.4).
pub(crate) const PROFILE: &str = include_str!("../../../templates/host/lynis/hermes-compare.prf");
/// Where the profile is written on the host.
pub(crate) const PROFILE_PATH: &str = "/etc/lynis/hermes-compare.prf";

/// The Lynis profile of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LynisProfile {
    /// [`PROFILE`]: for hosts on a shared kernel, the baseline and the hardened host alike.
    Compare,
    /// Lynis' default profile alone: for hosts that own their kernel.
    Default,
}

impl LynisProfile {
    /// The profile's name in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Compare => "hermes-compare",
            Self::Default => "default",
        }
    }
}

/// Shared start of every script: a known `PATH` and locale, no prompts, and a private work
/// folder removed on exit.
const PRELUDE: &str = r#"set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
DEBIAN_FRONTEND=noninteractive
export PATH LC_ALL DEBIAN_FRONTEND
work=$(mktemp -d /tmp/hermes-audit.XXXXXX) || { echo "cannot make a work folder in /tmp" >&2; exit 1; }
trap 'rm -rf "$work"' EXIT
fail() { echo "$1" >&2; if [ -n "${2:-}" ]; then tail -n 5 "$2" >&2; fi; exit 1; }
"#;

/// `fail2ban-client status` and the status of each jail, after a `@@state` line
/// (`running`, `not-installed` or `not-running`).
const FAIL2BAN: &str = r#"
if ! command -v fail2ban-client >/dev/null 2>&1; then echo '@@state not-installed'; exit 0; fi
if ! timeout 20 fail2ban-client status >"$work/status" 2>&1; then echo '@@state not-running'; exit 0; fi
echo '@@state running'
echo '@@status'
cat "$work/status"
for jail in $(sed -n 's/.*Jail list:[[:space:]]*//p' "$work/status" | tr ',' ' '); do
  echo "@@jail $jail"
  timeout 20 fail2ban-client status "$jail" 2>&1
done
"#;

/// TCP and UDP listeners with their processes (loopback is filtered by the parser).
const LISTENERS: &str = r#"
command -v ss >/dev/null 2>&1 || fail "ss is missing (Debian package iproute2)"
ss -Htlnup 2>"$work/err" || fail "ss -Htlnup failed:" "$work/err"
"#;

/// The number of pending security updates, after refreshing the package lists (bounded).
const SECURITY_UPDATES: &str = r#"
timeout 180 apt-get -qq update >"$work/update" 2>&1 || fail "apt-get update failed or took over 180 s:" "$work/update"
apt-get -s dist-upgrade >"$work/sim" 2>"$work/err" || fail "apt-get -s dist-upgrade failed:" "$work/err"
grep -c '^Inst .*-security' "$work/sim" || true
"#;

/// Installs Debian's lynis if missing (refreshing the package lists only when the first try
/// fails).
const LYNIS_INSTALL: &str = r#"
install_lynis() {
  apt-get -o DPkg::Lock::Timeout=120 -y -qq --no-install-recommends install lynis >>"$work/apt" 2>&1
}
if ! command -v lynis >/dev/null 2>&1; then
  if ! install_lynis; then
    timeout 180 apt-get -qq update >>"$work/apt" 2>&1
    install_lynis || fail "cannot install Debian's lynis package:" "$work/apt"
  fi
fi
"#;

/// Runs Lynis (with `$profile_args`) and prints the report's figures after `@@report` and the
/// log's test and hardening-point lines after `@@log`.
const LYNIS_RUN: &str = r#"
cd "$work" || exit 1
# About 2 minutes on a container host; 15 minutes or more on a VM under software emulation.
# shellcheck disable=SC2086
timeout 1500 lynis audit system --quick --no-colors --report-file "$work/report.dat" \
  --logfile "$work/lynis.log" $profile_args >"$work/screen" 2>&1 \
  || fail "lynis audit system failed (exit $?):" "$work/screen"
echo '@@report'
grep -E '^(hardening_index|tests_executed|warning\[\]|suggestion\[\])=' "$work/report.dat"
echo '@@log'
grep -E 'Performing test ID |Hardening: assigned ' "$work/lynis.log"
"#;

/// The agent containers' script: whether the kernel has AppArmor, each running agent
/// container's processes, then `docker container inspect` of them all (an empty list when
/// none runs).
const AGENT_CONTAINERS: &str = r#"
echo "apparmor $(cat /sys/module/apparmor/parameters/enabled 2>/dev/null || echo N)"
ids=$(docker ps -q --filter label=hermes-infra/role=agent 2>/dev/null || true)
for id in $ids; do
    echo "container $id"
    # docker top wants a PID column; the command lines follow it.
    docker top "$id" -eo pid,args 2>/dev/null | tail -n +2 | sed 's/^ *[0-9][0-9]* *//; s/^/process /'
done
echo "inspect"
if [ -n "$ids" ]; then docker container inspect $ids; else echo "[]"; fi
"#;

/// The agent containers' script.
pub(crate) fn agent_containers() -> String {
    format!("{PRELUDE}{AGENT_CONTAINERS}")
}

/// The tenant boundary's script ([`super::tenancy::SCRIPT`]).
pub(crate) fn tenancy() -> String {
    format!("{PRELUDE}{}", super::tenancy::SCRIPT)
}

/// The fail2ban script.
pub(crate) fn fail2ban() -> String {
    format!("{PRELUDE}{FAIL2BAN}")
}

/// The listeners script.
pub(crate) fn listeners() -> String {
    format!("{PRELUDE}{LISTENERS}")
}

/// The pending-security-updates script.
pub(crate) fn security_updates() -> String {
    format!("{PRELUDE}{SECURITY_UPDATES}")
}

/// The Lynis script: installs Lynis if needed, writes [`PROFILE`] to [`PROFILE_PATH`] (so an
/// operator can rerun it by hand), and runs Lynis with `profile`.
pub(crate) fn lynis(profile: LynisProfile) -> String {
    let profile_args = match profile {
        LynisProfile::Compare => format!("--profile {PROFILE_PATH}"),
        LynisProfile::Default => String::new(),
    };
    format!(
        "{PRELUDE}{LYNIS_INSTALL}mkdir -p /etc/lynis\n\
         cat >{PROFILE_PATH} <<'HERMES_INFRA_PROFILE'\n{PROFILE}HERMES_INFRA_PROFILE\n\
         chmod 0644 {PROFILE_PATH}\n\
         profile_args='{profile_args}'\n{LYNIS_RUN}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_skips_the_tests_a_container_cannot_pass_and_nothing_else() {
        let skipped: Vec<&str> = PROFILE
            .lines()
            .filter_map(|l| l.strip_prefix("skip-test="))
            .collect();
        for id in [
            "FILE-6310",
            "FILE-6344",
            "BOOT-5122",
            "BOOT-5139",
            "BOOT-5184",
            "BOOT-5260",
            "BOOT-5263",
            "KRNL-5788",
            "KRNL-5830",
            "ACCT-9622",
            "ACCT-9626",
            "ACCT-9628",
            "ACCT-9630",
            "TIME-3104",
            "FIRE-4508",
            "FIRE-4512",
            "FIRE-4513",
            "FIRE-4518",
            "FIRE-4590",
            "MACF-6208",
            "MACF-6290",
            "USB-1000",
            "USB-2000",
            "USB-3000",
            "STRG-1846",
            "STRG-1930",
            "MALW-3280",
            "HRDN-7230",
            "TOOL-5190",
            "KRNL-6000:kernel.kptr_restrict",
            "KRNL-6000:dev.tty.ldisc_autoload",
            "KRNL-6000:net.core.bpf_jit_harden",
            "KRNL-6000:net.ipv4.conf.all.forwarding",
        ] {
            assert!(skipped.contains(&id), "{id} is not skipped");
        }
        for skip in &skipped {
            assert!(
                !skip.contains(':')
                    || [
                        "kernel.",
                        "dev.tty.",
                        "net.core.",
                        "net.ipv4.conf.all.forwarding"
                    ]
                    .iter()
                    .any(|p| skip.trim_start_matches("KRNL-6000:").starts_with(p)),
                "{skip}: only host-owned sysctl keys are skipped"
            );
        }
        // Whole KRNL-6000 stays: the other sysctl keys are still judged.
        assert!(!skipped.contains(&"KRNL-6000"));
    }

    #[test]
    fn the_lynis_script_writes_the_profile_and_runs_with_it_or_without_it() {
        let with = lynis(LynisProfile::Compare);
        assert!(with.contains(&format!("cat >{PROFILE_PATH} <<'HERMES_INFRA_PROFILE'\n")));
        assert!(with.contains("\nskip-test=FILE-6310\n"));
        assert!(with.contains(&format!("profile_args='--profile {PROFILE_PATH}'")));
        assert!(lynis(LynisProfile::Default).contains("profile_args=''"));
        assert!(!PROFILE.contains("HERMES_INFRA_PROFILE"));
        assert!(PROFILE.ends_with('\n'));
    }
}
