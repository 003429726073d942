//! `/disk/btrfs/subvolume`, `/disk/btrfs/filesystem`, `comment` on `/disk`, the pool
//! filesystem and the switches for the unverified points, over real SSH. The command
//! lines are the ones rds-routeros builds for the agent (issue 19's contract).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Seek, SeekFrom, Write};

use common::{config, connect, ok, run, start};
use rds_routeros::{
    Command, DiskComment, DiskPath, FileSize, Nqn, NvmeExport, PoolName, Port, RegexPattern, Slot,
    SubvolumeName, SubvolumeSelector, parse_disk_print_detail, parse_filesystem_print_detail,
    parse_subvolume_print_detail,
};
use rds_sim::{ExistingFileMode, LiveSnapshotMode, PoolFilesystem, SimConfig, SlotLimit};

const BASE: &str = "/storage-pool/metal-csi";

fn name(n: &str) -> SubvolumeName {
    SubvolumeName::new(&format!("metal-csi/{n}")).unwrap()
}

fn subvolume_add(n: &str, parent: Option<&str>, read_only: bool) -> String {
    Command::SubvolumeAdd {
        fs: PoolName::new("storage-pool").unwrap(),
        name: name(n),
        parent: parent.map(name),
        read_only,
    }
    .to_string()
}

fn print_name(n: &str) -> String {
    Command::SubvolumePrint(SubvolumeSelector::Name(name(n))).to_string()
}

fn remove(n: &str) -> String {
    Command::SubvolumeRemove { name: name(n) }.to_string()
}

/// `/disk add` of `<base>/<id>/volume.img` (the subvolume layout's file), exported.
fn disk_add(id: &str, size: u64, comment: Option<&str>) -> String {
    let slot = Slot::new(id).unwrap();
    Command::DiskAddFile {
        file_path: DiskPath::new(&format!("{BASE}/{id}/volume.img")).unwrap(),
        file_size: FileSize::new(size).unwrap(),
        export: Some(NvmeExport {
            port: Port::NVME_TCP_DEFAULT,
            nqn: Nqn::for_volume(&slot),
            allow_hosts: None,
        }),
        slot,
        comment: comment.map(|c| DiskComment::new(c).unwrap()),
    }
    .to_string()
}

fn volume_file(sim: &rds_sim::SimHandle, id: &str) -> std::path::PathBuf {
    sim.host_path(&format!("{BASE}/{id}/volume.img")).unwrap()
}

fn write_at(p: &std::path::Path, off: u64, data: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    f.seek(SeekFrom::Start(off)).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
}

fn read_at(p: &std::path::Path, off: u64, n: usize) -> Vec<u8> {
    let mut f = std::fs::File::open(p).unwrap();
    f.seek(SeekFrom::Start(off)).unwrap();
    let mut b = vec![0; n];
    f.read_exact(&mut b).unwrap();
    b
}

async fn sim_with(f: impl FnOnce(&mut SimConfig)) -> (tempfile::TempDir, rds_sim::SimHandle) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path()).local_mode();
    f(&mut cfg);
    let sim = start(cfg).await;
    (dir, sim)
}

/// `pvc-x`, `pvc-z` (added with the space-separated menu form) and a read-only snapshot of
/// `pvc-x`.
async fn three_subvolumes(c: &async_ssh2_tokio::client::Client) {
    ok(c, &subvolume_add("pvc-x", None, false)).await;
    ok(
        c,
        "/disk btrfs subvolume add fs=storage-pool name=metal-csi/pvc-z",
    )
    .await;
    ok(c, &subvolume_add("snap-y.from-pvc-x", Some("pvc-x"), true)).await;
}

