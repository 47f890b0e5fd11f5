#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]
//! The forbidden server answers anything with FORBIDDEN-REACHED and counts every hit, from this
//! machine and from inside the network, on each of its ports. Needs a Docker engine.

use std::time::Duration;

use hermes_testbed::forbidden::BODY;
use hermes_testbed::{ForbiddenOptions, NetworkOptions, Testbed, http};

#[tokio::test]
async fn counts_every_hit_on_every_port() {
    let testbed = Testbed::new();
    let network = testbed
        .network(NetworkOptions {
            internal: true,
            ..NetworkOptions::default()
        })
        .await
        .unwrap();
    assert!(network.is_internal());
    let forbidden = testbed
        .forbidden(&network, ForbiddenOptions::default())
        .await
        .unwrap();
    assert_eq!(forbidden.ports(), [80, 443, 8080]);

    let before = forbidden.hits().await.unwrap();
    assert_eq!(before.hits, 0, "the readiness checks are not hits");
    assert!(before.connections >= 1);

    let ip = forbidden.ip();
    let get = http::get((ip, 80).into(), "/v1/chat/completions?x=1")
        .await
        .unwrap();
    assert_eq!((get.status, get.text().as_str()), (200, BODY));
    let post = http::post_json((ip, 443).into(), "/anything", &serde_json::json!({"a": 1}))
        .await
        .unwrap();
    assert_eq!((post.status, post.text().as_str()), (200, BODY));

    // A client inside the network, by name, on the third port.
    let inside = testbed
        .run_tool(
            &network,
            &[
                "curl",
                "-sS",
                "--max-time",
                "10",
                "http://forbidden.hermes.test:8080/exfiltrate",
            ],
            Duration::from_mins(1),
        )
        .await
        .unwrap();
    assert!(inside.status.success(), "{inside:?}");
    assert_eq!(String::from_utf8_lossy(&inside.stdout), BODY);

    let after = forbidden.hits().await.unwrap();
    assert_eq!(after.hits, 3, "{after:?}");
    assert!(after.connections >= before.connections + 3);
    let lines: Vec<(&str, u16)> = after
        .requests
        .iter()
        .map(|h| (h.request_line.as_str(), h.port))
        .collect();
    assert_eq!(
        lines,
        [
            ("GET /v1/chat/completions?x=1 HTTP/1.1", 80),
            ("POST /anything HTTP/1.1", 443),
            ("GET /exfiltrate HTTP/1.1", 8080),
        ]
    );
    assert_eq!(
        after.requests[2].host.as_deref(),
        Some("forbidden.hermes.test:8080")
    );
    assert_eq!(
        forbidden.hits().await.unwrap().hits,
        3,
        "reading the count is not a hit"
    );
}
