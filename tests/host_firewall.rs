//! The host firewall and fail2ban on real local hosts, through the real binary: a port that a
//! container publishes on 0.0.0.0 inside a host is not reachable from another host (Docker's
//! forwarding cannot bypass the firewall) until the stack allows it; a source that keeps failing
//! to log in is banned by fail2ban while the admin still gets in.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod hardening;

use std::time::{Duration, Instant};

use hardening::{Stack, docker};

/// The stack: two hosts, SSH open to their network, this machine never banned; `extra` is
/// appended (firewall rules).
fn body(subnet: &str, gateway: &str, extra: &str) -> String {
    format!(
        r#"environments = ["dev"]
[provider.local]
host-kind = "container"
[ssh]
allow-from = ["{subnet}"]
[hosts.t]
count = 2
[hardening.fail2ban]
ignore = ["{gateway}/32"]
{extra}"#
    )
}

/// HTTP status of `url` fetched from `host` (`000`: no connection).
fn http_status(stack: &Stack, host: &str, url: &str) -> String {
    stack
        .on(
            host,
            &format!("curl -s -o /dev/null -w '%{{http_code}}' --max-time 3 {url} || true"),
        )
        .ok()
        .stdout
        .trim()
        .to_owned()
}

#[test]
fn published_ports_and_password_guessers_are_stopped_at_the_host() {
    let stack = Stack::new("firewall", &body("10.0.0.0/8", "10.0.0.1", ""));
    stack.apply(&["--target", "host"]).ok();
    let network = stack.network();
    let subnet = docker(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
        &network,
    ]);
    let gateway = docker(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
        &network,
    ]);
    stack.write(&body(&subnet, &gateway, ""));
    stack.apply(&[]).ok();
    let t1 = stack.address("t-1");

    // A web server published on 0.0.0.0:8080 inside t-1, from a one-binary image built there.
    stack
        .on(
            "t-1",
            "set -e; sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
             --no-install-recommends busybox-static >/dev/null; d=$(mktemp -d); \
             cp /bin/busybox \"$d/busybox\"; mkdir \"$d/www\"; echo hello >\"$d/www/index.html\"; \
             sudo tar -C \"$d\" -c . | sudo docker import - tiny-web >/dev/null; \
             sudo docker run -d --name web -p 0.0.0.0:8080:8080 tiny-web /busybox httpd -f \
             -p 8080 -h /www >/dev/null",
        )
        .ok();
    let inside = stack
        .on(
            "t-1",
            "sudo docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' web",
        )
        .ok()
        .stdout;
    assert_eq!(
        http_status(&stack, "t-1", &format!("http://{}:8080/", inside.trim())),
        "200",
        "the server answers inside t-1"
    );
    assert_eq!(
        http_status(&stack, "t-2", &format!("http://{t1}:8080/")),
        "000",
        "a port published on 0.0.0.0 is closed to the other host"
    );

    // Allowed by the stack: reachable.
    let allow = format!("[[hardening.inbound]]\nport = 8080\nfrom = [\"{subnet}\"]\n");
    stack.write(&body(&subnet, &gateway, &allow));
    stack.apply(&[]).ok();
    assert_eq!(
        http_status(&stack, "t-2", &format!("http://{t1}:8080/")),
        "200",
        "the port the stack allows is reachable"
    );

    // t-2 guesses: three failed logins as a user that does not exist get it banned.
    // Each try is bounded: once the ban lands, a connection still in its handshake gets no
    // answer at all, and ssh's own ConnectTimeout covers only the TCP connect.
    let guess = format!(
        "for i in 1 2 3 4; do timeout 8 ssh -o BatchMode=yes -o ConnectTimeout=3 \
         -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
         -o PubkeyAuthentication=no mallory@{t1} true 2>/dev/null; done; true"
    );
    stack.on("t-2", &guess).ok();
    let t2 = stack.address("t-2");
    let deadline = Instant::now() + Duration::from_mins(1);
    let banned = loop {
        let status = stack
            .on("t-1", "sudo fail2ban-client status sshd")
            .ok()
            .stdout;
        if status.contains(&t2) {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "t-2 ({t2}) was not banned:\n{status}"
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    assert!(banned.contains("Currently banned:\t1"), "{banned}");
    let refused = stack
        .on(
            "t-2",
            &format!(
                "timeout 8 ssh -o BatchMode=yes -o ConnectTimeout=3 -o StrictHostKeyChecking=no \
                 -o UserKnownHostsFile=/dev/null mallory@{t1} true 2>&1; true"
            ),
        )
        .ok()
        .stdout;
    // fail2ban's nftables action rejects: the connection never reaches sshd (before the ban
    // it ended in `Permission denied` from sshd itself).
    assert!(
        (refused.contains("Connection refused") || refused.contains("timed out"))
            && !refused.contains("Permission denied"),
        "a banned source cannot connect: {refused}"
    );
    // The admin still gets in.
    assert_eq!(stack.on("t-1", "echo in").ok().stdout.trim(), "in");
}
