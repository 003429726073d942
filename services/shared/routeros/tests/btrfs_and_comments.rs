//! The Btrfs commands and the `;;;` comment rule, from the text of the Btrfs contract
//! (docs/decisions.md §13).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rds_routeros::*;

fn name(s: &str) -> SubvolumeName {
    SubvolumeName::new(s).unwrap()
}

#[test]
fn subvolume_commands_are_the_contract_text() {
    let pool = PoolName::default();
    let add = Command::SubvolumeAdd {
        fs: pool.clone(),
        name: name("metal-csi/pvc-x"),
        parent: None,
        read_only: false,
    };
    assert_eq!(
        add.to_string(),
        "/disk/btrfs/subvolume/add fs=storage-pool name=metal-csi/pvc-x"
    );
    assert!(add.is_mutating());
    let snap = Command::SubvolumeAdd {
        fs: pool.clone(),
        name: name("metal-csi/snap-y.from-pvc-x"),
        parent: Some(name("metal-csi/pvc-x")),
        read_only: true,
    };
    assert_eq!(
        snap.to_string(),
        "/disk/btrfs/subvolume/add fs=storage-pool name=metal-csi/snap-y.from-pvc-x parent=metal-csi/pvc-x read-only=yes"
    );
    let print = Command::SubvolumePrint(SubvolumeSelector::Name(name("metal-csi/pvc-x")));
    assert_eq!(
        print.to_string(),
        "/disk/btrfs/subvolume/print detail where name=\"metal-csi/pvc-x\""
    );
    assert!(!print.is_mutating());
    let re = RegexPattern::starts_with("metal-csi/snap-y.from-").unwrap();
    assert_eq!(
        Command::SubvolumePrint(SubvolumeSelector::NameMatches(re)).to_string(),
        "/disk/btrfs/subvolume/print detail where name~\"^metal-csi/snap-y[.]from-\""
    );
    assert_eq!(
        Command::SubvolumePrint(SubvolumeSelector::Parent(name("metal-csi/pvc-x"))).to_string(),
        "/disk/btrfs/subvolume/print detail where parent=\"metal-csi/pvc-x\""
    );
    assert_eq!(
        Command::SubvolumeRemove {
            name: name("metal-csi/pvc-x")
        }
        .to_string(),
        "/disk/btrfs/subvolume/remove [find where name=\"metal-csi/pvc-x\"]"
    );
    assert_eq!(
        Command::BtrfsFilesystemPrint.to_string(),
        "/disk/btrfs/filesystem/print detail"
    );
}

#[test]
fn disk_add_carries_the_comment_quoted() {
    let slot = Slot::new("pvc-1").unwrap();
    let c = DiskComment::new("rds-csi: cluster=home pv=pvc-1 pvc=default/data").unwrap();
    let add = Command::DiskAddFile {
        file_path: DiskPath::new("/storage-pool/metal-csi/pvc-1/volume.img").unwrap(),
        file_size: FileSize::new(1 << 30).unwrap(),
        slot,
        export: None,
        comment: Some(c),
    };
    assert_eq!(
        add.to_string(),
        "/disk add type=file file-path=/storage-pool/metal-csi/pvc-1/volume.img file-size=1073741824 slot=pvc-1 comment=\"rds-csi: cluster=home pv=pvc-1 pvc=default/data\""
    );
    for bad in ["", "a\"b", "a;b", "a[b]", "a$b", "a\nb", "a\\b", "ü"] {
        assert!(DiskComment::new(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn comment_line_parses_and_round_trips() {
    // The contract's example, by hand: `;;;` at the property column of the first line.
    let text = "Flags: X - DISABLED; A - ACQUIRED, E - EMPTY, B - BLOCK-DEVICE\r\n 0 B   t       ;;; rds-csi: cluster=home pv=pvc-1 pvc=default/data\r\n               type=file slot=\"pvc-1\" slot-default=\"\" parent=\"\" fs=-\r\n               model=\"/storage-pool/metal-csi/pvc-1.img\" size=1 073 741 824\r\n               file-path=/storage-pool/metal-csi/pvc-1.img file-size=1024.0MiB\r\n\r\n 1 B             type=file slot=\"pvc-2\" file-path=/storage-pool/metal-csi/pvc-2.img\r\n\r\n";
    let d = parse_disk_print_detail(text).unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(
        d[0].comment.as_deref(),
        Some("rds-csi: cluster=home pv=pvc-1 pvc=default/data")
    );
    assert_eq!(d[0].flags, "B   t");
    assert_eq!(d[0].slot.as_deref(), Some("pvc-1"));
    assert_eq!(d[0].size, Some(1 << 30));
    assert!(
        !d[0].raw.iter().any(|p| p.key == "cluster"),
        "comment words are not properties"
    );
    assert_eq!(d[1].comment, None);
    assert_eq!(d[1].slot.as_deref(), Some("pvc-2"));

    let legend = Legend::rose_storage();
    let mut rec = DiskRecord::file_disk(
        &legend,
        "pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8",
        "/storage-pool/metal-csi/pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8/volume.img",
        5 << 30,
        Some((
            4420,
            "nqn.2000-02.com.mikrotik:pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8",
        )),
    );
    rec.number = Some(3);
    rec.comment = Some(
        "rds-csi: cluster=home pv=pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8 pvc=default/data".into(),
    );
    let out = render_disk_print(
        &legend,
        std::slice::from_ref(&rec),
        &RenderOptions::default(),
    );
    let line = out.lines().find(|l| l.contains(";;;")).unwrap();
    assert_eq!(line.find(";;;"), Some(15), "property column: {out}");
    let back = parse_disk_print_detail(&out).unwrap();
    assert_eq!(back[0].comment, rec.comment);
    assert_eq!(back[0].file_path, rec.file_path);
    assert_eq!(back[0].nvme_tcp_server_nqn, rec.nvme_tcp_server_nqn);
}

#[test]
fn adopting_add_has_no_file_size() {
    let add = Command::DiskAddExisting {
        file_path: DiskPath::new("/storage-pool/metal-csi/pvc-new/volume.img").unwrap(),
        slot: Slot::new("pvc-new").unwrap(),
        export: None,
        comment: None,
    };
    assert_eq!(
        add.to_string(),
        "/disk add type=file file-path=/storage-pool/metal-csi/pvc-new/volume.img slot=pvc-new"
    );
    assert_eq!(add.verb(), "disk add");
    assert!(add.is_mutating());
}
