//! The exporter against a plain directory tree shaped like `/sys/kernel/config/nvmet`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::model::{Disk, DiskKind, FileDisk, POOL};

const NQN_A: &str = "nqn.2000-02.com.mikrotik:pvc-a";
const NQN_B: &str = "nqn.2000-02.com.mikrotik:pvc-b";

struct Fixture {
    _dir: tempfile::TempDir,
    state_dir: PathBuf,
    configfs: PathBuf,
    store: Store,
    state: State,
    cfg: NvmetExportConfig,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("sim");
        let configfs = dir.path().join("config");
        fs::create_dir_all(configfs.join("nvmet/subsystems")).unwrap();
        fs::create_dir_all(configfs.join("nvmet/ports")).unwrap();
        let store = Store::open(&state_dir, POOL).unwrap();
        let cfg = NvmetExportConfig {
            enabled: true,
            configfs_root: configfs.clone(),
            ..NvmetExportConfig::default()
        };
        Self {
            _dir: dir,
            state_dir,
            configfs,
            store,
            state: State::fresh(),
            cfg,
        }
    }

    /// A file disk `slot` exported (or not) with `nqn` on `port`, with a 1 MiB sparse file.
    fn add(&mut self, slot: &str, nqn: &str, port: u16, export: bool) {
        let rel = format!("{POOL}/metal-csi/{slot}.img");
        self.store.mkdir_p(&format!("{POOL}/metal-csi")).unwrap();
        self.store.create_sparse(&rel, 1 << 20).unwrap();
        let id = self.state.next_disk_id;
        self.state.next_disk_id += 1;
        self.state.disks.push(Disk {
            id,
            slot: slot.into(),
            disabled: false,
            comment: String::new(),
            kind: DiskKind::File(FileDisk {
                file_path: format!("/{rel}"),
                file_size: 1 << 20,
                nvme_tcp_export: export,
                nvme_tcp_server_port: port,
                nvme_tcp_server_nqn: nqn.into(),
                ..FileDisk::default()
            }),
        });
    }

    fn file(&self, slot: &str) -> PathBuf {
        self.store
            .host_path(&format!("{POOL}/metal-csi/{slot}.img"))
            .unwrap()
    }

    fn remove(&mut self, slot: &str) {
        self.state.disks.retain(|d| d.slot != slot);
    }

    fn set_export(&mut self, slot: &str, on: bool) {
        for d in &mut self.state.disks {
            if let (true, DiskKind::File(f)) = (d.slot == slot, &mut d.kind) {
                f.nvme_tcp_export = on;
            }
        }
    }

    fn want(&self) -> Desired {
        desired(&self.state, &self.store).0
    }

    fn exporter(&self) -> Exporter {
        Exporter::open(&self.cfg, &self.state_dir).unwrap()
    }

    fn nvmet(&self, rel: &str) -> PathBuf {
        self.configfs.join("nvmet").join(rel)
    }

    fn attr(&self, rel: &str) -> String {
        fs::read_to_string(self.nvmet(rel)).unwrap()
    }

    fn snapshot(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        walk(&self.configfs, &self.configfs, &mut out);
        out
    }
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            out.insert(rel, format!("-> {}", fs::read_link(&p).unwrap().display()));
        } else if ft.is_dir() {
            out.insert(rel, "dir".into());
            walk(root, &p, out);
        } else {
            out.insert(rel, fs::read_to_string(&p).unwrap());
        }
    }
}

#[test]
fn open_without_nvmet_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = NvmetExportConfig {
        enabled: true,
        configfs_root: dir.path().join("config"),
        ..NvmetExportConfig::default()
    };
    let e = Exporter::open(&cfg, dir.path()).unwrap_err().to_string();
    assert!(e.contains("--nvmet-export"), "{e}");
    assert!(e.contains("nvmet/{subsystems,ports} not found"), "{e}");
    assert!(e.contains("modprobe nvmet-tcp"), "{e}");
    // And the sim refuses to start with it.
    let e = Export::start(
        &cfg,
        dir.path(),
        &State::fresh(),
        &Store::open(dir.path(), POOL).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not found"), "{e}");
}

