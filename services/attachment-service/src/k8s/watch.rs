//! Keeping the table in step with the API: the start-up rebuild (retried
//! with backoff until it succeeds), then the VolumeAttachment watch; and the
//! Node watch that feeds node presence and triggers the reconciler.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::VolumeAttachment;
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use rds_bus::{Shutdown, VolumeId};
use tokio::sync::Notify;

use super::KubeState;
use super::objects::{self, VaInfo};
use crate::cluster::{Cluster, Presence};
use crate::manager::{Adopted, Manager};
use crate::metrics::Metrics;

const REBUILD_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How long a completed detach seen on the watch waits before it is
/// applied (see [`deleted`]).
const FORGET_DELAY: Duration = Duration::from_secs(2);
/// How often VAs whose PV lookup failed are retried.
const RESOLVE_EVERY: Duration = Duration::from_secs(15);

/// Rebuild (retried until it succeeds), install, then watch VAs.
pub async fn rebuild_then_watch(
    state: Arc<KubeState>,
    manager: Arc<Manager>,
    trigger: Arc<Notify>,
    shutdown: Shutdown,
) {
    let mut backoff = rds_bus::Backoff::new(Duration::from_millis(200), REBUILD_BACKOFF_MAX);
    loop {
        match manager.store().load().await {
            Ok(records) => {
                manager.install(records);
                break;
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?delay, "rebuild from VolumeAttachments failed; Attach answers UNAVAILABLE until it succeeds");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.wait() => return,
                }
            }
        }
    }
    watch_vas(state, manager, trigger, shutdown).await;
}

async fn watch_vas(
    state: Arc<KubeState>,
    manager: Arc<Manager>,
    trigger: Arc<Notify>,
    shutdown: Shutdown,
) {
    let api: Api<VolumeAttachment> = Api::all(state.client.clone());
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut buffer: Vec<VaInfo> = Vec::new();
    let mut tick = tokio::time::interval(RESOLVE_EVERY);
    loop {
        tokio::select! {
            ev = stream.next() => match ev {
                Some(Ok(ev)) => on_va_event(&state, &manager, &trigger, &shutdown, &mut buffer, ev).await,
                Some(Err(e)) => tracing::warn!(error = %e, "VolumeAttachment watch error; retrying"),
                None => return,
            },
            _ = tick.tick() => resolve_pending(&state).await,
            _ = shutdown.wait() => return,
        }
    }
}

async fn volume_of(
    state: &KubeState,
    info: &VaInfo,
) -> Option<(VolumeId, Option<objects::PvInfo>)> {
    match state.pv(&info.pv).await {
        Ok(Some(pv)) => Some((pv.volume.clone(), Some(pv))),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, va = %info.name, "cannot look up the VA's PV yet");
            None
        }
    }
}

async fn on_va_event(
    state: &Arc<KubeState>,
    manager: &Arc<Manager>,
    trigger: &Notify,
    shutdown: &Shutdown,
    buffer: &mut Vec<VaInfo>,
    ev: Event<VolumeAttachment>,
) {
    match ev {
        Event::Init => {
            buffer.clear();
            state.va_unsync();
        }
        Event::InitApply(va) => buffer.extend(objects::va_info(&va, &state.driver)),
        Event::InitDone => {
            let mut all = Vec::with_capacity(buffer.len());
            let mut attached = Vec::new();
            for info in buffer.drain(..) {
                let resolved = volume_of(state, &info).await;
                if adoptable(&info)
                    && let Some((vol, pv)) = &resolved
                {
                    attached.push((info.clone(), vol.clone(), pv.clone()));
                }
                all.push((info, resolved.map(|(v, _)| v)));
            }
            let gone = state.va_replace(all);
            for (info, vol) in gone {
                deleted(state, manager, trigger, shutdown, &info, vol);
            }
            for (info, vol, pv) in attached {
                adopt(state, manager, &info, &vol, pv).await;
            }
        }
        Event::Apply(va) => {
            let Some(info) = objects::va_info(&va, &state.driver) else {
                return;
            };
            let resolved = volume_of(state, &info).await;
            state.va_upsert(info.clone(), resolved.as_ref().map(|(v, _)| v.clone()));
            if adoptable(&info)
                && let Some((vol, pv)) = resolved
            {
                adopt(state, manager, &info, &vol, pv).await;
            }
        }
        Event::Delete(va) => {
            let Some(info) = objects::va_info(&va, &state.driver) else {
                return;
            };
            let vol = state.va_remove(&info.name).and_then(|(_, v)| v);
            deleted(state, manager, trigger, shutdown, &info, vol);
        }
    }
}

