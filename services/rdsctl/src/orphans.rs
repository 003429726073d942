//! `rdsctl orphans`: what the RDS and the cluster disagree on, report only.
//!
//! - **orphan disks**: volume disks of this driver (a file disk under a base
//!   path named after its slot, rds-agent's own predicate) that no PV of the
//!   driver references by `volumeHandle`;
//! - **orphan files**: files under the base paths that no disk entry uses as
//!   its backing file (a `/disk remove` leaves the file, docs/routeros.md);
//! - **missing disks**: PVs of the driver whose volume has no disk on the RDS.
//!
//! Snapshot disks are not judged (VolumeSnapshotContents, not PVs, refer to
//! them); they are counted, and so are Btrfs subvolume snapshots, whose
//! `<base>/<snap>.from-<src>/volume.img` has no disk entry by design
//! (docs/btrfs.md). Age is now minus the backing file's
//! `last-modified` (RouterOS keeps no creation time for disks): time since the
//! last write, a lower bound of the real age.

use std::collections::{BTreeMap, BTreeSet};

use clap::Args;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::Api;
use kube::api::ListParams;
use rds_agent::inspect::{ClassifiedDisk, ownership_tag};
use rds_agent::layout::DiskKind;
use rds_routeros::FileRecord;
use serde::Serialize;

use crate::error::{CtlError, Result};
use crate::output::{OutputArgs, table};
use crate::target::{KubeArgs, RdsArgs};

