//! Kubernetes mode: VolumeAttachments are the source of truth.
//!
//! - [`store::KubeStore`] rebuilds the table from them at start (retried
//!   until it succeeds; until then every RPC answers UNAVAILABLE /
//!   STORE_NOT_READY rather than guessing).
//! - [`watch`] keeps it in step: a VA that becomes attached is adopted, a VA
//!   deleted after it detached is forgotten (another replica served that
//!   Detach and posted the event); Node deletions trigger the reconciler.
//!   While the VA watch (re-)lists, the cache is marked unsynced: Attach
//!   and Detach answer UNAVAILABLE and the reconciler sees `Unknown`.
//! - [`lease`]: a coordination.k8s.io/v1 Lease so that only one replica
//!   posts the reconciler's events and runs the migration watchdog (every
//!   replica clears stale entries from its own table).
//! - [`KubeState`] answers the reconciler's questions from the watched
//!   caches ([`crate::cluster::Cluster`]).

pub mod lease;
pub mod objects;
pub mod store;
pub mod watch;

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::PersistentVolume;
use kube::{Api, Client};
use rds_bus::{NodeId, VolumeId};

use crate::cluster::{Cluster, Presence};
use crate::error::Error;
use objects::{PvInfo, VaInfo};

/// Deadline of every single (non-watch) API call.
pub const CALL_DEADLINE: Duration = Duration::from_secs(10);

pub async fn deadline<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(CALL_DEADLINE, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Error::Kube(format!("{what}: {e}"))),
        Err(_) => Err(Error::Kube(format!(
            "{what}: no answer within {CALL_DEADLINE:?}"
        ))),
    }
}

#[derive(Default)]
struct VaIndex {
    synced: bool,
    by_name: HashMap<String, (VaInfo, Option<VolumeId>)>,
    by_pair: HashMap<(VolumeId, NodeId), usize>,
    unresolved: usize,
}

impl VaIndex {
    fn insert(&mut self, info: VaInfo, volume: Option<VolumeId>) {
        self.remove(&info.name.clone());
        match &volume {
            Some(v) => {
                *self
                    .by_pair
                    .entry((v.clone(), info.node.clone()))
                    .or_default() += 1
            }
            None => self.unresolved += 1,
        }
        self.by_name.insert(info.name.clone(), (info, volume));
    }

    fn remove(&mut self, name: &str) -> Option<(VaInfo, Option<VolumeId>)> {
        let (info, volume) = self.by_name.remove(name)?;
        match &volume {
            Some(v) => {
                let key = (v.clone(), info.node.clone());
                if let Some(c) = self.by_pair.get_mut(&key) {
                    *c -= 1;
                    if *c == 0 {
                        self.by_pair.remove(&key);
                    }
                }
            }
            None => self.unresolved -= 1,
        }
        Some((info, volume))
    }
}

#[derive(Default)]
struct NodeSet {
    synced: bool,
    names: HashSet<String>,
}

/// Shared Kubernetes-side state: the client, PV lookups (cached) and the
/// watched VolumeAttachment and Node caches.
pub struct KubeState {
    pub client: Client,
    pub driver: String,
    pub default_migration_timeout_secs: u32,
    pvs: Mutex<HashMap<String, PvInfo>>,
    vas: RwLock<VaIndex>,
    nodes: RwLock<NodeSet>,
    /// Pairs whose VA finished detaching and is about to be forgotten by the
    /// watch: not stale, so the reconciler leaves them alone.
    forgetting: Mutex<HashMap<(VolumeId, NodeId), usize>>,
}

impl KubeState {
    pub fn new(client: Client, driver: String, default_migration_timeout_secs: u32) -> Self {
        KubeState {
            client,
            driver,
            default_migration_timeout_secs,
            pvs: Mutex::new(HashMap::new()),
            vas: RwLock::new(VaIndex::default()),
            nodes: RwLock::new(NodeSet::default()),
            forgetting: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn set_forgetting(&self, volume: &VolumeId, node: &NodeId, on: bool) {
        let mut pending = self.forgetting.lock().unwrap_or_else(|e| e.into_inner());
        let key = (volume.clone(), node.clone());
        if on {
            *pending.entry(key).or_default() += 1;
        } else if let Some(n) = pending.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                pending.remove(&key);
            }
        }
    }