/// Attached and not on its way out: a VA being deleted is being detached
/// (its Detach may already have been served here — a late event must not
/// bring the attachment back).
fn adoptable(info: &VaInfo) -> bool {
    info.attached && !info.deleting
}

async fn adopt(
    state: &KubeState,
    manager: &Manager,
    info: &VaInfo,
    vol: &VolumeId,
    pv: Option<objects::PvInfo>,
) {
    let pv = pv.or_else(|| objects::PvInfo::fallback(vol.as_str()));
    let Some(pv) = pv else { return };
    let meta = Adopted {
        access_mode: pv.access_mode,
        block: pv.block,
        pvc: pv.pvc,
        migration_timeout_secs: pv
            .migration_timeout_secs
            .unwrap_or(state.default_migration_timeout_secs),
        attached_at: info.created,
    };
    if let Err(e) = manager.adopt(vol, &info.node, meta).await {
        tracing::warn!(error = %e, va = %info.name, "cannot adopt attachment");
    }
}

/// A VA is gone.
/// - Deleted while still attached (finalizer removed by hand): the
///   reconciler is asked for a pass and clears it after the grace period,
///   with an event.
/// - Detached first (attached=false): the detach is complete; the replica
///   that served it posted the event, so here it is forgotten silently —
///   after `FORGET_DELAY`, and only if no VA for the pair showed up since and
///   the entry is older than the moment the deletion was seen. VA names are
///   reused for a re-attach to the same node, and this replica may already
///   have served that new Attach while the watch still delivers the old VA's
///   deletion.
fn deleted(
    state: &Arc<KubeState>,
    manager: &Arc<Manager>,
    trigger: &Notify,
    shutdown: &Shutdown,
    info: &VaInfo,
    vol: Option<VolumeId>,
) {
    if info.attached {
        tracing::warn!(va = %info.name, node_id = %info.node, "VolumeAttachment deleted while attached; reconciler decides after the grace period");
        trigger.notify_one();
        return;
    }
    let Some(vol) = vol else { return };
    let seen_gone = jiff::Timestamp::now();
    state.set_forgetting(&vol, &info.node, true);
    let (state, manager, shutdown, node) = (
        state.clone(),
        manager.clone(),
        shutdown.clone(),
        info.node.clone(),
    );
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(FORGET_DELAY) => {}
            _ = shutdown.wait() => return,
        }
        state.set_forgetting(&vol, &node, false);
        // Counted either way, so a test can wait for the decision.
        if state.attachment_object(&vol, &node) == Presence::Present {
            manager.metrics().reconcile("forget_kept");
            return;
        }
        match manager.forget(&vol, &node, seen_gone).await {
            Ok(true) => manager.metrics().reconcile("forget"),
            Ok(false) => manager.metrics().reconcile("forget_kept"),
            Err(e) => {
                tracing::warn!(error = %e, volume_id = %vol, node_id = %node, "cannot forget detached attachment");
            }
        }
    });
}

async fn resolve_pending(state: &KubeState) {
    for info in state.va_unresolved() {
        if let Some((vol, _)) = volume_of(state, &info).await {
            state.va_upsert(info, Some(vol));
        }
    }
}

/// Node names (metadata only) for presence; a deletion triggers the
/// reconciler at once.
pub async fn watch_nodes(
    state: Arc<KubeState>,
    trigger: Arc<Notify>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) {
    // Metadata only: Node objects are large and only their names matter.
    let api: Api<PartialObjectMeta<Node>> = Api::all(state.client.clone());
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut buffer: HashSet<String> = HashSet::new();
    let fire = |why: &str| {
        tracing::info!(why, "node change: reconciling");
        metrics.reconcile("node_watcher_trigger");
        trigger.notify_one();
    };
    loop {
        let ev = tokio::select! {
            ev = stream.next() => ev,
            _ = shutdown.wait() => return,
        };
        match ev {
            Some(Ok(Event::Init)) => buffer.clear(),
            Some(Ok(Event::InitApply(n))) => buffer.extend(n.metadata.name),
            Some(Ok(Event::InitDone)) => {
                if state.node_replace(std::mem::take(&mut buffer)) > 0 {
                    fire("nodes missing after re-list");
                }
            }
            Some(Ok(Event::Apply(n))) => {
                if let Some(name) = n.metadata.name {
                    state.node_upsert(name);
                }
            }
            Some(Ok(Event::Delete(n))) => {
                if let Some(name) = n.metadata.name {
                    state.node_remove(&name);
                    fire("node deleted");
                }
            }
            Some(Err(e)) => tracing::warn!(error = %e, "Node watch error; retrying"),
            None => return,
        }
    }
}
