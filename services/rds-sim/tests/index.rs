//! The sim's in-memory lookups (files by name, disks by slot/NQN/path, pool usage) answer
//! exactly what walking everything answered (issue 16 made them indexes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{add_cmd, config, connect, ok, run, start};
use rds_routeros::{parse_disk_print_detail, parse_file_print_detail};
use rds_sim::SpaceMode;

fn names(out: &str) -> Vec<String> {
    parse_file_print_detail(out)
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect()
}

fn slots(out: &str) -> Vec<String> {
    parse_disk_print_detail(out)
        .unwrap()
        .into_iter()
        .filter_map(|d| d.slot)
        .collect()
}

#[tokio::test]
async fn files_made_or_removed_outside_the_sim_are_seen() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(config(dir.path()).local_mode()).await;
    let c = connect(&sim).await;
    let orphan = "storage-pool/metal-csi/orphan.img";
    // An orphan dropped in from outside (a file without a disk): found by name.
    let p = sim.host_path(orphan).unwrap();
    std::fs::File::create(&p).unwrap().set_len(4096).unwrap();
    let q = format!("/file print detail where name=\"{orphan}\"");
    let (out, _) = run(&c, &q).await;
    assert_eq!(names(&out), [orphan]);
    // Removed from outside: gone by name and from the full listing.
    std::fs::remove_file(&p).unwrap();
    let (out, _) = run(&c, &q).await;
    assert!(names(&out).is_empty(), "{out}");
    let (out, _) = run(&c, "/file print detail").await;
    assert!(!names(&out).contains(&orphan.to_owned()), "{out}");
    // A directory tree made outside shows in the full listing with every entry.
    std::fs::create_dir_all(sim.host_path("storage-pool/x/y").unwrap()).unwrap();
    std::fs::write(sim.host_path("storage-pool/x/y/z.img").unwrap(), b"z").unwrap();
    let (out, _) = run(&c, "/file print detail").await;
    let all = names(&out);
    for n in [
        "storage-pool/x",
        "storage-pool/x/y",
        "storage-pool/x/y/z.img",
    ] {
        assert!(all.contains(&n.to_owned()), "{n} in {all:?}");
    }
    // The sim's own changes are seen at once, by name and in the listing.
    ok(&c, &add_cmd("pvc-1", "1M")).await;
    let one = "storage-pool/metal-csi/pvc-1.img";
    let (out, _) = run(&c, &format!("/file print detail where name=\"{one}\"")).await;
    assert_eq!(names(&out), [one]);
    ok(&c, "/disk remove [find slot=pvc-1]").await;
    ok(&c, &format!("/file remove [find name=\"{one}\"]")).await;
    let (out, _) = run(&c, &format!("/file print detail where name=\"{one}\"")).await;
    assert!(names(&out).is_empty(), "{out}");
    // Print numbers of a named file are its position in the whole listing.
    let (full, _) = run(&c, "/file print detail").await;
    let listed = parse_file_print_detail(&full).unwrap();
    let z = listed
        .iter()
        .find(|f| f.name == "storage-pool/x/y/z.img")
        .unwrap();
    let (out, _) = run(
        &c,
        "/file print detail where name=\"storage-pool/x/y/z.img\"",
    )
    .await;
    assert_eq!(parse_file_print_detail(&out).unwrap()[0].number, z.number);
}

#[tokio::test]
async fn disk_lookups_follow_set_remove_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(config(dir.path())).await;
    let c = connect(&sim).await;
    ok(&c, &add_cmd("pvc-a", "1M")).await;
    ok(&c, &add_cmd("pvc-b", "1M")).await;
    ok(&c, "/disk set [find slot=pvc-a] slot=pvc-c").await;
    let (out, _) = run(&c, "/disk print detail where slot=pvc-a").await;
    assert!(slots(&out).is_empty(), "old slot gone: {out}");
    let (out, _) = run(&c, "/disk print detail where slot=pvc-c || slot=pvc-b").await;
    assert_eq!(slots(&out), ["pvc-c", "pvc-b"]);
    // The old slot is free again; the NQN moved with the disk.
    ok(
        &c,
        &add_cmd("pvc-a", "1M")
            .replace("pvc-a.img", "pvc-a2.img")
            .replace(":pvc-a", ":pvc-x"),
    )
    .await;
    let (out, _) = run(
        &c,
        "/disk print detail where nvme-tcp-server-nqn=\"nqn.2000-02.com.mikrotik:pvc-a\"",
    )
    .await;
    assert_eq!(slots(&out), ["pvc-c"]);
    // A changed NQN: the clash check and the filter see the new one, not the old.
    ok(
        &c,
        "/disk set [find slot=pvc-c] nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:pvc-new",
    )
    .await;
    let (out, _) = run(
        &c,
        "/disk add type=file file-path=/storage-pool/metal-csi/d.img file-size=1M slot=pvc-d nvme-tcp-export=yes nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:pvc-new",
    )
    .await;
    assert_eq!(
        out,
        "failure: nvme-tcp-server-nqn already used on this port\r\n"
    );
    ok(
        &c,
        "/disk add type=file file-path=/storage-pool/metal-csi/d.img file-size=1M slot=pvc-d nvme-tcp-export=yes nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:pvc-a",
    )
    .await;
    // Removed: not found, and its slot can be taken again.
    ok(&c, "/disk remove [find slot=pvc-b]").await;
    let (out, _) = run(&c, "/disk print detail where slot=pvc-b").await;
    assert!(slots(&out).is_empty(), "{out}");
    let (out, _) = run(
        &c,
        "/disk print detail where file-path=\"/storage-pool/metal-csi/d.img\"",
    )
    .await;
    assert_eq!(slots(&out), ["pvc-d"]);
    // After a restart the lookups are rebuilt from the state.
    drop(c);
    sim.stop().await;
    let sim = start(config(dir.path())).await;
    let c = connect(&sim).await;
    let (out, _) = run(&c, "/disk print detail where slot=pvc-c || slot=pvc-d").await;
    assert_eq!(slots(&out), ["pvc-c", "pvc-d"]);
    let (out, _) = run(&c, &add_cmd("pvc-c", "1M")).await;
    assert_eq!(out, "failure: item with such name already exists\r\n");
}

#[tokio::test]
async fn pool_usage_follows_every_add_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.behaviour.space = SpaceMode::Strict;
    let sim = start(cfg).await;
    let c = connect(&sim).await;
    let free = async || {
        let (out, _) = run(&c, "/disk print detail where slot=storage-pool").await;
        parse_disk_print_detail(&out).unwrap()[0].free.unwrap()
    };
    let before = free().await;
    ok(&c, &add_cmd("pvc-1", "1G")).await;
    assert_eq!(free().await, before - (1 << 30));
    ok(&c, "/disk set [find slot=pvc-1] file-size=3G").await;
    assert_eq!(free().await, before - (3 << 30));
    ok(&c, "/disk remove [find slot=pvc-1]").await;
    ok(
        &c,
        "/file remove [find name=\"storage-pool/metal-csi/pvc-1.img\"]",
    )
    .await;
    assert_eq!(free().await, before);
}
