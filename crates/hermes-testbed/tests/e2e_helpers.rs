#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]
//! `LocalStackGuard` removes what the local provider makes for one stack (containers with their
//! volumes, the stack's network, labelled volumes) and nothing else: a shared container attached
//! to the stack's network is only detached, and another stack's objects stay. The objects here
//! are made by hand the way the provider makes them. Needs a Docker engine.

use std::process::Command;

use hermes_testbed::{StackDir, Testbed};

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn exists(kind: &str, id: &str) -> bool {
    Command::new("docker")
        .args([kind, "inspect", id])
        .output()
        .unwrap()
        .status
        .success()
}

#[tokio::test]
async fn the_stack_guard_removes_the_stack_and_nothing_else() {
    // Everything is also labelled with the testbed run: if the test fails, the testbed's drop
    // removes it all the same.
    let testbed = Testbed::new();
    let image = testbed.tools_image().await.unwrap();
    let run = testbed.label_args(None);
    let dir = StackDir::new("guard").unwrap();
    let stack = dir.stack_name().to_owned();
    let neighbour = format!("{stack}-x");
    let stack_label = |s: &str| format!("--label=hermes-infra/stack={s}");
    let container = |s: &str, network: &str| {
        let mut args = vec!["run".to_owned(), "-d".to_owned(), "--pull=never".to_owned()];
        args.extend(run.iter().cloned());
        args.extend([
            stack_label(s),
            "--label=hermes-infra/env=dev".to_owned(),
            format!("--label=hermes-infra/address=host.{s}-1"),
            format!("--mount=type=volume,dst=/data,volume-label=hermes-infra/stack={s}"),
            format!("--network={network}"),
            image.clone(),
            "sleep".to_owned(),
            "300".to_owned(),
        ]);
        docker(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let network = |s: &str| {
        let mut args = vec!["network".to_owned(), "create".to_owned()];
        args.extend(run.iter().cloned());
        args.extend([stack_label(s), format!("hermes-{s}-dev")]);
        docker(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let ours_net = network(&stack);
    let ours = container(&stack, &format!("hermes-{stack}-dev"));
    let volume = docker(&["inspect", "--format", "{{(index .Mounts 0).Name}}", &ours]);
    let theirs_net = network(&neighbour);
    let theirs = container(&neighbour, &format!("hermes-{neighbour}-dev"));
    // A shared container (like the apt cache) attached to our stack's network.
    let shared = container("not-a-stack", &format!("hermes-{neighbour}-dev"));
    docker(&["network", "connect", &ours_net, &shared]);

    let guard = dir.guard();
    assert_eq!(guard.stack(), stack);
    let removed = guard.clean().unwrap();
    assert_eq!(removed.containers, std::slice::from_ref(&ours));
    assert_eq!(removed.networks, std::slice::from_ref(&ours_net));
    assert!(!exists("container", &ours) && !exists("network", &ours_net));
    assert!(
        !exists("volume", &volume),
        "the host's data volume went with it"
    );
    assert!(exists("container", &theirs) && exists("network", &theirs_net));
    assert!(
        exists("container", &shared),
        "a shared container is only detached"
    );
    drop(guard);

    // Dropping a guard cleans as well.
    let again = container(&stack, &format!("hermes-{neighbour}-dev"));
    drop(dir.guard());
    assert!(!exists("container", &again));
    assert!(exists("container", &theirs));
    drop(testbed);
    assert!(!exists("container", &theirs) && !exists("network", &theirs_net));
}