#[derive(Args, Debug, Clone)]
pub struct OrphansArgs {
    #[command(flatten)]
    pub rds: RdsArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct OrphanDisk {
    pub slot: String,
    pub file_path: String,
    pub size_bytes: Option<u64>,
    /// Seconds since the backing file was last written.
    pub age_seconds: Option<i64>,
    /// The disk's ownership tag (its `comment`), when it carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct OrphanFile {
    pub path: String,
    pub size_bytes: Option<u64>,
    pub age_seconds: Option<i64>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct MissingDisk {
    pub pv: String,
    pub volume_handle: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pvc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub orphan_disks: Vec<OrphanDisk>,
    pub orphan_files: Vec<OrphanFile>,
    pub missing_disks: Vec<MissingDisk>,
    /// Snapshot disks seen (not judged).
    pub snapshots_not_judged: usize,
    pub volumes_on_rds: usize,
    pub pvs_of_driver: usize,
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn file_age(f: &FileRecord) -> Option<i64> {
    f.last_modified
        .as_ref()
        .and_then(|m| m.unix_seconds())
        .map(|t| now().saturating_sub(t).max(0))
}

fn age_text(s: Option<i64>) -> String {
    match s {
        None => "?".into(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 7200 => format!("{}m", s / 60),
        Some(s) if s < 172_800 => format!("{}h", s / 3600),
        Some(s) => format!("{}d", s / 86_400),
    }
}

fn size_text(b: Option<u64>) -> String {
    b.map_or("?".into(), crate::units::format_size)
}

pub async fn run(args: OrphansArgs) -> Result<std::process::ExitCode> {
    let report = collect(&args).await?;
    let found = report.orphan_disks.len() + report.orphan_files.len() + report.missing_disks.len();
    crate::output::print(args.out.format(), &report, || human(&report))?;
    if found == 0 {
        Ok(std::process::ExitCode::SUCCESS)
    } else {
        Err(CtlError::Findings {
            what: format!("orphans: {found} finding(s), nothing was changed"),
            unhealthy: false,
        })
    }
}

pub async fn collect(args: &OrphansArgs) -> Result<Report> {
    let client = args
        .kube
        .client(true)
        .await?
        .ok_or_else(|| CtlError::Usage("no Kubernetes configuration".into()))?;
    let pvs: Api<PersistentVolume> = Api::all(client);
    let pvs = args
        .kube
        .call("list PersistentVolumes", pvs.list(&ListParams::default()))
        .await?
        .items;
    let ours: Vec<&PersistentVolume> = pvs
        .iter()
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.csi.as_ref())
                .is_some_and(|c| c.driver == args.kube.driver)
        })
        .collect();
    let handles: BTreeMap<String, &PersistentVolume> = ours
        .iter()
        .filter_map(|p| {
            let h = p.spec.as_ref()?.csi.as_ref()?.volume_handle.clone();
            Some((h, *p))
        })
        .collect();

    let inspector = args.rds.inspector()?;
    let res = async {
        let disks = inspector.disks().await?;
        let files = inspector.files_under_bases().await?;
        Ok::<_, rds_agent::AgentError>((disks, files))
    }
    .await;
    inspector.close().await;
    let (disks, files) = res.map_err(|e| CtlError::rds(&e))?;

    let by_name: BTreeMap<&str, &FileRecord> = files.iter().map(|f| (f.name.as_str(), f)).collect();
    let used: BTreeSet<String> = disks
        .iter()
        .filter_map(|d| d.record.file_path.as_deref())
        .map(|p| p.trim_start_matches('/').to_owned())
        .collect();
    let DiskCensus {
        volumes,
        mut snapshots,
        orphan_disks,
    } = census(&disks, &handles, &by_name);
    let (subvolume_snapshots, orphan_files) = unused_files(&files, &used);
    snapshots += subvolume_snapshots;
    let missing_disks = handles
        .iter()
        .filter(|(h, _)| {
            !volumes.contains(*h)
                && !disks
                    .iter()
                    .any(|d| d.record.slot.as_deref() == Some(h.as_str()))
        })
        .map(|(h, pv)| missing_disk(h, pv))
        .collect();
    Ok(Report {
        orphan_disks,
        orphan_files,
        missing_disks,
        snapshots_not_judged: snapshots,
        volumes_on_rds: volumes.len(),
        pvs_of_driver: ours.len(),
    })
}

/// The RDS's disks sorted out: volume slots, how many snapshot disks, and
/// the volume disks no PV references.
struct DiskCensus {
    volumes: BTreeSet<String>,
    snapshots: usize,
    orphan_disks: Vec<OrphanDisk>,
}

fn census(
    disks: &[ClassifiedDisk],
    handles: &BTreeMap<String, &PersistentVolume>,
    by_name: &BTreeMap<&str, &FileRecord>,
) -> DiskCensus {
    let mut volumes = BTreeSet::new();
    let mut snapshots = 0;
    let mut orphan_disks = Vec::new();
    for d in disks {
        let slot = d.record.slot.clone().unwrap_or_default();
        match d.kind {
            DiskKind::Volume => {
                volumes.insert(slot.clone());
                if handles.contains_key(&slot) {
                    continue;
                }
                let path = d.record.file_path.clone().unwrap_or_default();
                let file = by_name.get(path.trim_start_matches('/'));
                orphan_disks.push(OrphanDisk {
                    slot,
                    size_bytes: d.record.size,
                    age_seconds: file.and_then(|f| file_age(f)),
                    tag: ownership_tag(&d.record),
                    file_path: path,
                });
            }
            DiskKind::Snapshot { .. } => snapshots += 1,
            DiskKind::Foreign => {}
        }
    }
    DiskCensus {
        volumes,
        snapshots,
        orphan_disks,
    }
}

/// Data files no disk uses: the count of subvolume snapshots' data files
/// (never a disk; counted as snapshots), and the rest as orphans.
fn unused_files(files: &[FileRecord], used: &BTreeSet<String>) -> (usize, Vec<OrphanFile>) {
    let data_files = files
        .iter()
        .filter(|f| f.file_type.as_deref().is_some_and(|t| t.ends_with("file")))
        .filter(|f| !used.contains(&f.name));
    let (subvolume_snapshots, unused): (Vec<&FileRecord>, Vec<&FileRecord>) =
        data_files.partition(|f| is_subvolume_snapshot_file(&f.name));
    let orphans = unused
        .into_iter()
        .map(|f| OrphanFile {
            path: format!("/{}", f.name),
            size_bytes: f.size.as_ref().map(|s| s.bytes),
            age_seconds: file_age(f),
        })
        .collect();
    (subvolume_snapshots.len(), orphans)
}

/// A PV of the driver whose disk the RDS does not have; its PVC from the
/// claimRef, else from the provisioner's volume attributes.
fn missing_disk(h: &str, pv: &PersistentVolume) -> MissingDisk {
    let attrs = pv
        .spec
        .as_ref()
        .and_then(|s| s.csi.as_ref())
        .and_then(|c| c.volume_attributes.as_ref());
    let pvc = pv
        .spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .map(|c| {
            format!(
                "{}/{}",
                c.namespace.clone().unwrap_or_default(),
                c.name.clone().unwrap_or_default()
            )
        })
        .or_else(|| {
            let a = attrs?;
            Some(format!(
                "{}/{}",
                a.get("csi.storage.k8s.io/pvc/namespace")?,
                a.get("csi.storage.k8s.io/pvc/name")?
            ))
        });
    MissingDisk {
        pv: pv.metadata.name.clone().unwrap_or_default(),
        volume_handle: h.to_owned(),
        pvc,
        phase: pv.status.as_ref().and_then(|s| s.phase.clone()),
    }
}

/// `<base>/<snap-…>.from-<source>/volume.img`: the data of a read-only
/// subvolume snapshot, which never has a disk entry.
fn is_subvolume_snapshot_file(name: &str) -> bool {
    let Some(dir) = name.strip_suffix("/volume.img") else {
        return false;
    };
    let leaf = dir.rsplit('/').next().unwrap_or("");
    leaf.split_once(".from-").is_some_and(|(snap, src)| {
        snap.starts_with(rds_bus::SNAPSHOT_PREFIX) && rds_bus::VolumeId::parse(src).is_ok()
    })
}

pub fn human(r: &Report) -> String {
    let any_tag = r.orphan_disks.iter().any(|d| d.tag.is_some());
    let mut out = String::new();
    out.push_str(&format!(
        "{} volume disk(s) on the RDS, {} PV(s) of the driver, {} snapshot disk(s) not judged\n\n",
        r.volumes_on_rds, r.pvs_of_driver, r.snapshots_not_judged
    ));
    out.push_str(&format!(
        "orphan disks ({}): no PV references them\n",
        r.orphan_disks.len()
    ));
    if !r.orphan_disks.is_empty() {
        let mut header = vec!["SLOT", "FILE", "SIZE", "AGE"];
        if any_tag {
            header.push("TAG");
        }
        let rows: Vec<Vec<String>> = r
            .orphan_disks
            .iter()
            .map(|d| {
                let mut row = vec![
                    d.slot.clone(),
                    d.file_path.clone(),
                    size_text(d.size_bytes),
                    age_text(d.age_seconds),
                ];
                if any_tag {
                    row.push(d.tag.clone().unwrap_or_else(|| "-".into()));
                }
                row
            })
            .collect();
        out.push_str(&table(&header, &rows));
    }
    out.push_str(&format!(
        "\norphan files ({}): no disk entry uses them\n",
        r.orphan_files.len()
    ));
    if !r.orphan_files.is_empty() {
        let rows: Vec<Vec<String>> = r
            .orphan_files
            .iter()
            .map(|f| {
                vec![
                    f.path.clone(),
                    size_text(f.size_bytes),
                    age_text(f.age_seconds),
                ]
            })
            .collect();
        out.push_str(&table(&["FILE", "SIZE", "AGE"], &rows));
    }
    out.push_str(&format!(
        "\nmissing disks ({}): PVs whose volume is not on the RDS\n",
        r.missing_disks.len()
    ));
    if !r.missing_disks.is_empty() {
        let rows: Vec<Vec<String>> = r
            .missing_disks
            .iter()
            .map(|m| {
                vec![
                    m.pv.clone(),
                    m.volume_handle.clone(),
                    m.pvc.clone().unwrap_or_else(|| "-".into()),
                    m.phase.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        out.push_str(&table(&["PV", "VOLUME", "PVC", "PHASE"], &rows));
    }
    out.push_str("\nreport only: nothing was changed\n");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn report(tag: Option<&str>) -> Report {
        Report {
            orphan_disks: vec![OrphanDisk {
                slot: "pvc-1".into(),
                file_path: "/storage-pool/metal-csi/pvc-1.img".into(),
                size_bytes: Some(1 << 30),
                age_seconds: Some(3 * 86_400),
                tag: tag.map(str::to_owned),
            }],
            orphan_files: Vec::new(),
            missing_disks: Vec::new(),
            snapshots_not_judged: 0,
            volumes_on_rds: 1,
            pvs_of_driver: 0,
        }
    }

    #[test]
    fn the_tag_column_appears_only_when_a_disk_has_a_tag() {
        let without = human(&report(None));
        assert!(!without.contains("TAG"), "{without}");
        assert!(
            without.contains("pvc-1") && without.contains("3d"),
            "{without}"
        );
        let json = serde_json::to_value(report(None)).unwrap();
        assert!(json["orphan_disks"][0].get("tag").is_none());
        let tag = "rds-csi cluster=c1 pv=pvc-1 pvc=apps/data";
        let with = human(&report(Some(tag)));
        assert!(with.contains("TAG") && with.contains(tag), "{with}");
        let json = serde_json::to_value(report(Some(tag))).unwrap();
        assert_eq!(json["orphan_disks"][0]["tag"], tag);
    }

    #[test]
    fn a_subvolume_snapshots_file_is_not_an_orphan() {
        for yes in [
            "storage-pool/metal-csi/snap-1-at-ab.from-pvc-1/volume.img",
            "storage-pool/a/b/snap-x.from-pvc-9/volume.img",
        ] {
            assert!(is_subvolume_snapshot_file(yes), "{yes}");
        }
        for no in [
            "storage-pool/metal-csi/pvc-1/volume.img",
            "storage-pool/metal-csi/snap-1.from-pvc-1.img",
            "storage-pool/metal-csi/snap-1.from-pvc-1/other.img",
            "storage-pool/metal-csi/pvc-2.from-pvc-1/volume.img",
            "storage-pool/metal-csi/snap-1.from-a;b/volume.img",
        ] {
            assert!(!is_subvolume_snapshot_file(no), "{no}");
        }
    }

    #[test]
    fn ownership_tag_reads_a_comment_when_the_print_has_one() {
        use rds_routeros::{DiskRecord, Legend, Prop};
        let mut d = DiskRecord::file_disk(
            &Legend::rose_storage(),
            "pvc-1",
            "/storage-pool/metal-csi/pvc-1.img",
            1 << 20,
            None,
        );
        assert_eq!(ownership_tag(&d), None);
        d.raw.push(Prop::quoted("comment", "cluster=c1 pv=pvc-1"));
        assert_eq!(ownership_tag(&d).as_deref(), Some("cluster=c1 pv=pvc-1"));
        // The `;;;` line, as the parser reads it.
        d.comment = Some("rds-csi: cluster=c2 pv=pvc-1".into());
        assert_eq!(
            ownership_tag(&d).as_deref(),
            Some("rds-csi: cluster=c2 pv=pvc-1")
        );
    }
}
