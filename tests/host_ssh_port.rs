//! Moving sshd to another port (`ssh.port`) on a real local container host, through the real
//! binary: a new host listens on 22 until `host-hardening` moves it; every later command (plan,
//! `ssh`, the next move) finds it on the port the state remembers; a state that lost the port
//! still finds the host on the stack's port (a state that lost it and a stack that moved on since
//! cannot: nothing remembers the port then); a replaced host starts on 22 again.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod hardening;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use hardening::{SHORT_TIMEOUT, Stack};

fn stack_on_port(port: u16) -> String {
    sized_stack_on_port("small", port)
}

fn sized_stack_on_port(size: &str, port: u16) -> String {
    format!(
        "environments = [\"dev\"]\n[provider.local]\nhost-kind = \"container\"\n\
         [ssh]\nport = {port}\n[hosts.t]\ncount = 1\nsize = \"{size}\"\n"
    )
}

/// The TCP ports sshd listens on, from the host itself.
fn sshd_ports(stack: &Stack) -> String {
    let listening = stack
        .on(
            "t-1",
            "sudo ss -Htlnp | grep sshd | awk '{print $4}' | sed 's/.*://' | sort -un | tr '\\n' ' '",
        )
        .ok()
        .stdout;
    listening.trim().to_owned()
}

/// Whether this machine can open a TCP connection to `port` of `address` within two seconds
/// (the firewall drops, so a closed port times out).
fn reachable(address: &str, port: u16) -> bool {
    let target = SocketAddr::new(address.parse().unwrap(), port);
    TcpStream::connect_timeout(&target, Duration::from_secs(2)).is_ok()
}

fn plan_is_empty(stack: &Stack) {
    let plan = stack.run("plan", &["--detailed-exitcode"], SHORT_TIMEOUT);
    assert_eq!(plan.code, 0, "{plan:#?}");
}

#[test]
fn sshd_moves_to_the_stack_port_and_every_later_run_finds_it_there() {
    // A new host listens on 22; the first apply moves sshd to 2222.
    let stack = Stack::new("sshport", &stack_on_port(2222));
    stack.apply(&[]).ok();
    assert_eq!(sshd_ports(&stack), "2222");
    assert_eq!(stack.state()["ssh_ports"]["t-1"], 2222, "{}", stack.state());
    let address = stack.address("t-1");
    assert!(reachable(&address, 2222));
    assert!(!reachable(&address, 22), "the firewall closed the old port");
    plan_is_empty(&stack);

    // From one configured port to another: the run connects to the old one and tests a fresh
    // login on the new one.
    stack.write(&stack_on_port(2200));
    let moved = stack.apply(&[]).ok().json();
    assert!(
        moved["done"].to_string().contains("host-hardening.t-1"),
        "{moved:#}"
    );
    assert_eq!(sshd_ports(&stack), "2200");
    assert_eq!(stack.state()["ssh_ports"]["t-1"], 2200);
    assert!(!reachable(&address, 2222));
    plan_is_empty(&stack);

    // The state lost the port (a run stopped before saving it): the host is found on the
    // stack's port all the same.
    let saved = std::fs::read_to_string(stack.state_path()).unwrap();
    let mut state = stack.state();
    state.as_object_mut().unwrap().remove("ssh_ports");
    std::fs::write(
        stack.state_path(),
        serde_json::to_string_pretty(&state).unwrap(),
    )
    .unwrap();
    plan_is_empty(&stack);
    std::fs::write(stack.state_path(), saved).unwrap();

    // A replaced host starts on 22 again, whatever the state remembered of its predecessor,
    // and is moved like a new one.
    stack.write(&sized_stack_on_port("medium", 2200));
    stack.apply(&["--allow-destroy"]).ok();
    assert_eq!(sshd_ports(&stack), "2200");
    assert_eq!(stack.state()["ssh_ports"]["t-1"], 2200);
    plan_is_empty(&stack);
    let address = stack.address("t-1");
    assert!(reachable(&address, 2200));

    // Back to the default port.
    stack.write(&sized_stack_on_port("medium", 22));
    stack.apply(&[]).ok();
    assert_eq!(sshd_ports(&stack), "22");
    assert_eq!(stack.state()["ssh_ports"]["t-1"], 22);
    assert!(!reachable(&address, 2200));
    plan_is_empty(&stack);
}
