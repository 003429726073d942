//! Format only what is provably blank (real loop devices, real mkfs; root):
//! a damaged filesystem, data blkid does not know, and a restore that reads
//! blank are refused with FAILED_PRECONDITION and an event — and the data
//! is still there to recover.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use rds_bus::{ContentSource, SnapshotId};
use rds_dataplane::{AccessType, ContentOrigin, DataPlaneError, FsType};
use support::*;

fn run(prog: &str, args: &[&str], file: &Path) {
    let out = Command::new(prog).args(args).arg(file).output().unwrap();
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn zero(file: &Path, offset: u64, len: usize) {
    let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.write_all_at(&vec![0u8; len], offset).unwrap();
}

/// The refusal as the CO sees it, and nothing formatted.
fn assert_format_refused(e: &DataPlaneError, needle: &str) {
    assert!(matches!(e, DataPlaneError::FormatRefused(_)), "{e:?}");
    assert_eq!(e.to_status().code(), tonic::Code::FailedPrecondition);
    assert!(e.to_string().contains(needle), "{needle:?} not in: {e}");
}

#[tokio::test]
async fn ext4_with_a_zeroed_primary_superblock_is_refused_and_recoverable() {
    let h = harness();
    let v = h.volume("pvc-lost-sb", 256 * MIB);
    run("mkfs.ext4", &["-q", "-b", "4096"], &v.file);
    h.stage(&v, mount(FsType::Ext4)).await.unwrap();
    let data = v.staging.as_path().join("precious.txt");
    std::fs::write(&data, b"keep me").unwrap();
    h.unstage(&v).await;
    // The primary superblock (1 KiB at 1 KiB) is gone; the backups are not.
    zero(&v.file, 1024, 1024);
    assert_eq!(blkid_exit(&v.file), Some(2), "blkid sees no filesystem");

    let e = h.stage(&v, mount(FsType::Ext4)).await.unwrap_err();
    assert_format_refused(&e, "non-zero");
    assert!(
        h.events.reasons().contains(&"FormatRefused"),
        "{:?}",
        h.events.reasons()
    );
    assert!(
        loops_of_after_detach(&v.file).is_empty(),
        "a failed first stage detaches"
    );

    // The operator's way out: fsck from the first backup (4 KiB blocks).
    let st = Command::new("e2fsck")
        .args(["-f", "-y", "-b", "32768", "-B", "4096"])
        .arg(&v.file)
        .status()
        .unwrap();
    assert!(st.code().is_some_and(|c| c <= 1), "e2fsck: {st:?}");
    let s = h.stage(&v, mount(FsType::Ext4)).await.unwrap();
    assert!(!s.formatted);
    assert_eq!(std::fs::read(&data).unwrap(), b"keep me");
    h.unstage(&v).await;
}

#[tokio::test]
async fn xfs_with_a_smashed_superblock_is_refused() {
    let h = harness();
    let v = h.volume("pvc-xfs-ag0", 320 * MIB);
    run("mkfs.xfs", &["-q"], &v.file);
    zero(&v.file, 0, 512);
    assert_eq!(blkid_exit(&v.file), Some(2));
    let e = h.stage(&v, mount(FsType::Xfs)).await.unwrap_err();
    assert_format_refused(&e, "is non-zero");
}

#[tokio::test]
async fn unknown_bytes_in_any_header_region_are_refused_naming_the_offset() {
    let h = harness();
    for (i, at) in [
        100 * 1024,
        8 * MIB + 1024 + 7,
        32 * MIB + 1,
        128 * MIB + 2,
        200 * MIB - 10,
    ]
    .into_iter()
    .enumerate()
    {
        let v = h.volume(&format!("pvc-data-{i}"), 200 * MIB);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&v.file)
            .unwrap();
        f.write_all_at(b"\x01", at).unwrap();
        assert_eq!(blkid_exit(&v.file), Some(2));
        let e = h.stage(&v, mount(FsType::Ext4)).await.unwrap_err();
        assert_format_refused(&e, &format!("byte {at} is non-zero"));
        assert_eq!(fs_uuid(&v.file), "", "never formatted");
    }
}

#[tokio::test]
async fn a_restore_that_reads_blank_is_refused_unless_the_class_allows_it() {
    let h = harness();
    let v = h.volume("pvc-restored", 64 * MIB);
    let snap = SnapshotId::from_name("snap-of-nothing");
    let origin = ContentOrigin {
        source: Some(ContentSource::Snapshot(snap.clone())),
        format_blank_restore: false,
    };
    let e = h
        .stage_from(&v, mount(FsType::Ext4), origin.clone())
        .await
        .unwrap_err();
    assert_format_refused(&e, &format!("snapshot:{snap}"));
    assert_eq!(fs_uuid(&v.file), "", "never formatted");
    assert!(h.events.reasons().contains(&"FormatRefused"));

    // Raw block never formats: a restore stages as block whatever it holds.
    h.stage_from(&v, AccessType::Block, origin.clone())
        .await
        .unwrap();
    h.unstage(&v).await;

    let allowed = ContentOrigin {
        format_blank_restore: true,
        ..origin
    };
    let s = h
        .stage_from(&v, mount(FsType::Ext4), allowed)
        .await
        .unwrap();
    assert!(
        s.formatted,
        "the StorageClass allowed formatting blank restores"
    );
    h.unstage(&v).await;
}
