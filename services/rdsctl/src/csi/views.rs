//! What the client commands print: one serde view per CSI object (the
//! `--json` shape, stable and documented in the README) and its human form.

use std::collections::BTreeMap;

use rds_proto::csi::v1 as csi;
use serde::Serialize;

use crate::csi::requests::sorted;
use crate::units::format_size;

#[derive(Debug, Clone, Serialize)]
pub struct VolumeView {
    pub volume_id: String,
    pub capacity_bytes: i64,
    /// `snapshot:<id>` or `volume:<id>` when the volume was made from one.
    pub content_source: Option<String>,
    pub volume_context: BTreeMap<String, String>,
    /// ListVolumes only: nodes the volume is controller-published to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_node_ids: Option<Vec<String>>,
}

impl VolumeView {
    pub fn from_volume(v: &csi::Volume) -> VolumeView {
        use csi::volume_content_source::Type;
        let content_source = v
            .content_source
            .as_ref()
            .and_then(|s| s.r#type.as_ref())
            .map(|t| match t {
                Type::Snapshot(s) => format!("snapshot:{}", s.snapshot_id),
                Type::Volume(v) => format!("volume:{}", v.volume_id),
            });
        VolumeView {
            volume_id: v.volume_id.clone(),
            capacity_bytes: v.capacity_bytes,
            content_source,
            volume_context: sorted(&v.volume_context),
            published_node_ids: None,
        }
    }

    pub fn from_entry(e: &csi::list_volumes_response::Entry) -> Option<VolumeView> {
        let mut v = VolumeView::from_volume(e.volume.as_ref()?);
        v.published_node_ids = Some(
            e.status
                .as_ref()
                .map(|s| s.published_node_ids.clone())
                .unwrap_or_default(),
        );
        Some(v)
    }

    pub fn human(&self) -> String {
        let mut s = format!("volume {}  {}", self.volume_id, size(self.capacity_bytes));
        if let Some(src) = &self.content_source {
            s.push_str(&format!("  from {src}"));
        }
        for (k, v) in &self.volume_context {
            s.push_str(&format!("\n  {k}={v}"));
        }
        s
    }
}

impl VolumeView {
    /// The owner a listed volume's context names (the disk's ownership tag,
    /// docs/csi.md §4): `<cluster>: <namespace>/<pvc>`, either part alone,
    /// or `None` for an untagged disk (the Go driver's).
    pub fn owner(&self) -> Option<String> {
        let c = &self.volume_context;
        let pvc = match (
            c.get("csi.storage.k8s.io/pvc/namespace"),
            c.get("csi.storage.k8s.io/pvc/name"),
        ) {
            (Some(ns), Some(n)) => Some(format!("{ns}/{n}")),
            _ => None,
        };
        match (c.get("rds.csi.srvlab.io/cluster"), pvc) {
            (Some(cl), Some(p)) => Some(format!("{cl}: {p}")),
            (Some(cl), None) => Some(cl.clone()),
            (None, p) => p,
        }
    }
}

/// One table row per volume.
pub fn volume_table(vols: &[VolumeView]) -> String {
    let mut rows = vec![[
        "VOLUME".to_owned(),
        "SIZE".to_owned(),
        "NODES".to_owned(),
        "SOURCE".to_owned(),
        "OWNER".to_owned(),
        "PATH".to_owned(),
    ]];
    for v in vols {
        rows.push([
            v.volume_id.clone(),
            size(v.capacity_bytes),
            v.published_node_ids
                .as_ref()
                .map(|n| n.join(","))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "-".into()),
            v.content_source.clone().unwrap_or_else(|| "-".into()),
            v.owner().unwrap_or_else(|| "-".into()),
            v.volume_context
                .get("volumePath")
                .cloned()
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    table(&rows)
}

#[derive(Debug, Clone, Serialize)]
pub struct SnapshotView {
    pub snapshot_id: String,
    pub source_volume_id: String,
    pub size_bytes: i64,
    /// RFC 3339, when the plugin reports it.
    pub creation_time: Option<String>,
    pub ready_to_use: bool,
}

impl SnapshotView {
    pub fn from_snapshot(s: &csi::Snapshot) -> SnapshotView {
        SnapshotView {
            snapshot_id: s.snapshot_id.clone(),
            source_volume_id: s.source_volume_id.clone(),
            size_bytes: s.size_bytes,
            creation_time: s.creation_time.as_ref().and_then(|t| {
                jiff::Timestamp::new(t.seconds, t.nanos)
                    .ok()
                    .map(|ts| ts.to_string())
            }),
            ready_to_use: s.ready_to_use,
        }
    }

    pub fn human(&self) -> String {
        format!(
            "snapshot {}  of {}  {}  {}{}",
            self.snapshot_id,
            self.source_volume_id,
            size(self.size_bytes),
            self.creation_time.as_deref().unwrap_or("-"),
            if self.ready_to_use {
                "  ready"
            } else {
                "  not ready"
            }
        )
    }
}

pub fn snapshot_table(snaps: &[SnapshotView]) -> String {
    let mut rows = vec![[
        "SNAPSHOT".to_owned(),
        "SOURCE".to_owned(),
        "SIZE".to_owned(),
        "CREATED".to_owned(),
        "READY".to_owned(),
    ]];
    for s in snaps {
        rows.push([
            s.snapshot_id.clone(),
            s.source_volume_id.clone(),
            size(s.size_bytes),
            s.creation_time.clone().unwrap_or_else(|| "-".into()),
            s.ready_to_use.to_string(),
        ]);
    }
    table(&rows)
}

fn size(bytes: i64) -> String {
    u64::try_from(bytes)
        .map(format_size)
        .unwrap_or_else(|_| bytes.to_string())
}

/// Left-aligned columns separated by two spaces.
pub fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn snapshot_times_render_as_rfc3339() {
        let s = csi::Snapshot {
            size_bytes: 1 << 30,
            snapshot_id: "snap-1".into(),
            source_volume_id: "pvc-1".into(),
            creation_time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            ready_to_use: true,
            group_snapshot_id: String::new(),
        };
        let v = SnapshotView::from_snapshot(&s);
        assert_eq!(v.creation_time.as_deref(), Some("2023-11-14T22:13:20Z"));
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["snapshot_id"], "snap-1");
        assert!(v.human().contains("1Gi"));
    }

    #[test]
    fn the_volume_table_shows_the_owner_tag_when_there_is_one() {
        let mut v = VolumeView {
            volume_id: "pvc-1".into(),
            capacity_bytes: 1 << 30,
            content_source: None,
            volume_context: BTreeMap::new(),
            published_node_ids: None,
        };
        assert_eq!(v.owner(), None);
        assert!(volume_table(std::slice::from_ref(&v)).contains("OWNER"));
        for (k, val) in [
            ("rds.csi.srvlab.io/cluster", "home"),
            ("csi.storage.k8s.io/pvc/namespace", "apps"),
            ("csi.storage.k8s.io/pvc/name", "data"),
        ] {
            v.volume_context.insert(k.into(), val.into());
        }
        assert_eq!(v.owner().as_deref(), Some("home: apps/data"));
        assert!(volume_table(std::slice::from_ref(&v)).contains("home: apps/data"));
        v.volume_context.remove("rds.csi.srvlab.io/cluster");
        assert_eq!(v.owner().as_deref(), Some("apps/data"));
    }

    #[test]
    fn tables_align() {
        let t = table(&[
            ["A".to_owned(), "B".to_owned()],
            ["long".to_owned(), "x".to_owned()],
        ]);
        assert_eq!(t, "A     B\nlong  x\n");
    }
}