#[tokio::test]
async fn subvolume_print_in_the_contract_layout() {
    let (_d, sim) = sim_with(|_| {}).await;
    let c = connect(&sim).await;
    three_subvolumes(&c).await;
    assert!(sim.file_exists("/storage-pool/metal-csi/pvc-x"));

    let (out, st) = run(&c, &print_name("snap-y.from-pvc-x")).await;
    assert_eq!(st, 0);
    let lines: Vec<&str> = out.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "Flags: D - DEAD; S - SNAPSHOT; r - READ-ONLY; M - MOUNTED"
    );
    // Number, then the flags block (S and r in their legend columns), properties at column 8.
    assert!(
        lines[1].starts_with(r#" 2  Sr  name="metal-csi/snap-y.from-pvc-x" fs=storage-pool"#),
        "{out}"
    );
    assert!(
        out.ends_with("\r\n\r\n"),
        "blank line after the record: {out:?}"
    );
    let recs = parse_subvolume_print_detail(&out).unwrap();
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(r.name, "metal-csi/snap-y.from-pvc-x");
    assert_eq!(r.fs.as_deref(), Some("storage-pool"));
    assert_eq!(r.parent_name(), Some("metal-csi/pvc-x"));
    assert_eq!(r.read_only, Some(true));
    assert!(r.has_flag('S') && r.has_flag('r'));
    assert_eq!(
        r.path.as_deref(),
        Some("/storage-pool/metal-csi/snap-y.from-pvc-x")
    );
    assert_eq!(r.subvolume_id, Some(258));
    let keys: Vec<&str> = r.raw.iter().map(|p| p.key.as_ref()).collect();
    assert_eq!(
        keys,
        [
            "name",
            "fs",
            "parent",
            "read-only",
            "uuid",
            "subvolume-id",
            "generation",
            "creation-time",
            "path"
        ]
    );
    let uuid = r.uuid.clone().unwrap();
    assert_eq!(
        uuid.split('-').map(str::len).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12],
        "{uuid}"
    );
    assert!(r.creation_time.as_ref().unwrap().unix_seconds().is_some());
    // A plain subvolume: no flags, parent="".
    let (out, _) = run(&c, &print_name("pvc-x")).await;
    let plain = &parse_subvolume_print_detail(&out).unwrap()[0];
    assert_eq!((plain.flags.as_str(), plain.parent_name()), ("", None));
    assert!(out.contains(r#"parent="" read-only=no"#), "{out}");
}

#[tokio::test]
async fn subvolume_filters_set_remove_and_restart() {
    let (_d, sim) = sim_with(|_| {}).await;
    let c = connect(&sim).await;
    three_subvolumes(&c).await;
    // name~ (regex) and parent= filters.
    let re = Command::SubvolumePrint(SubvolumeSelector::NameMatches(
        RegexPattern::starts_with("metal-csi/snap-y.from-").unwrap(),
    ))
    .to_string();
    let (out, _) = run(&c, &re).await;
    let names: Vec<_> = parse_subvolume_print_detail(&out)
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["metal-csi/snap-y.from-pvc-x"]);
    let by_parent = Command::SubvolumePrint(SubvolumeSelector::Parent(name("pvc-x"))).to_string();
    let (out, _) = run(&c, &by_parent).await;
    assert_eq!(parse_subvolume_print_detail(&out).unwrap().len(), 1);
    // No match: the legend alone, then a blank line.
    let (out, _) = run(&c, &print_name("nothing")).await;
    assert_eq!(
        out,
        "Flags: D - DEAD; S - SNAPSHOT; r - READ-ONLY; M - MOUNTED\r\n\r\n"
    );

    // set read-only, then remove by [find where name=...]: directory and files go.
    ok(
        &c,
        r#"/disk/btrfs/subvolume/set [find where name="metal-csi/pvc-z"] read-only=yes"#,
    )
    .await;
    let (out, _) = run(&c, &print_name("pvc-z")).await;
    assert!(parse_subvolume_print_detail(&out).unwrap()[0].is_read_only());
    ok(&c, &remove("pvc-z")).await;
    assert!(!sim.file_exists("/storage-pool/metal-csi/pvc-z"));
    // The snapshot keeps its parent's name after the parent is removed.
    ok(&c, &remove("pvc-x")).await;
    let (out, _) = run(&c, &print_name("snap-y.from-pvc-x")).await;
    assert_eq!(
        parse_subvolume_print_detail(&out).unwrap()[0].parent_name(),
        Some("metal-csi/pvc-x")
    );
    // Subvolumes are state: a restart keeps them.
    drop(c);
    let dir = sim.state_dir();
    sim.stop().await;
    let sim = start(config(&dir)).await;
    let c = connect(&sim).await;
    let (out, _) = run(&c, "/disk/btrfs/subvolume/print detail").await;
    let names: Vec<_> = parse_subvolume_print_detail(&out)
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["metal-csi/snap-y.from-pvc-x"]);
}