#[test]
fn exports_a_disk_as_subsystem_namespace_and_linked_port() {
    let mut f = Fixture::new();
    f.add("pvc-a", NQN_A, 4420, true);
    let mut ex = f.exporter();
    assert!(ex.reconcile(&f.want()).is_empty());

    let sub = format!("subsystems/{NQN_A}");
    assert_eq!(f.attr(&format!("{sub}/attr_allow_any_host")), "1");
    assert_eq!(f.attr(&format!("{sub}/attr_model")), MODEL_MARK);
    let ns = format!("{sub}/namespaces/1");
    let file = f.file("pvc-a");
    assert!(file.is_absolute());
    assert_eq!(
        f.attr(&format!("{ns}/device_path")),
        file.display().to_string()
    );
    assert_eq!(f.attr(&format!("{ns}/buffered_io")), "1");
    assert_eq!(f.attr(&format!("{ns}/enable")), "1");
    assert_eq!(f.attr("ports/4420/addr_trtype"), "tcp");
    assert_eq!(f.attr("ports/4420/addr_adrfam"), "ipv4");
    assert_eq!(f.attr("ports/4420/addr_traddr"), "127.0.0.1");
    assert_eq!(f.attr("ports/4420/addr_trsvcid"), "4420");
    let link = f.nvmet(&format!("ports/4420/subsystems/{NQN_A}"));
    assert_eq!(fs::read_link(&link).unwrap(), f.nvmet(&sub));

    let owned = Owned::load(&Owned::path(&f.state_dir)).unwrap();
    assert_eq!(owned.subsystems.keys().collect::<Vec<_>>(), vec![NQN_A]);
    assert_eq!(owned.ports.iter().collect::<Vec<_>>(), vec![&4420]);
}

#[test]
fn reconcile_is_idempotent() {
    let mut f = Fixture::new();
    f.add("pvc-a", NQN_A, 4420, true);
    f.add("pvc-b", NQN_B, 4420, true);
    let mut ex = f.exporter();
    assert!(ex.reconcile(&f.want()).is_empty());
    let first = f.snapshot();
    assert!(ex.reconcile(&f.want()).is_empty());
    assert!(ex.apply(&f.want()).is_empty());
    // A fresh exporter (a sim restart) finds everything in place and changes nothing.
    assert!(f.exporter().reconcile(&f.want()).is_empty());
    assert_eq!(f.snapshot(), first);
    assert_eq!(
        f.snapshot()
            .keys()
            .filter(|k| k.starts_with("nvmet/ports/4420/subsystems/"))
            .count(),
        2,
        "both subsystems share the one port"
    );
}

#[test]
fn disk_removed_or_export_off_withdraws_it() {
    let mut f = Fixture::new();
    f.add("pvc-a", NQN_A, 4420, true);
    f.add("pvc-b", NQN_B, 4421, true);
    let mut ex = f.exporter();
    assert!(ex.reconcile(&f.want()).is_empty());

    f.remove("pvc-a");
    assert!(ex.apply(&f.want()).is_empty());
    assert!(!f.nvmet(&format!("subsystems/{NQN_A}")).exists());
    assert!(
        !f.nvmet("ports/4420").exists(),
        "port without subsystems removed"
    );
    assert!(f.nvmet(&format!("ports/4421/subsystems/{NQN_B}")).exists());

    f.set_export("pvc-b", false);
    assert!(ex.apply(&f.want()).is_empty());
    assert!(!f.nvmet(&format!("subsystems/{NQN_B}")).exists());
    assert!(!f.nvmet("ports/4421").exists());
    let snap = f.snapshot();
    assert_eq!(
        snap.keys().collect::<Vec<_>>(),
        vec!["nvmet", "nvmet/ports", "nvmet/subsystems"],
        "nothing left behind: {snap:?}"
    );
    assert!(Owned::load(&Owned::path(&f.state_dir)).unwrap().is_empty());
    // The backing files are never touched.
    assert!(f.file("pvc-a").exists() && f.file("pvc-b").exists());

    // Export on again: back.
    f.set_export("pvc-b", true);
    assert!(ex.apply(&f.want()).is_empty());
    assert!(f.nvmet(&format!("ports/4421/subsystems/{NQN_B}")).exists());
}

