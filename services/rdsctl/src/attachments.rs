//! `rdsctl attachments`: who holds which volume, from the VolumeAttachments
//! of the driver, cross-checked against the RDS's exports.
//!
//! A row per volume: its node(s) (attached, or `node (pending)`), since when
//! (the oldest attached VolumeAttachment), and the migration window when two
//! nodes hold it (opened by the second attachment, closing after the PV's
//! `migrationTimeoutSeconds`, default 300 s). RDS side: the disk exists and is
//! exported. With storage fencing on (an export carries an allow list), an
//! `ALLOW` column shows it and the list must admit exactly the attached nodes
//! (by their derived host NQN when `--cluster-id` is given, else by count).

use std::collections::BTreeMap;

use clap::Args;
use k8s_openapi::api::core::v1::PersistentVolume;
use k8s_openapi::api::storage::v1::VolumeAttachment;
use kube::Api;
use kube::api::ListParams;
use rds_agent::inspect::{ClassifiedDisk, allow_list};
use rds_bus::{ClusterId, HostIdentity, NodeId};
use serde::Serialize;

use crate::error::{CtlError, Result};
use crate::output::{OutputArgs, table};
use crate::target::{KubeArgs, RdsArgs};

#[derive(Args, Debug, Clone)]
pub struct AttachmentsArgs {
    #[command(flatten)]
    pub rds: RdsArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The cluster id the nodes derive their NVMe host NQN from (checks
    /// allow lists by NQN instead of by count).
    #[arg(long, env = "RDS_CSI_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub volume: String,
    pub pv: String,
    /// Nodes with `status.attached: true`.
    pub nodes: Vec<String>,
    /// Nodes whose VolumeAttachment is not attached yet (or detaching).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
    /// RFC 3339: creation of the oldest attached VolumeAttachment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Open when two nodes hold the volume: `<opened> .. <closes by>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration_window: Option<String>,
    /// `exported`, `not exported`, `missing`.
    pub rds: String,
    /// The export's allow list (storage fencing), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// What disagrees (empty: consistent).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mismatch: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub attachments: Vec<Row>,
    pub mismatches: usize,
}

struct Holder {
    node: String,
    attached: bool,
    created: Option<jiff::Timestamp>,
}

pub async fn run(args: AttachmentsArgs) -> Result<std::process::ExitCode> {
    let report = collect(&args).await?;
    crate::output::print(args.out.format(), &report, || human(&report))?;
    if report.mismatches == 0 {
        Ok(std::process::ExitCode::SUCCESS)
    } else {
        Err(CtlError::Findings {
            what: format!(
                "attachments: {} volume(s) where the cluster and the RDS disagree",
                report.mismatches
            ),
            unhealthy: false,
        })
    }
}

pub async fn collect(args: &AttachmentsArgs) -> Result<Report> {
    let cluster = match &args.cluster_id {
        Some(c) => {
            Some(ClusterId::parse(c).map_err(|e| CtlError::Usage(format!("--cluster-id: {e}")))?)
        }
        None => None,
    };
    let client = args
        .kube
        .client(true)
        .await?
        .ok_or_else(|| CtlError::Usage("no Kubernetes configuration".into()))?;
    let vas: Api<VolumeAttachment> = Api::all(client.clone());
    let vas = args
        .kube
        .call("list VolumeAttachments", vas.list(&ListParams::default()))
        .await?
        .items;
    let pvs: Api<PersistentVolume> = Api::all(client);
    let pvs = args
        .kube
        .call("list PersistentVolumes", pvs.list(&ListParams::default()))
        .await?
        .items;
    let pv_by_name: BTreeMap<String, &PersistentVolume> = pvs
        .iter()
        .filter_map(|p| Some((p.metadata.name.clone()?, p)))
        .collect();

    let mut by_pv: BTreeMap<String, Vec<Holder>> = BTreeMap::new();
    for va in vas.iter().filter(|v| v.spec.attacher == args.kube.driver) {
        let Some(pv) = va.spec.source.persistent_volume_name.clone() else {
            continue;
        };
        by_pv.entry(pv).or_default().push(Holder {
            node: va.spec.node_name.clone(),
            attached: va.status.as_ref().is_some_and(|s| s.attached),
            created: va.metadata.creation_timestamp.as_ref().map(|t| t.0),
        });
    }

    let inspector = args.rds.inspector()?;
    let disks = inspector.disks().await;
    inspector.close().await;
    let disks = disks.map_err(|e| CtlError::rds(&e))?;
    let disk_of = |slot: &str| {
        disks
            .iter()
            .find(|d| d.record.slot.as_deref() == Some(slot))
    };

    let rows: Vec<Row> = by_pv
        .into_iter()
        .map(|(pv_name, holders)| {
            let pv = pv_by_name.get(&pv_name).copied();
            row(pv_name, holders, pv, &disk_of, cluster.as_ref())
        })
        .collect();
    let mismatches = rows.iter().filter(|r| !r.mismatch.is_empty()).count();
    Ok(Report {
        attachments: rows,
        mismatches,
    })
}

/// One volume's row: its holders (oldest first), the migration window, and
/// what the RDS side says.
fn row<'a>(
    pv_name: String,
    mut holders: Vec<Holder>,
    pv: Option<&PersistentVolume>,
    disk_of: &impl Fn(&str) -> Option<&'a ClassifiedDisk>,
    cluster: Option<&ClusterId>,
) -> Row {
    holders.sort_by_key(|h| h.created);
    let csi = pv
        .and_then(|p| p.spec.as_ref())
        .and_then(|s| s.csi.as_ref());
    let volume = csi.map(|c| c.volume_handle.clone()).unwrap_or_default();
    let window_secs: i64 = csi
        .and_then(|c| c.volume_attributes.as_ref())
        .and_then(|a| a.get(rds_bus::volume_context::key::MIGRATION_TIMEOUT))
        .and_then(|v| v.parse().ok())
        .unwrap_or(i64::from(
            rds_bus::volume_context::DEFAULT_MIGRATION_TIMEOUT,
        ));
    let attached: Vec<&Holder> = holders.iter().filter(|h| h.attached).collect();
    let nodes: Vec<String> = attached.iter().map(|h| h.node.clone()).collect();
    let pending: Vec<String> = holders
        .iter()
        .filter(|h| !h.attached)
        .map(|h| h.node.clone())
        .collect();
    let since = attached
        .first()
        .and_then(|h| h.created)
        .map(|t| t.to_string());
    let migration_window = (attached.len() >= 2)
        .then(|| attached.get(1).and_then(|h| h.created))
        .flatten()
        .map(|opened| {
            let closes = opened
                .checked_add(jiff::SignedDuration::from_secs(window_secs))
                .map(|t| t.to_string())
                .unwrap_or_else(|_| "?".into());
            format!("{opened} .. {closes}")
        });
    let mut mismatch = Vec::new();
    if pv.is_none() {
        mismatch.push(format!("PV {pv_name} not found"));
    }
    if attached.len() > 2 {
        mismatch.push(format!(
            "{} nodes attached (at most 2, during a migration)",
            attached.len()
        ));
    }
    let (rds, allow) = rds_side(
        disk_of(&volume),
        &nodes,
        attached.is_empty(),
        cluster,
        &mut mismatch,
    );
    Row {
        volume,
        pv: pv_name,
        nodes,
        pending,
        since,
        migration_window,
        rds,
        allow,
        mismatch,
    }
}

