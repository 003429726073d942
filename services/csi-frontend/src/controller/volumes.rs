//! CreateVolume (empty, from a snapshot, from a volume) and DeleteVolume.
//! CreateVolume sends the StorageClass's layout (flat or a Btrfs subvolume,
//! docs/btrfs.md) and the ownership tag (cluster id, PV, PVC) the agent
//! writes into the disk's comment.

use rds_bus::{SnapshotId, VolumeId};
use rds_proto::agent::{self as agent, create_volume_request::Source};
use rds_proto::csi::v1::volume_content_source::{SnapshotSource, Type as SourceType, VolumeSource};
use rds_proto::csi::v1::{
    CreateVolumeRequest, CreateVolumeResponse, DeleteVolumeRequest, DeleteVolumeResponse, Volume,
    VolumeContentSource,
};

use super::Core;
use crate::capability;
use crate::capacity;
use crate::config::Config;
use crate::deadline::CallCtx;
use crate::error::FrontendError;
use crate::ids;
use crate::params::{self, VolumeLayout, VolumeParams};
use crate::validate;
use crate::volume_context;

/// The requested content source, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Content {
    Empty,
    Snapshot(SnapshotId),
    Volume(VolumeId),
}

impl Content {
    fn from_request(src: Option<&VolumeContentSource>) -> Result<Content, FrontendError> {
        let Some(src) = src else {
            return Ok(Content::Empty);
        };
        match &src.r#type {
            None => Err(FrontendError::InvalidArgument(
                "volume_content_source has neither a snapshot nor a volume".into(),
            )),
            Some(SourceType::Snapshot(s)) => {
                let id =
                    ids::snapshot("volume_content_source.snapshot.snapshot_id", &s.snapshot_id)?;
                if !ids::is_snapshot_slot(id.as_str()) {
                    // Well-formed, but we never issue such an id.
                    return Err(FrontendError::SnapshotNotFound(format!(
                        "snapshot {id} not found"
                    )));
                }
                Ok(Content::Snapshot(id))
            }
            Some(SourceType::Volume(v)) => {
                let id = ids::volume("volume_content_source.volume.volume_id", &v.volume_id)?;
                if ids::is_snapshot_slot(id.as_str()) {
                    return Err(FrontendError::VolumeNotFound(format!(
                        "volume {id} not found"
                    )));
                }
                Ok(Content::Volume(id))
            }
        }
    }

    fn bus_source(&self) -> Option<Source> {
        match self {
            Content::Empty => None,
            Content::Snapshot(s) => Some(Source::SourceSnapshotId(s.to_string())),
            Content::Volume(v) => Some(Source::SourceVolumeId(v.to_string())),
        }
    }

    fn csi(&self) -> Option<VolumeContentSource> {
        let t = match self {
            Content::Empty => return None,
            Content::Snapshot(s) => SourceType::Snapshot(SnapshotSource {
                snapshot_id: s.to_string(),
            }),
            Content::Volume(v) => SourceType::Volume(VolumeSource {
                volume_id: v.to_string(),
            }),
        };
        Some(VolumeContentSource { r#type: Some(t) })
    }

    /// Whether an existing volume (which may not know its source, e.g. one
    /// made by the Go driver) can be the answer to this request.
    fn matches(&self, v: &agent::Volume) -> bool {
        match self {
            Content::Empty => v.source_snapshot_id.is_empty() && v.source_volume_id.is_empty(),
            Content::Snapshot(s) => {
                v.source_volume_id.is_empty()
                    && (v.source_snapshot_id.is_empty() || v.source_snapshot_id == s.as_str())
            }
            Content::Volume(src) => {
                v.source_snapshot_id.is_empty()
                    && (v.source_volume_id.is_empty() || v.source_volume_id == src.as_str())
            }
        }
    }
}

impl Core {
    pub async fn create_volume(
        &self,
        ctx: &CallCtx,
        req: CreateVolumeRequest,
    ) -> Result<CreateVolumeResponse, FrontendError> {
        ids::required("name", &req.name)?;
        capability::check_all(&req.volume_capabilities).map_err(FrontendError::InvalidArgument)?;
        if !req.mutable_parameters.is_empty() {
            return Err(FrontendError::InvalidArgument(
                "mutable_parameters are not supported (no MODIFY_VOLUME capability)".into(),
            ));
        }
        let id = ids::volume("name", &req.name)?;
        if ids::is_snapshot_slot(id.as_str()) {
            return Err(FrontendError::InvalidArgument(format!(
                "name {id}: the prefix {:?} is reserved for snapshots",
                rds_bus::SNAPSHOT_PREFIX
            )));
        }
        let params = params::volume_params(&req.parameters, &self.cfg)?;
        for w in &params.warnings {
            tracing::warn!(volume_id = %id, "StorageClass parameter: {w}");
        }
        capacity::range(req.capacity_range.as_ref())?;
        let content = Content::from_request(req.volume_content_source.as_ref())?;
        let _held = self.guard.volume(id.as_str())?;
        // The source must not be deleted (or restored into) while it is read.
        let _source_held = match &content {
            Content::Empty => None,
            Content::Snapshot(s) => Some(self.guard.snapshot(s.as_str())?),
            Content::Volume(v) => Some(self.guard.volume(v.as_str())?),
        };

        // One bus call: rds-agent alone decides existence, idempotency, case
        // collisions and the source's size (a restore is at least as big as
        // its source), in one batched read on the RDS.
        let size = capacity::create_size(req.capacity_range.as_ref(), 0)?;
        let vol = self
            .backends
            .create_volume(
                ctx,
                agent::CreateVolumeRequest {
                    volume_id: id.to_string(),
                    size_bytes: size,
                    base_path: params.base_path.clone(),
                    nvme_port: params.nvme_port.into(),
                    source: content.bus_source(),
                    // A non-Btrfs pool answers FAILED_PRECONDITION naming its
                    // filesystem; it passes through unchanged.
                    layout: params.layout.to_proto().into(),
                    owner: Some(owner(&self.cfg, &id, &params)),
                    // The agent refuses (OUT_OF_RANGE) a size above it, a
                    // restore of a larger source included, before creating.
                    limit_bytes: capacity::range(req.capacity_range.as_ref())?.1,
                },
            )
            .await?;
        self.adopt_existing(&id, vol, &req, &params, &content)
    }

    /// The agent's answer (new or existing volume) is the CSI answer when it
    /// fits the request's capacity range and content source; otherwise
    /// ALREADY_EXISTS (an existing volume made for another request).
    fn adopt_existing(
        &self,
        id: &VolumeId,
        existing: agent::Volume,
        req: &CreateVolumeRequest,
        params: &VolumeParams,
        content: &Content,
    ) -> Result<CreateVolumeResponse, FrontendError> {
        if !capacity::fits(existing.size_bytes, req.capacity_range.as_ref()) {
            return Err(FrontendError::AlreadyExists(format!(
                "volume {id} already exists with {} bytes, outside the requested capacity range",
                existing.size_bytes
            )));
        }
        if let Some(have) = VolumeLayout::from_proto(existing.layout)
            && have != params.layout
        {
            return Err(FrontendError::AlreadyExists(format!(
                "volume {id} already exists with layout {have}, not {}",
                params.layout
            )));
        }
        if !content.matches(&existing) {
            return Err(FrontendError::AlreadyExists(format!(
                "volume {id} already exists with a different content source"
            )));
        }
        tracing::info!(volume_id = %id, size_bytes = existing.size_bytes, "volume ready");
        Ok(response(id, &existing, params, content))
    }

    pub async fn delete_volume(
        &self,
        ctx: &CallCtx,
        req: DeleteVolumeRequest,
    ) -> Result<DeleteVolumeResponse, FrontendError> {
        let id = ids::volume("volume_id", &req.volume_id)?;
        if ids::is_snapshot_slot(id.as_str()) {
            // Never a volume of ours: nothing to delete (and never a snapshot's disk).
            tracing::info!(volume_id = %id, "not a volume id; nothing to delete");
            return Ok(DeleteVolumeResponse {});
        }
        let _held = self.guard.volume(id.as_str())?;
        if let Some(att) = self.backends.attachment(ctx, &id).await? {
            let nodes: Vec<&str> = att.nodes.iter().map(|n| n.node_id.as_str()).collect();
            return Err(FrontendError::VolumeInUse(format!(
                "volume {id} is published on node(s) {}; unpublish it first",
                nodes.join(", ")
            )));
        }
        let existed = self
            .backends
            .delete_volume(ctx, &id, &self.cfg.base_path)
            .await?;
        tracing::info!(volume_id = %id, existed, "volume deleted");
        Ok(DeleteVolumeResponse {})
    }
}

/// The ownership tag of a new disk: the controller's cluster id, the PV and
/// the PVC the provisioner named (`--extra-create-metadata`). A value that
/// does not fit the tag's grammar is left out with a warning (the tag is
/// information, it never gates anything; the cluster id's own grammar is
/// wider because it also derives host identities).
fn owner(cfg: &Config, id: &VolumeId, p: &VolumeParams) -> agent::VolumeOwner {
    let fit = |what: &str, v: &str| match validate::tag_value(v) {
        Ok(()) => v.to_owned(),
        Err(e) => {
            tracing::warn!(volume_id = %id, "ownership tag: {what} left out: {e}");
            String::new()
        }
    };
    agent::VolumeOwner {
        cluster_id: fit("--cluster-id", &cfg.cluster_id),
        pv_name: p
            .pv_name
            .as_deref()
            .map(|pv| fit("PV name", pv))
            .unwrap_or_default(),
        pvc: p.pvc.as_ref().map(rds_bus::PvcRef::to_proto),
    }
}

fn response(
    id: &VolumeId,
    vol: &agent::Volume,
    params: &VolumeParams,
    content: &Content,
) -> CreateVolumeResponse {
    CreateVolumeResponse {
        volume: Some(Volume {
            capacity_bytes: capacity::to_i64(vol.size_bytes),
            volume_id: id.to_string(),
            volume_context: volume_context::build(params, id, vol),
            content_source: content.csi(),
            accessible_topology: Vec::new(),
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn content_sources_are_checked() {
        assert_eq!(Content::from_request(None).unwrap(), Content::Empty);
        let snap = |id: &str| VolumeContentSource {
            r#type: Some(SourceType::Snapshot(SnapshotSource {
                snapshot_id: id.into(),
            })),
        };
        assert!(matches!(
            Content::from_request(Some(&snap("non-existing-snapshot-id"))),
            Err(FrontendError::SnapshotNotFound(_))
        ));
        assert!(matches!(
            Content::from_request(Some(&snap("a;b"))),
            Err(FrontendError::InvalidArgument(_))
        ));
        let id = SnapshotId::from_name("s1");
        assert_eq!(
            Content::from_request(Some(&snap(id.as_str()))).unwrap(),
            Content::Snapshot(id)
        );
        assert!(matches!(
            Content::from_request(Some(&VolumeContentSource { r#type: None })),
            Err(FrontendError::InvalidArgument(_))
        ));
    }

    #[test]
    fn the_owner_comes_from_the_cluster_id_and_the_provisioner_metadata() {
        let cfg = Config::for_tests("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", &[]).unwrap();
        let id = VolumeId::parse("pvc-1").unwrap();
        let map = |kv: &[(&str, &str)]| -> std::collections::HashMap<String, String> {
            kv.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let p = params::volume_params(
            &map(&[
                (params::PVC_NAMESPACE, "apps"),
                (params::PVC_NAME, "data"),
                (params::PV_NAME, "pvc-1"),
            ]),
            &cfg,
        )
        .unwrap();
        let o = owner(&cfg, &id, &p);
        assert_eq!(o.cluster_id, "default");
        assert_eq!(o.pv_name, "pvc-1");
        let pvc = o.pvc.unwrap();
        assert_eq!(
            (pvc.namespace.as_str(), pvc.name.as_str()),
            ("apps", "data")
        );
        // Without the metadata: the cluster alone.
        let p = params::volume_params(&map(&[]), &cfg).unwrap();
        let o = owner(&cfg, &id, &p);
        assert_eq!((o.pv_name.as_str(), o.pvc), ("", None));
        // A cluster id valid for host identities but not for the tag is left out.
        let mut wide = cfg.clone();
        wide.cluster_id = "Prod_1".into();
        assert_eq!(owner(&wide, &id, &p).cluster_id, "");
    }

    #[test]
    fn existing_volumes_match_only_their_own_source() {
        let s = SnapshotId::from_name("s1");
        let mut v = agent::Volume::default();
        assert!(Content::Empty.matches(&v));
        assert!(
            Content::Snapshot(s.clone()).matches(&v),
            "unknown source is accepted"
        );
        v.source_snapshot_id = s.to_string();
        assert!(Content::Snapshot(s).matches(&v));
        assert!(!Content::Empty.matches(&v));
        assert!(!Content::Snapshot(SnapshotId::from_name("s2")).matches(&v));
        assert!(!Content::Volume(VolumeId::parse("v").unwrap()).matches(&v));
    }
}
