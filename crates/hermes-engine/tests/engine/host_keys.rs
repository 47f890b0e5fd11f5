//! Host keys reported by a provider when it creates a host are pinned in the state, even when a
//! later step fails (losing a pin would mean trusting the host blindly at the next contact);
//! deleting a host forgets its pin.

use hermes_core::Kind;
use hermes_core::resource::HOST_KEY_ATTR;

use crate::support::{Harness, addr, host_chain, options};

fn keyed_chain(host: &str) -> Vec<hermes_core::Resource> {
    let mut chain = host_chain(host);
    // The fake reports back the attributes it was given, as a real provider reports the key it
    // read from the new host.
    chain[0] = chain[0]
        .clone()
        .attr(HOST_KEY_ATTR, format!("ssh-ed25519 AAAAkey-of-{host}"));
    chain
}

#[tokio::test]
async fn created_hosts_have_their_keys_pinned() {
    let h = Harness::new(Vec::new());
    let mut wanted = keyed_chain("h1");
    wanted.extend(keyed_chain("h2"));
    let report = h.engine().apply(&h.plan(wanted), options()).await.unwrap();
    assert!(report.is_success());
    let state = h.store.state();
    assert_eq!(state.host_keys["h1"], "ssh-ed25519 AAAAkey-of-h1");
    assert_eq!(state.host_keys["h2"], "ssh-ed25519 AAAAkey-of-h2");
    assert!(state.last_plan_hash.is_some());
}

#[tokio::test]
async fn pins_survive_a_failure_later_in_the_run_but_the_plan_is_not_recorded() {
    let h = Harness::new(Vec::new());
    h.ssh.fail(addr(Kind::HostHardening, "h1"));
    let report = h
        .engine()
        .apply(&h.plan(keyed_chain("h1")), options())
        .await
        .unwrap();
    assert!(!report.is_success());
    let state = h.store.state();
    assert_eq!(state.host_keys["h1"], "ssh-ed25519 AAAAkey-of-h1");
    assert_eq!(
        state.last_plan_hash, None,
        "a failed run must not look applied"
    );
    assert_eq!(state.serial, 1);
}

#[tokio::test]
async fn deleting_a_host_forgets_its_pin() {
    let h = Harness::new(Vec::new());
    h.engine()
        .apply(&h.plan(keyed_chain("h1")), options())
        .await
        .unwrap();
    assert!(h.store.state().host_keys.contains_key("h1"));
    let mut opts = options();
    opts.allow_destroy = true;
    let report = h.engine().apply(&h.plan(Vec::new()), opts).await.unwrap();
    assert!(report.is_success(), "{report:#?}");
    assert!(h.store.state().host_keys.is_empty());
}
