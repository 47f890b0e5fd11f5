//! The `iptables` rules that send a testbed network's packets to the delayer's queues, in the
//! `mangle` table of this machine, each commented with the run label so that a cleanup finds
//! them. Run with this machine's `iptables` (the one Docker uses).

use std::process::Command;
use std::time::Duration;

use anyhow::bail;

use crate::blocking;

/// The table the rules live in (Docker leaves it alone).
const TABLE: &str = "mangle";
/// How long one `iptables` call may take (it waits up to 10 s for the xtables lock).
const IPTABLES_TIMEOUT: Duration = Duration::from_secs(30);

/// One rule: its chain and the rest of its specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) chain: &'static str,
    pub(crate) spec: Vec<String>,
}

impl Rule {
    /// As `iptables -S` would print it.
    pub(crate) fn shown(&self) -> String {
        format!("-t {TABLE} -A {} {}", self.chain, self.spec.join(" "))
    }
}

/// Netlink queue numbers of one delayed network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Queues {
    /// Packets bridged between two containers of the network (each waits half the round trip).
    pub(crate) bridged: u16,
    /// Packets from a container to this machine or routed beyond (each waits the round trip).
    pub(crate) leaving: u16,
}

/// The three rules delaying traffic from containers on `bridge`. Packets this machine sends into
/// the network are never held: the sending socket still owns them in `OUTPUT`/`POSTROUTING`,
/// and TCP small queues then throttle the sender to a few packets per delay (measured: 5 MiB
/// took 23 s with 25 ms held there); packets coming out of a container have crossed its veth
/// and are held without that effect.
pub(crate) fn rules(bridge: &str, queues: Queues, comment: &str) -> Vec<Rule> {
    let rule = |chain: &'static str, matches: &[&str], queue: u16| {
        let mut spec: Vec<String> = ["-i", bridge]
            .iter()
            .chain(matches)
            .map(|s| (*s).to_owned())
            .collect();
        spec.extend(
            [
                "-m",
                "comment",
                "--comment",
                comment,
                "-j",
                "NFQUEUE",
                "--queue-num",
            ]
            .map(str::to_owned),
        );
        spec.extend([queue.to_string(), "--queue-bypass".to_owned()]);
        Rule { chain, spec }
    };
    vec![
        rule(
            "FORWARD",
            &["-m", "physdev", "--physdev-is-bridged"],
            queues.bridged,
        ),
        rule(
            "FORWARD",
            &["-m", "physdev", "!", "--physdev-is-bridged"],
            queues.leaving,
        ),
        rule("INPUT", &[], queues.leaving),
    ]
}

fn iptables(args: &[String]) -> anyhow::Result<String> {
    let mut cmd = Command::new("iptables");
    cmd.args(["-w", "10"]).args(args);
    let done = blocking::run(cmd, IPTABLES_TIMEOUT).map_err(|e| {
        e.context(
            "cannot run `iptables` (this machine's, as Docker uses; `apt-get install iptables`)",
        )
    })?;
    if done.timed_out || !done.output.status.success() {
        bail!(
            "`iptables {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&done.output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&done.output.stdout).into_owned())
}

fn with(op: &str, rule: &Rule) -> Vec<String> {
    let mut args = vec![
        "-t".to_owned(),
        TABLE.to_owned(),
        op.to_owned(),
        rule.chain.to_owned(),
    ];
    args.extend(rule.spec.iter().cloned());
    args
}

/// Inserts `rule` first in its chain.
pub(crate) fn insert(rule: &Rule) -> anyhow::Result<()> {
    iptables(&with("-I", rule)).map(drop)
}

/// Deletes `rule` (exactly this specification).
pub(crate) fn delete(rule: &Rule) -> anyhow::Result<()> {
    iptables(&with("-D", rule)).map(drop)
}

/// Deletes every rule of the table whose comment is exactly `comment`; returns them. Nothing to
/// do (and no error) when `iptables` is not installed: then no rule was ever added.
pub(crate) fn remove_labelled(comment: &str) -> anyhow::Result<Vec<String>> {
    if !installed() {
        return Ok(Vec::new());
    }
    let listing = iptables(&["-t".to_owned(), TABLE.to_owned(), "-S".to_owned()])?;
    let mut removed = Vec::new();
    for line in listing.lines() {
        let words: Vec<String> = line
            .split_whitespace()
            .map(|w| w.trim_matches('"').to_owned())
            .collect();
        let commented = words
            .windows(2)
            .any(|w| w[0] == "--comment" && w[1] == comment);
        if let (true, Some("-A"), Some(chain)) =
            (commented, words.first().map(String::as_str), words.get(1))
        {
            let mut args = vec![
                "-t".to_owned(),
                TABLE.to_owned(),
                "-D".to_owned(),
                chain.clone(),
            ];
            args.extend(words[2..].iter().cloned());
            iptables(&args)?;
            removed.push(format!("-t {TABLE} {line}"));
        }
    }
    Ok(removed)
}

fn installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("iptables").is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_hold_what_containers_send() {
        let queues = Queues {
            bridged: 11,
            leaving: 22,
        };
        let shown: Vec<String> = rules("br-0123456789ab", queues, "hermes-infra.testbed.run=x")
            .iter()
            .map(Rule::shown)
            .collect();
        let tail = "-m comment --comment hermes-infra.testbed.run=x -j NFQUEUE --queue-num";
        assert_eq!(
            shown,
            [
                format!(
                    "-t mangle -A FORWARD -i br-0123456789ab -m physdev --physdev-is-bridged \
                     {tail} 11 --queue-bypass"
                ),
                format!(
                    "-t mangle -A FORWARD -i br-0123456789ab -m physdev ! --physdev-is-bridged \
                     {tail} 22 --queue-bypass"
                ),
                format!("-t mangle -A INPUT -i br-0123456789ab {tail} 22 --queue-bypass"),
            ]
        );
    }
}
