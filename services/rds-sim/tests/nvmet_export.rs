//! The NVMe/TCP export backend driven through the console over real SSH, against a plain
//! directory tree shaped like configfs (this machine's kernel has no nvmet; the real kernel
//! target is exercised by tests/vm).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use rds_sim::{MODEL_MARK, Sim};

fn fake_configfs(root: &Path) -> PathBuf {
    let c = root.join("config");
    std::fs::create_dir_all(c.join("nvmet/subsystems")).unwrap();
    std::fs::create_dir_all(c.join("nvmet/ports")).unwrap();
    c
}

fn nvmet_config(dir: &Path, configfs: &Path) -> rds_sim::SimConfig {
    let mut cfg = config(&dir.join("sim"));
    cfg.nvmet.enabled = true;
    cfg.nvmet.configfs_root = configfs.to_path_buf();
    cfg
}

#[tokio::test]
async fn console_changes_are_mirrored_into_nvmet() {
    let dir = tempfile::tempdir().unwrap();
    let cfgfs = fake_configfs(dir.path());
    let nvmet = cfgfs.join("nvmet");
    let sim = start(nvmet_config(dir.path(), &cfgfs)).await;
    let c = connect(&sim).await;
    let slot = format!("pvc-{UUID}");
    let nqn = format!("nqn.2000-02.com.mikrotik:{slot}");
    let sub = nvmet.join("subsystems").join(&nqn);
    let link = nvmet.join("ports/4420/subsystems").join(&nqn);

    ok(&c, &add_cmd(&slot, "64M")).await;
    let file = sim
        .host_path(&format!("/storage-pool/metal-csi/{slot}.img"))
        .unwrap();
    let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
    assert_eq!(read(sub.join("attr_model")), MODEL_MARK);
    assert_eq!(
        read(sub.join("namespaces/1/device_path")),
        file.display().to_string()
    );
    assert_eq!(read(sub.join("namespaces/1/enable")), "1");
    assert_eq!(read(nvmet.join("ports/4420/addr_trsvcid")), "4420");
    assert!(link.symlink_metadata().is_ok(), "linked into the port");

    // Export off → withdrawn; on again → back.
    ok(
        &c,
        &format!("/disk set [find slot={slot}] nvme-tcp-export=no"),
    )
    .await;
    assert!(!sub.exists() && !nvmet.join("ports/4420").exists());
    ok(
        &c,
        &format!("/disk set [find slot={slot}] nvme-tcp-export=yes"),
    )
    .await;
    assert!(link.symlink_metadata().is_ok());

    // Disabled disk → not exported.
    ok(&c, &format!("/disk set [find slot={slot}] disabled=yes")).await;
    assert!(!sub.exists());
    ok(&c, &format!("/disk set [find slot={slot}] disabled=no")).await;
    assert!(sub.exists());

    // A simulated reboot withdraws the export while the box is down.
    sim.reboot(Duration::from_millis(300)).await;
    assert!(!sub.exists(), "withdrawn while down");
    assert!(sim.wait_up(T).await);
    assert!(link.symlink_metadata().is_ok(), "back after the reboot");

    // Removing the disk withdraws it; the file stays (docs/routeros.md §6.6).
    let c = connect(&sim).await;
    ok(&c, &format!("/disk remove [find slot={slot}]")).await;
    assert!(!sub.exists() && !nvmet.join("ports/4420").exists());
    assert!(file.exists());
    sim.stop().await;
}

#[tokio::test]
async fn restart_reconciles_and_export_off_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let cfgfs = fake_configfs(dir.path());
    let nvmet = cfgfs.join("nvmet");
    let slot = format!("pvc-{UUID}");
    let nqn = format!("nqn.2000-02.com.mikrotik:{slot}");
    let sub = nvmet.join("subsystems").join(&nqn);

    // A disk made while export was off is exported when the sim restarts with it on.
    let sim = start(config(&dir.path().join("sim"))).await;
    ok(&connect(&sim).await, &add_cmd(&slot, "8M")).await;
    assert!(!sub.exists());
    sim.stop().await;

    let sim = start(nvmet_config(dir.path(), &cfgfs)).await;
    assert!(sub.join("namespaces/1/enable").exists());
    sim.stop().await;
    assert!(sub.exists(), "stopping leaves the data path up");

    // Restart with export off: what the earlier run made is withdrawn.
    let mut off = nvmet_config(dir.path(), &cfgfs);
    off.nvmet.enabled = false;
    let sim = start(off).await;
    assert!(!sub.exists());
    assert!(!nvmet.join("ports/4420").exists());
    sim.stop().await;
}

#[tokio::test]
async fn start_without_nvmet_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = nvmet_config(dir.path(), &dir.path().join("no-configfs"));
    let err = match Sim::start(cfg).await {
        Ok(_) => panic!("the sim must refuse to start"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("nvmet") && err.contains("modprobe"), "{err}");
}