/// The RDS side of a row: `exported` / `not exported` / `missing`, and the
/// export's allow list, which must admit exactly the attached nodes (by
/// derived host NQN with a cluster id, else by count). Disagreements go to
/// `mismatch`.
fn rds_side(
    disk: Option<&ClassifiedDisk>,
    nodes: &[String],
    none_attached: bool,
    cluster: Option<&ClusterId>,
    mismatch: &mut Vec<String>,
) -> (String, Option<Vec<String>>) {
    match disk {
        None => {
            if !none_attached {
                mismatch.push("attached, but the RDS has no disk for it".into());
            }
            ("missing".to_owned(), None)
        }
        Some(d) => {
            let exported = d.record.nvme_tcp_export == Some(true);
            if !exported && !none_attached {
                mismatch.push("attached, but the RDS does not export it".into());
            }
            let list = allow_list(&d.record);
            let allow = if list.is_empty() {
                None
            } else {
                match cluster {
                    Some(c) => {
                        let want: Vec<String> = nodes
                            .iter()
                            .filter_map(|n| NodeId::parse(n).ok())
                            .map(|n| HostIdentity::derive(c, &n).host_nqn().to_owned())
                            .collect();
                        let extra: Vec<&String> =
                            list.iter().filter(|h| !want.contains(h)).collect();
                        let lacking: Vec<&String> =
                            want.iter().filter(|h| !list.contains(h)).collect();
                        if !extra.is_empty() {
                            mismatch.push(format!(
                                "allow list admits hosts not attached: {}",
                                join(&extra)
                            ));
                        }
                        if !lacking.is_empty() {
                            mismatch.push(format!(
                                "allow list lacks attached hosts: {}",
                                join(&lacking)
                            ));
                        }
                    }
                    None if list.len() != nodes.len() => mismatch.push(format!(
                        "allow list has {} host(s), {} node(s) attached",
                        list.len(),
                        nodes.len()
                    )),
                    None => {}
                }
                Some(list)
            };
            (
                if exported { "exported" } else { "not exported" }.to_owned(),
                allow,
            )
        }
    }
}