    /// The PV behind a VolumeAttachment. Ok(None): the PV cannot be mapped
    /// to a volume of ours (gone and not named like a volume, or another
    /// driver's). Err: the API did not answer — try again later.
    pub async fn pv(&self, name: &str) -> Result<Option<PvInfo>, Error> {
        if let Some(hit) = self.pvs.lock().unwrap_or_else(|e| e.into_inner()).get(name) {
            return Ok(Some(hit.clone()));
        }
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        let pv = deadline(&format!("get PersistentVolume {name}"), api.get_opt(name)).await?;
        let info = match pv {
            Some(pv) => objects::pv_info(&pv, &self.driver),
            None => {
                tracing::warn!(
                    pv = name,
                    "PersistentVolume of a VolumeAttachment is gone; assuming volume id = PV name"
                );
                return Ok(PvInfo::fallback(name));
            }
        };
        if let Some(info) = &info {
            self.pvs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.to_owned(), info.clone());
        }
        Ok(info)
    }

    fn vas(&self) -> std::sync::RwLockWriteGuard<'_, VaIndex> {
        self.vas.write().unwrap_or_else(|e| e.into_inner())
    }

    fn nodes(&self) -> std::sync::RwLockWriteGuard<'_, NodeSet> {
        self.nodes.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A re-list started: until it completes the cache may miss objects
    /// (Attach/Detach answer UNAVAILABLE, the reconciler sees Unknown).
    pub(crate) fn va_unsync(&self) {
        self.vas().synced = false;
    }

    pub(crate) fn va_upsert(&self, info: VaInfo, volume: Option<VolumeId>) {
        self.vas().insert(info, volume);
    }

    pub(crate) fn va_remove(&self, name: &str) -> Option<(VaInfo, Option<VolumeId>)> {
        self.vas().remove(name)
    }

    /// A complete listing: replaces the cache; returns the entries that
    /// disappeared since the previous one.
    pub(crate) fn va_replace(
        &self,
        all: Vec<(VaInfo, Option<VolumeId>)>,
    ) -> Vec<(VaInfo, Option<VolumeId>)> {
        let mut idx = self.vas();
        let keep: HashSet<String> = all.iter().map(|(i, _)| i.name.clone()).collect();
        let gone_names: Vec<String> = idx
            .by_name
            .keys()
            .filter(|n| !keep.contains(*n))
            .cloned()
            .collect();
        let gone = gone_names.iter().filter_map(|n| idx.remove(n)).collect();
        for (info, vol) in all {
            idx.insert(info, vol);
        }
        idx.synced = true;
        gone
    }

    /// VAs whose PV could not be looked up yet.
    pub(crate) fn va_unresolved(&self) -> Vec<VaInfo> {
        self.vas
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_name
            .values()
            .filter(|(_, v)| v.is_none())
            .map(|(i, _)| i.clone())
            .collect()
    }

    pub(crate) fn node_upsert(&self, name: String) {
        self.nodes().names.insert(name);
    }

    pub(crate) fn node_remove(&self, name: &str) {
        self.nodes().names.remove(name);
    }

    /// Returns how many known nodes disappeared.
    pub(crate) fn node_replace(&self, names: HashSet<String>) -> usize {
        let mut set = self.nodes();
        let lost = set.names.difference(&names).count();
        set.names = names;
        set.synced = true;
        lost
    }
}

impl Cluster for KubeState {
    fn decisions_ready(&self) -> Result<(), String> {
        if self.vas.read().unwrap_or_else(|e| e.into_inner()).synced {
            Ok(())
        } else {
            Err("the VolumeAttachment cache is being listed".to_owned())
        }
    }

    fn node(&self, node: &NodeId) -> Presence {
        let set = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        if !set.synced {
            Presence::Unknown
        } else if set.names.contains(node.as_str()) {
            Presence::Present
        } else {
            Presence::Gone
        }
    }

    fn attachment_object(&self, volume: &VolumeId, node: &NodeId) -> Presence {
        let key = (volume.clone(), node.clone());
        if self
            .forgetting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&key)
        {
            return Presence::Unknown;
        }
        let idx = self.vas.read().unwrap_or_else(|e| e.into_inner());
        if !idx.synced || idx.unresolved > 0 {
            // An unmapped VA might be this one: never clear on a guess.
            Presence::Unknown
        } else if idx.by_pair.contains_key(&key) {
            Presence::Present
        } else {
            Presence::Gone
        }
    }
}
