//! Rotating the Secret: the SSH key and the pinned host key are files the
//! agent reads again for each new connection, so writing new ones (what
//! kubelet does when the Secret changes) is enough; no restart.

mod common;

use std::time::Duration;

use common::{Opts, Pin, env, key, wait_reachable};
use rds_proto::agent::ProbeRequest;
use russh::keys::ssh_key::LineEnding;

#[tokio::test(flavor = "multi_thread")]
async fn a_new_login_key_in_the_key_file_is_used_without_a_restart() {
    // The sim authorises key 1; the agent starts with key 2 (an old key).
    let e = env(Opts {
        client_key_seed: 2,
        ..Default::default()
    })
    .await;
    let mut c = e.client();
    let p = c.probe(ProbeRequest {}).await.unwrap().into_inner();
    assert!(!p.reachable, "key 2 is not authorised: {}", p.detail);

    std::fs::write(
        &e.key_path,
        key(1).to_openssh(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    assert!(
        wait_reachable(&mut c, Duration::from_secs(20))
            .await
            .is_some(),
        "the rotated key was not picked up"
    );
    e.shutdown().await;
}

/// Swap a file's content atomically, as kubelet swaps a Secret's files (a
/// reader never sees it empty or half-written).
#[allow(clippy::unwrap_used)]
fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_pinned_host_key_in_the_pin_file_is_used_without_a_restart() {
    let e = env(Opts {
        pin: Pin::PublicKeyFile,
        ..Default::default()
    })
    .await;
    let pin = e.dir.path().join("rds_host.pub");
    let real = std::fs::read_to_string(&pin).unwrap();
    let mut c = e.client();
    // Barrier: the agent's start-up login (which read the real pin) is done.
    // Without it, a login begun before the pin changes can finish after the
    // reboot below, and every later probe reuses that session.
    assert!(
        wait_reachable(&mut c, Duration::from_secs(20))
            .await
            .is_some(),
        "the agent never logged in with the real pin"
    );
    // The pin no longer matches the RDS (as after an RDS host key change);
    // the sim drops every session, so the agent must log in again.
    replace(&pin, &key(42).public_key().to_openssh().unwrap());
    e.sim.reboot(Duration::ZERO).await;
    let mut refused = false;
    for _ in 0..200 {
        let p = c.probe(ProbeRequest {}).await.unwrap().into_inner();
        if !p.reachable {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "a mismatching pin must refuse the next login");

    // The operator pins the RDS's key again (updates the Secret).
    replace(&pin, &real);
    assert!(
        wait_reachable(&mut c, Duration::from_secs(20))
            .await
            .is_some(),
        "the re-pinned host key was not picked up"
    );
    e.shutdown().await;
}
