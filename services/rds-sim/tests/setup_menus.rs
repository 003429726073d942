//! The setup menus `rdsctl doctor` reads: `/system package`, `/ip service`,
//! `/user active` (layouts assumed, README "Setup menus").
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[tokio::test]
async fn packages_services_and_active_users() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.behaviour.setup.ssh_max_sessions = 7;
    let sim = start(cfg).await;
    let a = connect(&sim).await;
    let (out, _) = run(&a, "/system package print detail").await;
    let pkgs = rds_routeros::parse_package_print(&out).unwrap();
    let names: Vec<_> = pkgs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["routeros", "rose-storage"], "{out}");
    assert_eq!(pkgs[1].version.as_deref(), Some("7.16"));

    let (out, _) = run(&a, "/ip service print detail where name=ssh").await;
    let svc = rds_routeros::parse_service_print(&out).unwrap();
    assert_eq!(svc.len(), 1, "{out}");
    assert_eq!((svc[0].port, svc[0].max_sessions), (Some(22), Some(7)));

    // Every authenticated connection is one active login; a closed one leaves.
    let b = connect(&sim).await;
    let (out, _) = run(&a, "/user active print detail").await;
    let users = rds_routeros::parse_active_user_print(&out).unwrap();
    assert_eq!(users.len(), 2, "{out}");
    assert!(
        users
            .iter()
            .all(|u| u.via.as_deref() == Some("ssh") && u.address.as_deref() == Some("127.0.0.1"))
    );
    drop(b);
    let mut n = 2;
    for _ in 0..100 {
        let (out, _) = run(&a, "/user active print detail").await;
        n = rds_routeros::parse_active_user_print(&out).unwrap().len();
        if n == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(n, 1);
    sim.stop().await;
}

#[tokio::test]
async fn rose_storage_can_be_missing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.behaviour.setup.rose_storage = false;
    let sim = start(cfg).await;
    let a = connect(&sim).await;
    let (out, _) = run(&a, "/system/package/print detail where name=rose-storage").await;
    assert!(
        rds_routeros::parse_package_print(&out).unwrap().is_empty(),
        "{out}"
    );
    sim.stop().await;
}