#[test]
fn foreign_entries_are_never_touched() {
    let mut f = Fixture::new();
    // Someone else's: a subsystem with the NQN one of our disks uses, another subsystem, and a
    // port with the id of the TCP port another disk uses.
    for nqn in [NQN_A, "nqn.2014-08.org.example:boot"] {
        fs::create_dir_all(f.nvmet(&format!("subsystems/{nqn}/namespaces/1"))).unwrap();
        fs::write(f.nvmet(&format!("subsystems/{nqn}/attr_model")), "Linux").unwrap();
    }
    fs::create_dir_all(f.nvmet("ports/4421/subsystems")).unwrap();
    fs::write(f.nvmet("ports/4421/addr_traddr"), "10.0.0.1").unwrap();
    let before = f.snapshot();

    f.add("pvc-a", NQN_A, 4420, true);
    f.add("pvc-b", NQN_B, 4421, true);
    let mut ex = f.exporter();
    let errs: Vec<String> = ex
        .reconcile(&f.want())
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs.iter()
            .any(|e| e.contains(NQN_A) && e.contains("not made by rds-sim")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("ports/4421") && e.contains("not made by rds-sim")),
        "{errs:?}"
    );
    // B's subsystem is ours, but its port is not: exported nowhere, foreign port untouched.
    assert!(f.nvmet(&format!("subsystems/{NQN_B}")).exists());
    assert!(!f.nvmet(&format!("ports/4421/subsystems/{NQN_B}")).exists());

    // Withdrawing everything leaves exactly the foreign entries.
    f.state.disks.retain(|d| d.file().is_none());
    assert!(ex.apply(&f.want()).is_empty());
    assert_eq!(f.snapshot(), before);
}

#[test]
fn a_subsystem_that_lost_our_mark_is_not_ours_any_more() {
    let mut f = Fixture::new();
    f.add("pvc-a", NQN_A, 4420, true);
    let mut ex = f.exporter();
    assert!(ex.reconcile(&f.want()).is_empty());
    // Someone took it over: unlinked it (the kernel refuses to remove a linked subsystem),
    // removed it and made their own with the same NQN.
    fs::remove_file(f.nvmet(&format!("ports/4420/subsystems/{NQN_A}"))).unwrap();
    fs::write(f.nvmet(&format!("subsystems/{NQN_A}/attr_model")), "other").unwrap();
    f.remove("pvc-a");
    let errs = ex.apply(&f.want());
    assert!(errs.is_empty(), "{errs:?}");
    assert!(
        f.nvmet(&format!("subsystems/{NQN_A}/namespaces/1/device_path"))
            .exists(),
        "left alone"
    );
    assert!(
        !Owned::load(&Owned::path(&f.state_dir))
            .unwrap()
            .subsystems
            .contains_key(NQN_A)
    );
}

#[test]
fn start_reconciles_state_on_disk_with_configfs() {
    let mut f = Fixture::new();
    f.add("pvc-a", NQN_A, 4420, true);
    f.add("pvc-b", NQN_B, 4420, true);
    assert!(f.exporter().reconcile(&f.want()).is_empty());
    // While the sim was down: A was removed from its state, B's link and namespace were
    // removed by hand.
    f.remove("pvc-a");
    fs::remove_file(f.nvmet(&format!("ports/4420/subsystems/{NQN_B}"))).unwrap();
    let ns_b = f.nvmet(&format!("subsystems/{NQN_B}/namespaces/1"));
    fs::remove_dir_all(&ns_b).unwrap();

    let export = Export::start(&f.cfg, &f.state_dir, &f.state, &f.store).unwrap();
    drop(export);
    assert!(!f.nvmet(&format!("subsystems/{NQN_A}")).exists());
    assert_eq!(
        fs::read_to_string(ns_b.join("device_path")).unwrap(),
        f.file("pvc-b").display().to_string()
    );
    assert_eq!(fs::read_to_string(ns_b.join("enable")).unwrap(), "1");
    assert!(f.nvmet(&format!("ports/4420/subsystems/{NQN_B}")).exists());
}

#[test]
fn records_of_vanished_entries_are_dropped_then_remade() {
    let mut f = Fixture::new();
    f.add("pvc-a", NQN_A, 4420, true);
    assert!(f.exporter().reconcile(&f.want()).is_empty());
    // The machine rebooted: configfs is empty again, our record is not.
    fs::remove_dir_all(f.nvmet("subsystems")).unwrap();
    fs::remove_dir_all(f.nvmet("ports")).unwrap();
    fs::create_dir_all(f.nvmet("subsystems")).unwrap();
    fs::create_dir_all(f.nvmet("ports")).unwrap();
    let errs = f.exporter().reconcile(&f.want());
    assert!(errs.is_empty(), "{errs:?}");
    assert!(f.nvmet(&format!("ports/4420/subsystems/{NQN_A}")).exists());
}

