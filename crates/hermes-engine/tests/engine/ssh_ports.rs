//! The SSH port each host's `host-hardening` configured is remembered in the state, so the next
//! run connects where sshd listens: saved even when another step fails, refreshed from what
//! hosts report, forgotten with the host.

use hermes_core::resource::SSH_PORT_ATTR;
use hermes_core::{Kind, Resource};

use crate::support::{Harness, addr, existing, host_chain, options};

/// `host_chain` with sshd moved to `port`.
fn chain_on_port(host: &str, port: u16) -> Vec<Resource> {
    let mut chain = host_chain(host);
    chain[1] = chain[1].clone().attr(SSH_PORT_ATTR, port);
    chain
}

#[tokio::test]
async fn the_port_hardening_configured_is_remembered() {
    let h = Harness::new(Vec::new());
    let report = h
        .engine()
        .apply(&h.plan(chain_on_port("h1", 2222)), options())
        .await
        .unwrap();
    assert!(report.is_success(), "{report:#?}");
    assert_eq!(h.store.state().ssh_ports["h1"], 2222);
    assert_eq!(h.store.state().ssh_port("h1"), 2222);
    assert_eq!(h.store.state().ssh_port("never-seen"), 22);
}

#[tokio::test]
async fn a_moved_port_is_saved_even_when_another_step_fails() {
    let h = Harness::new(Vec::new());
    h.ssh.fail(addr(Kind::DockerEngine, "h1"));
    let report = h
        .engine()
        .apply(&h.plan(chain_on_port("h1", 2222)), options())
        .await
        .unwrap();
    assert!(!report.is_success());
    let state = h.store.state();
    assert_eq!(state.ssh_ports["h1"], 2222);
    assert_eq!(
        state.last_plan_hash, None,
        "a failed run must not look applied"
    );
}

#[tokio::test]
async fn a_failed_run_with_nothing_to_remember_leaves_the_state_alone() {
    // The hosts exist with their ports already remembered by an earlier run.
    let chain = chain_on_port("h1", 2222);
    let h = Harness::new(existing(&chain));
    h.engine()
        .apply(&h.plan(chain.clone()), options())
        .await
        .unwrap();
    let saves = h.store.saves();
    assert_eq!(h.store.state().ssh_ports["h1"], 2222);

    let mut wanted = chain;
    wanted[2] = wanted[2].clone().attr("source", "changed");
    h.ssh.fail(addr(Kind::DockerEngine, "h1"));
    let report = h.engine().apply(&h.plan(wanted), options()).await.unwrap();
    assert!(!report.is_success());
    assert_eq!(h.store.saves(), saves, "nothing new: no save");
    assert_eq!(report.state_serial, None);
}

#[tokio::test]
async fn deleting_a_host_forgets_its_port() {
    let h = Harness::new(Vec::new());
    h.engine()
        .apply(&h.plan(chain_on_port("h1", 2222)), options())
        .await
        .unwrap();
    let mut opts = options();
    opts.allow_destroy = true;
    let report = h.engine().apply(&h.plan(Vec::new()), opts).await.unwrap();
    assert!(report.is_success(), "{report:#?}");
    assert!(h.store.state().ssh_ports.is_empty());
}