fn join(v: &[&String]) -> String {
    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

pub fn human(r: &Report) -> String {
    let fencing = r.attachments.iter().any(|a| a.allow.is_some());
    let mut header = vec!["VOLUME", "PV", "NODES", "SINCE", "MIGRATION", "RDS"];
    if fencing {
        header.push("ALLOW");
    }
    header.push("CHECK");
    let rows: Vec<Vec<String>> = r
        .attachments
        .iter()
        .map(|a| {
            let mut nodes = a.nodes.clone();
            nodes.extend(a.pending.iter().map(|n| format!("{n} (pending)")));
            let mut row = vec![
                a.volume.clone(),
                a.pv.clone(),
                if nodes.is_empty() {
                    "-".into()
                } else {
                    nodes.join(",")
                },
                a.since.clone().unwrap_or_else(|| "-".into()),
                a.migration_window.clone().unwrap_or_else(|| "-".into()),
                a.rds.clone(),
            ];
            if fencing {
                row.push(a.allow.as_ref().map_or("any".into(), |l| l.join(",")));
            }
            row.push(if a.mismatch.is_empty() {
                "ok".into()
            } else {
                format!("MISMATCH: {}", a.mismatch.join("; "))
            });
            row
        })
        .collect();
    let mut out = table(&header, &rows);
    out.push_str(&format!(
        "\n{} volume(s) attached, {} mismatch(es)\n",
        r.attachments.len(),
        r.mismatches
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(allow: Option<Vec<String>>) -> Row {
        Row {
            volume: "pvc-1".into(),
            pv: "pv-1".into(),
            nodes: vec!["n1".into()],
            pending: vec!["n2".into()],
            since: Some("2026-01-01T00:00:00Z".into()),
            migration_window: None,
            rds: "exported".into(),
            allow,
            mismatch: Vec::new(),
        }
    }

    #[test]
    fn the_allow_column_appears_only_with_storage_fencing() {
        let plain = human(&Report {
            attachments: vec![row(None)],
            mismatches: 0,
        });
        assert!(!plain.contains("ALLOW"), "{plain}");
        assert!(
            plain.contains("n1,n2 (pending)") && plain.contains(" ok"),
            "{plain}"
        );
        let fenced = human(&Report {
            attachments: vec![
                row(Some(vec!["nqn.2014-08.org.nvmexpress:uuid:x".into()])),
                row(None),
            ],
            mismatches: 0,
        });
        assert!(
            fenced.contains("ALLOW") && fenced.contains("nqn.2014-08.org.nvmexpress:uuid:x"),
            "{fenced}"
        );
        assert!(
            fenced.contains("any"),
            "an export without a list admits any host: {fenced}"
        );
    }
}
