//! The built-in sysctl settings (hardening.md §1, with Docker's deviations) and which of them a
//! host may set: network settings live in the host's own network namespace, kernel-level ones
//! belong to whoever owns the kernel.

/// Where a sysctl key takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysctlLevel {
    /// Per network namespace: a container host sets it for itself only.
    Namespace,
    /// The whole kernel: set only on a host that owns its kernel (a VM, a cloud server).
    Kernel,
}

/// The level of `key`. `net.*` keys are per network namespace except `net.core.*` ones (such
/// as `net.core.bpf_jit_harden`) and a few that only the initial namespace has.
pub fn sysctl_level(key: &str) -> SysctlLevel {
    if key.starts_with("net.") && !key.starts_with("net.core.") {
        SysctlLevel::Namespace
    } else {
        SysctlLevel::Kernel
    }
}

/// The built-in settings, in the order they are written; the stack's own settings follow and
/// win for the same key.
pub(crate) const BUILTIN: &[(&str, &str)] = &[
    // Network (per namespace). Forwarding stays on: Docker routes its containers' traffic.
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv4.conf.all.rp_filter", "1"),
    ("net.ipv4.conf.default.rp_filter", "1"),
    ("net.ipv4.icmp_echo_ignore_broadcasts", "1"),
    ("net.ipv4.icmp_ignore_bogus_error_responses", "1"),
    ("net.ipv4.icmp_ratelimit", "100"),
    ("net.ipv4.icmp_ratemask", "88089"),
    ("net.ipv4.tcp_timestamps", "0"),
    ("net.ipv4.conf.all.arp_ignore", "1"),
    ("net.ipv4.conf.all.arp_announce", "2"),
    ("net.ipv4.tcp_rfc1337", "1"),
    ("net.ipv4.tcp_syncookies", "1"),
    ("net.ipv4.conf.all.accept_source_route", "0"),
    ("net.ipv4.conf.default.accept_source_route", "0"),
    ("net.ipv4.conf.all.send_redirects", "0"),
    ("net.ipv4.conf.default.send_redirects", "0"),
    ("net.ipv4.conf.all.accept_redirects", "0"),
    ("net.ipv4.conf.default.accept_redirects", "0"),
    ("net.ipv4.conf.all.secure_redirects", "0"),
    ("net.ipv4.conf.default.secure_redirects", "0"),
    ("net.ipv4.conf.all.log_martians", "1"),
    ("net.ipv4.conf.default.log_martians", "1"),
    ("net.ipv4.conf.all.proxy_arp", "0"),
    ("net.ipv4.conf.all.bootp_relay", "0"),
    ("net.ipv6.conf.all.accept_redirects", "0"),
    ("net.ipv6.conf.default.accept_redirects", "0"),
    ("net.ipv6.conf.all.accept_source_route", "0"),
    ("net.ipv6.conf.default.accept_source_route", "0"),
    // Kernel-level: only where the host owns its kernel.
    ("fs.protected_hardlinks", "1"),
    ("fs.protected_symlinks", "1"),
    ("fs.protected_fifos", "2"),
    ("fs.protected_regular", "2"),
    ("fs.suid_dumpable", "0"),
    ("kernel.core_uses_pid", "1"),
    ("kernel.kptr_restrict", "2"),
    ("kernel.kexec_load_disabled", "1"),
    ("kernel.sysrq", "0"),
    ("kernel.randomize_va_space", "2"),
    ("kernel.yama.ptrace_scope", "2"),
    ("kernel.unprivileged_bpf_disabled", "1"),
    ("kernel.dmesg_restrict", "1"),
    ("kernel.perf_event_paranoid", "3"),
    ("kernel.ctrl-alt-del", "0"),
    ("dev.tty.ldisc_autoload", "0"),
    ("net.core.bpf_jit_harden", "2"),
    ("vm.mmap_min_addr", "65536"),
    ("vm.mmap_rnd_bits", "32"),
    ("vm.mmap_rnd_compat_bits", "16"),
];

/// The built-in list as text, for [`crate::templates_digest`].
pub(crate) fn builtin_text() -> String {
    let mut text = String::new();
    for (key, value) in BUILTIN {
        text.push_str(key);
        text.push('=');
        text.push_str(value);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_keys_are_per_namespace_but_net_core_is_not() {
        assert_eq!(
            sysctl_level("net.ipv4.tcp_syncookies"),
            SysctlLevel::Namespace
        );
        assert_eq!(sysctl_level("net.core.bpf_jit_harden"), SysctlLevel::Kernel);
        assert_eq!(sysctl_level("kernel.sysrq"), SysctlLevel::Kernel);
        assert_eq!(sysctl_level("vm.swappiness"), SysctlLevel::Kernel);
        assert_eq!(sysctl_level("fs.suid_dumpable"), SysctlLevel::Kernel);
    }

    #[test]
    fn builtin_keeps_forwarding_on_for_docker() {
        assert!(BUILTIN.contains(&("net.ipv4.ip_forward", "1")));
    }
}
