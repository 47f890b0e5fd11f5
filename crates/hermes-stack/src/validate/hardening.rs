//! Host hardening: sysctl settings, fail2ban and extra inbound firewall rules.

use super::{KeyPath, Problems};
use crate::wire::{InboundRule, PortRange, StackFile, SysctlValue};

pub(super) fn hardening(file: &StackFile, p: &mut Problems) {
    let base = KeyPath::of(&["hardening"]);
    for (key, value) in &file.hardening.sysctl {
        sysctl(key, value, base.key("sysctl").key(key), p);
    }
    if file.hardening.fail2ban.max_retry == 0 {
        p.add(
            base.key("fail2ban").key("max-retry"),
            "max-retry 0 would ban on the first attempt, including your own typos",
            Some("use 3 to 10".to_owned()),
        );
    }
    for (i, rule) in file.hardening.inbound.iter().enumerate() {
        inbound_rule(file, rule, &base.key("inbound").index(i), p);
    }
}

fn sysctl(key: &str, value: &SysctlValue, path: KeyPath, p: &mut Problems) {
    let well_formed = key.split('.').count() >= 2
        && key.split('.').all(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    if !well_formed {
        let dotted = key.trim_start_matches("/proc/sys/").trim_matches('/');
        let help = if key.contains('/') {
            format!(
                "write the dotted name, not the /proc/sys path: \"{}\"",
                dotted.replace('/', ".")
            )
        } else {
            "sysctl keys look like \"net.ipv4.tcp_syncookies\" (quoted, with dots)".to_owned()
        };
        p.add_on_key(
            path.clone(),
            format!("`{key}` is not a sysctl key"),
            Some(help),
        );
    }
    if key == "net.ipv4.ip_forward" && value.to_string().trim() == "0" {
        p.add(
            path,
            "`net.ipv4.ip_forward = 0` would cut every container off the network",
            Some("Docker needs forwarding; remove this setting".to_owned()),
        );
    }
}

fn inbound_rule(file: &StackFile, rule: &InboundRule, path: &KeyPath, p: &mut Problems) {
    let range = match &rule.port {
        PortRange::One(n) => Some((*n, *n)),
        PortRange::Range(s) => s
            .split_once('-')
            .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?))),
    };
    match range {
        Some((a, b)) if a == 0 || a > b => p.add(
            path.key("port"),
            "the port range is empty or starts at 0",
            Some("write `\"8000-8010\"` with first <= last".to_owned()),
        ),
        None => p.add(
            path.key("port"),
            "not a port or a port range",
            Some(
                "write a number, such as `8080`, or a range in quotes, such as `\"8000-8010\"`"
                    .to_owned(),
            ),
        ),
        Some((a, b)) if a <= file.ssh.port && file.ssh.port <= b => {
            p.add(
                path.key("port"),
                format!(
                    "this rule opens the SSH port {}; SSH access is set by `ssh.allow-from`, not \
                     by inbound rules",
                    file.ssh.port
                ),
                Some("remove this rule and list the sources in `ssh.allow-from`".to_owned()),
            );
        }
        Some(_) => {}
    }
    if rule.from.is_empty() {
        p.add(
            path.key("from"),
            "an inbound rule needs at least one source",
            Some("write from = [\"0.0.0.0/0\", \"::/0\"] for everyone".to_owned()),
        );
    }
}
