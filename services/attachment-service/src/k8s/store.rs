//! The Kubernetes-mode store. The durable record of an attachment is the
//! VolumeAttachment Kubernetes created before it called ControllerPublish
//! (and deletes only after ControllerUnpublish succeeded), so `commit`
//! writes nothing: an acknowledged Attach is already backed by its VA, and a
//! restart finds it again in `load`. "Durable" here therefore means "backed
//! by a VA the API server stored": events that wait for a durable change
//! wait only for the in-memory table, because the VA already exists when
//! the call arrives; a clear by the reconciler is durable because the VA
//! (or Node) it follows is already gone from the API. This keeps the publish path free of API
//! round trips and RBAC read-only. What the VA does not carry is read from
//! the PV (see `objects`). A migration's timed-out mark is not persisted:
//! after a restart an expired window is detected (and MigrationFailed posted)
//! again.

use std::collections::HashMap;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::storage::v1::VolumeAttachment;
use kube::Api;
use kube::api::ListParams;

use super::objects::{self, PvInfo, VaInfo};
use super::{KubeState, deadline};
use crate::error::Error;
use crate::model::Record;
use crate::store::{Batch, Store};

pub struct KubeStore {
    state: Arc<KubeState>,
}

impl KubeStore {
    pub fn new(state: Arc<KubeState>) -> Self {
        KubeStore { state }
    }

    async fn load_inner(&self) -> Result<Vec<Record>, Error> {
        let api: Api<VolumeAttachment> = Api::all(self.state.client.clone());
        let list = deadline("list VolumeAttachments", api.list(&ListParams::default())).await?;
        let ours: Vec<VaInfo> = list
            .items
            .iter()
            .filter_map(|va| objects::va_info(va, &self.state.driver))
            .collect();
        let mut pvs: HashMap<String, Option<PvInfo>> = HashMap::new();
        for va in &ours {
            if !pvs.contains_key(&va.pv) {
                pvs.insert(va.pv.clone(), self.state.pv(&va.pv).await?);
            }
        }
        let pairs: Vec<(VaInfo, PvInfo)> = ours
            .into_iter()
            .filter_map(|va| {
                let pv = pvs.get(&va.pv).cloned().flatten();
                if pv.is_none() {
                    tracing::warn!(va = %va.name, pv = %va.pv, "VolumeAttachment's PV is not one of ours; skipped");
                }
                pv.map(|pv| (va, pv))
            })
            .collect();
        let records = objects::rebuild(&pairs, self.state.default_migration_timeout_secs);
        tracing::info!(
            volume_attachments = pairs.len(),
            volumes = records.len(),
            "rebuilt attachment table from VolumeAttachments"
        );
        Ok(records)
    }
}

impl Store for KubeStore {
    fn load(&self) -> BoxFuture<'_, Result<Vec<Record>, Error>> {
        self.load_inner().boxed()
    }

    fn commit<'a>(&'a self, _batch: Batch<'a>) -> BoxFuture<'a, Result<(), Error>> {
        async { Ok(()) }.boxed()
    }

    fn describe(&self) -> String {
        format!("VolumeAttachments of {}", self.state.driver)
    }
}