#[tokio::test]
async fn filesystem_print_lists_the_pool() {
    let (_d, sim) = sim_with(|_| {}).await;
    let c = connect(&sim).await;
    let (out, st) = run(&c, "/disk/btrfs/filesystem/print detail").await;
    assert_eq!(st, 0);
    assert!(
        out.starts_with(r#" 0  label="storage-pool" uuid="#),
        "no legend, one record: {out}"
    );
    let fs = parse_filesystem_print_detail(&out).unwrap();
    assert_eq!(fs.len(), 1);
    assert_eq!(fs[0].label, "storage-pool");
    assert_eq!(fs[0].devs.as_deref(), Some("raid1"));
    assert_eq!(fs[0].default_subvolume, Some(5));
    // The uuid is the filesystem's: the same on every print.
    let (again, _) = run(&c, "/disk btrfs filesystem print detail").await;
    assert_eq!(again, out);
}

#[tokio::test]
async fn snapshot_keeps_the_old_bytes_when_the_parent_is_overwritten() {
    let (_d, sim) = sim_with(|_| {}).await;
    let c = connect(&sim).await;
    ok(&c, &subvolume_add("pvc-a", None, false)).await;
    ok(&c, &disk_add("pvc-a", 64 << 20, None)).await;
    let src = volume_file(&sim, "pvc-a");
    write_at(&src, 5 << 20, b"pattern-one");
    ok(&c, &subvolume_add("snap-1.from-pvc-a", Some("pvc-a"), true)).await;
    write_at(&src, 5 << 20, b"pattern-two");
    let snap = volume_file(&sim, "snap-1.from-pvc-a");
    assert_eq!(read_at(&snap, 5 << 20, 11), b"pattern-one");
    assert_eq!(std::fs::metadata(&snap).unwrap().len(), 64 << 20);
    // Restore: a writable snapshot of the snapshot, then /disk add adopts its file.
    ok(
        &c,
        &subvolume_add("pvc-b", Some("snap-1.from-pvc-a"), false),
    )
    .await;
    ok(&c, &disk_add("pvc-b", 64 << 20, None)).await;
    let restored = volume_file(&sim, "pvc-b");
    assert_eq!(read_at(&restored, 5 << 20, 11), b"pattern-one");
    // Writing the restored volume does not touch the snapshot.
    write_at(&restored, 5 << 20, b"pattern-new");
    assert_eq!(read_at(&snap, 5 << 20, 11), b"pattern-one");
    // A larger restore grows the adopted file.
    ok(&c, "/disk set [find slot=pvc-b] file-size=128M").await;
    assert_eq!(std::fs::metadata(&restored).unwrap().len(), 128 << 20);
}

#[tokio::test]
async fn read_only_subvolume_refuses_the_sims_writes() {
    let (_d, sim) = sim_with(|_| {}).await;
    let c = connect(&sim).await;
    ok(&c, &subvolume_add("pvc-a", None, false)).await;
    ok(&c, &disk_add("pvc-a", 1 << 20, None)).await;
    ok(&c, &subvolume_add("snap-1.from-pvc-a", Some("pvc-a"), true)).await;
    // A new disk over the read-only snapshot's file is refused, file untouched.
    let line =
        format!("/disk add type=file file-path={BASE}/snap-1.from-pvc-a/volume.img slot=pvc-ro");
    let (out, st) = run(&c, &line).await;
    assert_eq!(
        (out.as_str(), st),
        ("failure: read-only file system\r\n", 1)
    );
    let line =
        format!("/disk add type=file file-path={BASE}/snap-1.from-pvc-a/new.img file-size=1M");
    let (out, _) = run(&c, &line).await;
    assert_eq!(out, "failure: read-only file system\r\n");
    assert!(!sim.file_exists(&format!("{BASE}/snap-1.from-pvc-a/new.img")));
    let (out, _) = run(
        &c,
        r#"/file remove [find name="storage-pool/metal-csi/snap-1.from-pvc-a/volume.img"]"#,
    )
    .await;
    assert_eq!(out, "failure: read-only file system\r\n");
    assert!(sim.disks().iter().all(|d| d.slot != "pvc-ro"));
}

#[tokio::test]
async fn remove_is_refused_while_a_disk_uses_a_file_inside() {
    let (_d, sim) = sim_with(|_| {}).await;
    let c = connect(&sim).await;
    ok(&c, &subvolume_add("pvc-a", None, false)).await;
    ok(&c, &disk_add("pvc-a", 1 << 20, None)).await;
    let (out, st) = run(&c, &remove("pvc-a")).await;
    assert_eq!((out.as_str(), st), ("failure: subvolume is in use\r\n", 1));
    assert!(sim.file_exists(&format!("{BASE}/pvc-a/volume.img")));
    let (out, _) = run(&c, &print_name("pvc-a")).await;
    assert_eq!(parse_subvolume_print_detail(&out).unwrap().len(), 1);
    // Disk gone: the subvolume and its file go.
    ok(&c, "/disk remove [find slot=pvc-a]").await;
    ok(&c, &remove("pvc-a")).await;
    assert!(!sim.file_exists(&format!("{BASE}/pvc-a/volume.img")));
    assert!(!sim.file_exists(&format!("{BASE}/pvc-a")));
}

#[tokio::test]
async fn comment_prints_as_a_first_line_and_copy_from_copies_it() {
    let (_d, sim) = sim_with(|_| {}).await;
    let c = connect(&sim).await;
    let tag = "rds-csi: cluster=home pv=pvc-1 pvc=default/data";
    ok(&c, &subvolume_add("pvc-1", None, false)).await;
    ok(&c, &disk_add("pvc-1", 1 << 20, Some(tag))).await;
    let (out, _) = run(&c, "/disk print detail where slot=pvc-1").await;
    let lines: Vec<&str> = out.split("\r\n").collect();
    let first = lines.iter().position(|l| l.starts_with(" 1 ")).unwrap();
    assert_eq!(
        lines[first],
        format!(" 1 B   t       ;;; {tag}"),
        "comment on the record's first line at column 15: {out}"
    );
    assert!(
        lines[first + 1].starts_with("               type=file slot=\"pvc-1\""),
        "{out}"
    );
    let d = &parse_disk_print_detail(&out).unwrap()[0];
    assert_eq!(d.comment.as_deref(), Some(tag));
    assert_eq!(d.slot.as_deref(), Some("pvc-1"));
    // set changes it; copy-from carries it to the copy.
    ok(
        &c,
        r#"/disk set [find slot=pvc-1] comment="rds-csi: cluster=lab""#,
    )
    .await;
    ok(
        &c,
        &format!("/disk add type=file copy-from=[find slot=pvc-1] file-path={BASE}/c.img slot=c nvme-tcp-export=no"),
    )
    .await;
    let (out, _) = run(&c, "/disk print detail where comment~\"cluster=lab\"").await;
    let got: Vec<_> = parse_disk_print_detail(&out)
        .unwrap()
        .into_iter()
        .map(|d| (d.slot.unwrap(), d.comment.unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("pvc-1".to_owned(), "rds-csi: cluster=lab".to_owned()),
            ("c".to_owned(), "rds-csi: cluster=lab".to_owned())
        ]
    );
    // Uncommented disks print as before (no `;;;` line).
    let (out, _) = run(&c, "/disk print detail where slot=storage-pool").await;
    assert!(!out.contains(";;;"), "{out}");
    assert_eq!(sim.disks()[0].comment, "rds-csi: cluster=lab");
}

#[tokio::test]
async fn pool_filesystem_btrfs_is_the_default_and_printed() {
    let (_d, sim) = sim_with(|_| {}).await;
    let c = connect(&sim).await;
    let (out, _) = run(&c, "/disk print detail where mount-point=storage-pool").await;
    assert_eq!(
        parse_disk_print_detail(&out).unwrap()[0].fs.as_deref(),
        Some("btrfs")
    );
}

#[tokio::test]
async fn pool_filesystem_xfs_refuses_every_btrfs_change() {
    let (_d, sim) = sim_with(|c| c.behaviour.pool_filesystem = PoolFilesystem::Xfs).await;
    let c = connect(&sim).await;
    let (out, _) = run(&c, "/disk print detail where mount-point=storage-pool").await;
    assert_eq!(
        parse_disk_print_detail(&out).unwrap()[0].fs.as_deref(),
        Some("xfs")
    );
    let no = "failure: no btrfs filesystem storage-pool\r\n";
    let (out, st) = run(&c, &subvolume_add("pvc-x", None, false)).await;
    assert_eq!((out.as_str(), st), (no, 1));
    assert!(!sim.file_exists(&format!("{BASE}/pvc-x")));
    let (out, _) = run(&c, &remove("pvc-x")).await;
    assert_eq!(out, no);
    // Nothing to list: the filesystem print is empty, the subvolume print the legend alone.
    let (out, st) = run(&c, "/disk/btrfs/filesystem/print detail").await;
    assert_eq!((out.as_str(), st), ("", 0));
    let (out, _) = run(&c, "/disk/btrfs/subvolume/print detail").await;
    assert!(parse_subvolume_print_detail(&out).unwrap().is_empty());
}

#[tokio::test]
async fn btrfs_fs_naming_another_label_fails_like_a_missing_filesystem() {
    let (_d, sim) = sim_with(|_| {}).await;
    let c = connect(&sim).await;
    let (out, _) = run(&c, "/disk/btrfs/subvolume/add fs=other name=metal-csi/x").await;
    assert_eq!(out, "failure: no btrfs filesystem other\r\n");
}

/// Snapshot, then the restore's `/disk add` on the file inside the new subvolume.
async fn restore_add(existing: ExistingFileMode) -> (Outcome, rds_sim::SimHandle) {
    let (d, sim) = sim_with(|c| c.behaviour.existing_file = existing).await;
    let c = connect(&sim).await;
    ok(&c, &subvolume_add("pvc-a", None, false)).await;
    ok(&c, &disk_add("pvc-a", 1 << 20, None)).await;
    write_at(&volume_file(&sim, "pvc-a"), 0, b"data");
    ok(&c, &subvolume_add("pvc-b", Some("pvc-a"), false)).await;
    let (out, st) = run(&c, &disk_add("pvc-b", 1 << 20, None)).await;
    ((out, st, d), sim)
}

/// Output, exit status, and the state directory (kept alive with the sim).
type Outcome = (String, u32, tempfile::TempDir);

#[tokio::test]
async fn existing_file_attach_adopts_the_file_inside_a_subvolume() {
    let ((out, st, _d), sim) = restore_add(ExistingFileMode::Attach).await;
    assert_eq!((out.as_str(), st), ("", 0));
    assert!(sim.disks().iter().any(|d| d.slot == "pvc-b"));
    assert_eq!(read_at(&volume_file(&sim, "pvc-b"), 0, 4), b"data");
}

#[tokio::test]
async fn existing_file_fail_refuses_the_file_inside_a_subvolume() {
    let ((out, st, _d), sim) = restore_add(ExistingFileMode::Fail).await;
    assert_eq!((out.as_str(), st), ("failure: file already exists\r\n", 1));
    assert!(sim.disks().iter().all(|d| d.slot != "pvc-b"));
    // The refused add left the snapshot's data alone.
    assert_eq!(read_at(&volume_file(&sim, "pvc-b"), 0, 4), b"data");
}

const LONG_SLOT: &str = "pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8";

#[tokio::test]
async fn slot_limit_none_accepts_a_40_character_slot() {
    let (_d, sim) = sim_with(|c| c.behaviour.slot_limit = SlotLimit::None).await;
    let c = connect(&sim).await;
    ok(&c, &common::add_cmd(LONG_SLOT, "1M")).await;
    assert_eq!(sim.disks()[0].slot, LONG_SLOT);
}

#[tokio::test]
async fn slot_limit_32_refuses_a_40_character_slot() {
    let (_d, sim) = sim_with(|c| c.behaviour.slot_limit = SlotLimit::Max32).await;
    let c = connect(&sim).await;
    let (out, st) = run(&c, &common::add_cmd(LONG_SLOT, "1M")).await;
    assert_eq!(
        (out.as_str(), st),
        ("failure: slot name too long (32 characters max)\r\n", 1)
    );
    assert!(sim.disks().is_empty());
    // 32 characters still fit; set cannot rename past the limit either.
    ok(
        &c,
        &common::add_cmd("pvc-0f923194-922a-5dd8-b376-c2c6", "1M"),
    )
    .await;
    let (out, _) = run(
        &c,
        &format!("/disk set [find slot=pvc-0f923194-922a-5dd8-b376-c2c6] slot={LONG_SLOT}"),
    )
    .await;
    assert_eq!(out, "failure: slot name too long (32 characters max)\r\n");
}

/// A snapshot of a subvolume whose file is exported right now.
async fn live_snapshot(mode: LiveSnapshotMode) -> (Outcome, rds_sim::SimHandle) {
    let (d, sim) = sim_with(|c| c.behaviour.live_snapshot = mode).await;
    let c = connect(&sim).await;
    ok(&c, &subvolume_add("pvc-a", None, false)).await;
    ok(&c, &disk_add("pvc-a", 1 << 20, None)).await;
    write_at(&volume_file(&sim, "pvc-a"), 0, b"live");
    let (out, st) = run(&c, &subvolume_add("snap-1.from-pvc-a", Some("pvc-a"), true)).await;
    ((out, st, d), sim)
}

#[tokio::test]
async fn live_snapshot_allow_snapshots_an_exported_volume() {
    let ((out, st, _d), sim) = live_snapshot(LiveSnapshotMode::Allow).await;
    assert_eq!((out.as_str(), st), ("", 0));
    assert_eq!(
        read_at(&volume_file(&sim, "snap-1.from-pvc-a"), 0, 4),
        b"live"
    );
}

#[tokio::test]
async fn live_snapshot_refuse_answers_busy_and_makes_nothing() {
    let ((out, st, _d), sim) = live_snapshot(LiveSnapshotMode::Refuse).await;
    assert_eq!((out.as_str(), st), ("failure: subvolume is busy\r\n", 1));
    assert!(!sim.file_exists(&format!("{BASE}/snap-1.from-pvc-a")));
    let c = connect(&sim).await;
    let (out, _) = run(&c, &print_name("snap-1.from-pvc-a")).await;
    assert!(parse_subvolume_print_detail(&out).unwrap().is_empty());
    // Not exported any more: the snapshot is allowed.
    ok(&c, "/disk set [find slot=pvc-a] nvme-tcp-export=no").await;
    ok(&c, &subvolume_add("snap-1.from-pvc-a", Some("pvc-a"), true)).await;
}

#[tokio::test]
async fn snapshot_inside_its_parent_and_file_remove_of_a_subvolume() {
    let (_d, sim) = sim_with(|_| {}).await;
    let c = connect(&sim).await;
    ok(&c, &subvolume_add("pvc-a", None, false)).await;
    ok(&c, &disk_add("pvc-a", 1 << 20, None)).await;
    // Snapshot into the parent itself: it holds the parent's file and an empty directory
    // where it sits (it does not copy itself).
    ok(&c, &subvolume_add("pvc-a/inner", Some("pvc-a"), true)).await;
    assert!(sim.file_exists(&format!("{BASE}/pvc-a/inner/volume.img")));
    let inner = sim.host_path(&format!("{BASE}/pvc-a/inner/inner")).unwrap();
    assert_eq!(std::fs::read_dir(inner).unwrap().count(), 0);
    // /file remove cannot take a subvolume, or a directory holding one, away from its record.
    for name in [
        "storage-pool/metal-csi/pvc-a/inner",
        "storage-pool/metal-csi",
    ] {
        let (out, st) = run(&c, &format!("/file remove [find name=\"{name}\"]")).await;
        assert_eq!(
            (out.as_str(), st),
            ("failure: can not remove subvolume\r\n", 1),
            "{name}"
        );
    }
    assert!(sim.file_exists(&format!("{BASE}/pvc-a/inner/volume.img")));
    // The holder goes only after what it holds.
    ok(&c, "/disk remove [find slot=pvc-a]").await;
    let (out, _) = run(&c, &remove("pvc-a")).await;
    assert_eq!(out, "failure: subvolume has subvolumes inside\r\n");
    ok(&c, &remove("pvc-a/inner")).await;
    ok(&c, &remove("pvc-a")).await;
    assert!(!sim.file_exists(&format!("{BASE}/pvc-a")));
}

#[test]
fn the_new_switches_read_from_the_behaviour_json() {
    let b: rds_sim::Behaviour = serde_json::from_str(
        r#"{"slot_limit":"32","live_snapshot":"refuse","pool_filesystem":"ext4","existing_file":"fail"}"#,
    )
    .unwrap();
    assert_eq!(
        (
            b.slot_limit,
            b.live_snapshot,
            b.pool_filesystem,
            b.existing_file
        ),
        (
            SlotLimit::Max32,
            LiveSnapshotMode::Refuse,
            PoolFilesystem::Ext4,
            ExistingFileMode::Fail
        )
    );
    let d: rds_sim::Behaviour = serde_json::from_str("{}").unwrap();
    assert_eq!(
        (d.slot_limit, d.live_snapshot, d.pool_filesystem),
        (
            SlotLimit::None,
            LiveSnapshotMode::Allow,
            PoolFilesystem::Btrfs
        )
    );
    // A partial `texts` keeps the other defaults.
    let t: rds_sim::Behaviour =
        serde_json::from_str(r#"{"texts":{"subvolume_busy":"failure: busy"}}"#).unwrap();
    assert_eq!(t.texts.subvolume_busy, "failure: busy");
    assert_eq!(t.texts.read_only, "failure: read-only file system");
}
