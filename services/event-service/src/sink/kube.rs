//! Kubernetes mode sink: resolves the object an event is about and posts it
//! through kube's events `Recorder` (events.k8s.io/v1, deduplicated into a
//! series by reason + action + regarding + related).
//!
//! Resolution (no API call per event in watch mode, at most one GET per
//! volume per TTL in get mode):
//! 1. the PVC named in the request (csi-frontend copies
//!    `csi.storage.k8s.io/pvc/{namespace,name}` into volume_context);
//! 2. else the `claimRef` of the PV whose `spec.csi.volumeHandle` is the
//!    volume id and whose `spec.csi.driver` is ours: from a WATCHED cache of
//!    all PVs ([`super::pv_watch`], the controller), or from one GET of the
//!    PV by name kept for a short TTL ([`super::pv_get`], the node pod, which
//!    must not list PVs cluster-wide);
//! 3. else that PV itself; 4. else nothing (the worker logs and counts it).
//!
//! The PV cache also supplies the PVC's uid when the request named the PVC:
//! `kubectl describe pvc` selects events by `involvedObject.uid`, so an event
//! without it would not show there.
//!
//! Namespaces: kube's Recorder posts to the regarding object's namespace, and
//! for a cluster-scoped object (a PV) to `default` (the URL namespace; the
//! body's `metadata.namespace` stays empty and the API server fills it from
//! the URL — events.k8s.io validation allows `default` or `kube-system` for a
//! cluster-scoped regarding object). So every event has a namespace: the
//! PVC's, or `default` for PV events.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;

use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume};
use kube::Client;
use kube::runtime::events::{Event, EventType as KubeEventType, Recorder, Reporter};
use tracing::Instrument;

use super::pv_get::GetPvs;
use super::pv_watch::WatchedPvs;
use super::{Delivered, Sink};
use crate::catalogue::EventType;
use crate::config::PvLookupMode;
use crate::error::Error;
use crate::validate::Pending;
use rds_bus::PvcRef;

/// events.k8s.io `note` limit (the API server rejects longer notes).
pub const NOTE_LIMIT: usize = 1024;

pub struct KubeSink {
    /// ONE recorder per process (the Go driver leaked a broadcaster per event).
    recorder: Recorder,
    pvs: PvLookup,
    attempt_timeout: Duration,
}

/// How a volume id becomes its PV (`--pv-lookup`).
enum PvLookup {
    Watch(WatchedPvs),
    Get(Box<GetPvs>),
}

impl KubeSink {
    /// Starts the PV lookup (a watch in `watch` mode) and builds the
    /// recorder. Must run in a runtime.
    pub fn new(
        client: Client,
        driver_name: String,
        instance: String,
        attempt_timeout: Duration,
        mode: PvLookupMode,
    ) -> KubeSink {
        let pvs = match mode {
            PvLookupMode::Watch => PvLookup::Watch(WatchedPvs::new(
                client.clone(),
                driver_name.clone(),
                attempt_timeout,
            )),
            PvLookupMode::Get => PvLookup::Get(Box::new(GetPvs::new(
                client.clone(),
                driver_name.clone(),
                attempt_timeout,
            ))),
        };
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: driver_name,
                instance: Some(instance),
            },
        );
        KubeSink {
            recorder,
            pvs,
            attempt_timeout,
        }
    }

    async fn find_pv(
        &self,
        volume_id: &str,
        have_pvc: bool,
    ) -> Result<Option<Arc<PersistentVolume>>, Error> {
        match &self.pvs {
            PvLookup::Watch(w) => w.find(volume_id, have_pvc).await,
            PvLookup::Get(g) => g.find(volume_id, have_pvc).await,
        }
    }

    /// The object to post on, or `None` when there is none.
    async fn resolve(&self, ev: &Pending) -> Result<Option<ObjectReference>, Error> {
        let pv = self
            .find_pv(ev.volume_id.as_str(), ev.pvc.is_some())
            .await?;
        let claim = pv
            .as_ref()
            .and_then(|pv| pv.spec.as_ref())
            .and_then(|s| s.claim_ref.as_ref())
            .filter(|c| c.namespace.is_some() && c.name.is_some());
        if let Some(pvc) = &ev.pvc {
            let uid = claim
                .filter(|c| {
                    c.namespace.as_deref() == Some(pvc.namespace.as_str())
                        && c.name.as_deref() == Some(pvc.name.as_str())
                })
                .and_then(|c| c.uid.clone());
            return Ok(Some(pvc_ref(pvc, uid)));
        }
        if let Some(c) = claim {
            let key = PvcRef {
                namespace: c.namespace.clone().unwrap_or_default(),
                name: c.name.clone().unwrap_or_default(),
            };
            return Ok(Some(pvc_ref(&key, c.uid.clone())));
        }
        Ok(pv.map(|pv| ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("PersistentVolume".to_owned()),
            name: pv.metadata.name.clone(),
            uid: pv.metadata.uid.clone(),
            ..Default::default()
        }))
    }

    async fn post(&self, ev: &Pending) -> Result<Delivered, Error> {
        let Some(regarding) = self.resolve(ev).await? else {
            return Ok(Delivered::NoObject);
        };
        let r = &ev.rendered;
        let event = Event {
            type_: match r.type_ {
                EventType::Normal => KubeEventType::Normal,
                EventType::Warning => KubeEventType::Warning,
            },
            reason: r.reason.to_owned(),
            note: Some(truncate(&r.message, NOTE_LIMIT).to_owned()),
            action: r.action.to_owned(),
            secondary: r.related_node.as_ref().map(|n| ObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Node".to_owned()),
                name: Some(n.clone()),
                ..Default::default()
            }),
        };
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let kind = regarding.kind.clone().unwrap_or_default();
        let name = regarding.name.clone().unwrap_or_default();
        let span = tracing::info_span!(
            "kube.events.publish",
            otel.kind = "client",
            k8s.namespace = %namespace,
            k8s.regarding.kind = %kind,
            k8s.regarding.name = %name,
            event.reason = r.reason,
            otel.status_code = tracing::field::Empty,
        );
        let publish = self.recorder.publish(&event, &regarding);
        let res = match tokio::time::timeout(self.attempt_timeout, publish)
            .instrument(span.clone())
            .await
        {
            Ok(Ok(())) => Ok(Delivered::Posted {
                on: format!("{kind} {namespace}/{name}"),
            }),
            Ok(Err(e)) => Err(Error::Kube(e)),
            Err(_) => Err(Error::AttemptTimeout(self.attempt_timeout)),
        };
        if let Err(e) = &res {
            rds_bus::trace::mark_error(&span, &e.to_string());
        }
        res
    }
}

impl Sink for KubeSink {
    fn deliver<'a>(&'a self, ev: &'a Pending) -> BoxFuture<'a, Result<Delivered, Error>> {
        self.post(ev).boxed()
    }
}

fn pvc_ref(pvc: &PvcRef, uid: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".to_owned()),
        kind: Some("PersistentVolumeClaim".to_owned()),
        namespace: Some(pvc.namespace.clone()),
        name: Some(pvc.name.clone()),
        uid,
        ..Default::default()
    }
}

/// The longest prefix of `s` of at most `max` bytes on a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(super::truncate("abc", 5), "abc");
        assert_eq!(super::truncate("aµb", 2), "a");
        assert_eq!(super::truncate("aµb", 3), "aµ");
    }
}