#[test]
fn address_change_rewrites_the_port_and_relinks() {
    let mut f = Fixture::new();
    f.add("pvc-a", NQN_A, 4420, true);
    assert!(f.exporter().reconcile(&f.want()).is_empty());
    f.cfg.traddr = "::1".parse().unwrap();
    assert!(f.exporter().reconcile(&f.want()).is_empty());
    assert_eq!(f.attr("ports/4420/addr_traddr"), "::1");
    assert_eq!(f.attr("ports/4420/addr_adrfam"), "ipv6");
    assert!(f.nvmet(&format!("ports/4420/subsystems/{NQN_A}")).exists());
}

#[test]
fn new_backing_file_and_resize_update_the_namespace() {
    let mut f = Fixture::new();
    f.add("pvc-a", NQN_A, 4420, true);
    let mut ex = f.exporter();
    assert!(ex.reconcile(&f.want()).is_empty());
    let ns = f.nvmet(&format!("subsystems/{NQN_A}/namespaces/1"));
    // The kernel has this attribute; the plain tree gets it by hand.
    fs::write(ns.join("revalidate_size"), "").unwrap();

    // Grown (/disk set file-size=): revalidated, not re-enabled.
    fs::write(ns.join("enable"), "1").unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(f.file("pvc-a"))
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    assert!(ex.apply(&f.want()).is_empty());
    assert_eq!(fs::read_to_string(ns.join("revalidate_size")).unwrap(), "1");

    // Same NQN, another file (disk removed and re-added): device_path follows.
    f.remove("pvc-a");
    f.add("pvc-a2", NQN_A, 4420, true);
    assert!(ex.apply(&f.want()).is_empty());
    assert_eq!(
        fs::read_to_string(ns.join("device_path")).unwrap(),
        f.file("pvc-a2").display().to_string()
    );
    assert_eq!(fs::read_to_string(ns.join("enable")).unwrap(), "1");
}

#[test]
fn one_nqn_on_two_ports_is_one_subsystem_linked_twice() {
    let mut f = Fixture::new();
    f.add("pvc-a", NQN_A, 4420, true);
    let path = match &f.state.disks[1].kind {
        DiskKind::File(d) => d.file_path.clone(),
        DiskKind::Pool => unreachable!(),
    };
    // A second disk entry for the same file and NQN on another port.
    let mut second = f.state.disks[1].clone();
    second.id = 99;
    second.slot = "pvc-a-alt".into();
    if let DiskKind::File(d) = &mut second.kind {
        d.nvme_tcp_server_port = 4430;
        d.file_path = path;
    }
    f.state.disks.push(second);
    assert!(f.exporter().reconcile(&f.want()).is_empty());
    assert!(f.nvmet(&format!("ports/4420/subsystems/{NQN_A}")).exists());
    assert!(f.nvmet(&format!("ports/4430/subsystems/{NQN_A}")).exists());
}

#[test]
fn unusable_disks_are_skipped_with_a_reason() {
    let mut f = Fixture::new();
    // No NQN set: RouterOS exports the slot name, which cannot name a kernel subsystem.
    f.add("pvc-x", "", 4420, true);
    f.add("pvc-y", "nqn.bad/../../etc", 4420, true);
    f.add("pvc-z", NQN_B, 4420, true);
    fs::remove_file(f.file("pvc-z")).unwrap();
    let (want, warnings) = desired(&f.state, &f.store);
    assert!(want.subsystems.is_empty(), "{want:?}");
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings[0].contains("pvc-x") && warnings[0].contains("cannot name"));
    assert!(warnings[2].contains("backing file"));
}

#[test]
fn export_off_withdraws_what_an_earlier_run_left() {
    let mut f = Fixture::new();
    f.add("pvc-a", NQN_A, 4420, true);
    drop(Export::start(&f.cfg, &f.state_dir, &f.state, &f.store).unwrap());
    assert!(f.nvmet(&format!("subsystems/{NQN_A}")).exists());
    f.cfg.enabled = false;
    drop(Export::start(&f.cfg, &f.state_dir, &f.state, &f.store).unwrap());
    assert!(!f.nvmet(&format!("subsystems/{NQN_A}")).exists());
    assert!(!f.nvmet("ports/4420").exists());
    assert!(!Owned::path(&f.state_dir).exists());
}

#[test]
fn nqn_validation() {
    assert!(desired::valid_nqn(NQN_A));
    assert!(!desired::valid_nqn("pvc-a"));
    assert!(!desired::valid_nqn("nqn.a/b"));
    assert!(!desired::valid_nqn("nqn.a b"));
    assert!(!desired::valid_nqn(&format!("nqn.{}", "a".repeat(220))));
}
