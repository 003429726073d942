//! `--pv-lookup=get`: one PV at a time, by name, for the node pod.
//!
//! The node's event-service must not hold a cluster-wide list+watch of every
//! PV (each node would cache all of them and its ServiceAccount would need
//! `list`/`watch` on PVs). A volume id is the CSI CreateVolume name, which
//! the external-provisioner sets to the PV's name, so the PV of a volume is
//! one GET by that name, checked for our driver and that handle. Answers are
//! kept for a short TTL in a bounded map so a burst of events about one
//! volume costs one GET. A statically created PV whose name differs from its
//! handle is not found this way; events that name their PVC (all node events
//! do, from the volume context) still go out, only without the PVC's uid.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::PersistentVolume;
use kube::{Api, Client};

use crate::error::Error;

/// How long a fetched PV is reused. A PV's claimRef does not change while
/// it is bound, and a stale entry only costs a missing uid or an event on
/// the PV instead of the PVC.
pub const TTL: Duration = Duration::from_secs(30);
/// Most PVs kept; a node sees a few dozen volumes.
pub const CAPACITY: usize = 256;

pub struct GetPvs {
    api: Api<PersistentVolume>,
    driver_name: String,
    attempt_timeout: Duration,
    cache: Mutex<HashMap<String, (Instant, Arc<PersistentVolume>)>>,
}

impl GetPvs {
    pub fn new(client: Client, driver_name: String, attempt_timeout: Duration) -> GetPvs {
        let api: Api<PersistentVolume> = Api::all(client);
        GetPvs {
            api,
            driver_name,
            attempt_timeout,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The PV of `volume_id`: from the cache while fresh, else one GET with
    /// the attempt deadline. Not found (or a PV of that name that is not
    /// ours / not this handle) is `Ok(None)`. A failed or late GET is
    /// `Ok(None)` when the request named its PVC (the event still goes out,
    /// without the uid), else the error (retried by the worker when useful).
    pub async fn find(
        &self,
        volume_id: &str,
        have_pvc: bool,
    ) -> Result<Option<Arc<PersistentVolume>>, Error> {
        if let Some(pv) = self.cached(volume_id) {
            return Ok(Some(pv));
        }
        let got = match tokio::time::timeout(self.attempt_timeout, self.api.get_opt(volume_id))
            .await
        {
            Ok(Ok(pv)) => pv,
            Ok(Err(e)) if have_pvc => {
                tracing::warn!(error = %e, volume_id, "PersistentVolume GET failed; posting without the PVC uid");
                return Ok(None);
            }
            Ok(Err(e)) => return Err(Error::Kube(e)),
            Err(_) if have_pvc => return Ok(None),
            Err(_) => return Err(Error::AttemptTimeout(self.attempt_timeout)),
        };
        let Some(pv) = got.filter(|pv| self.is_ours(pv, volume_id)) else {
            return Ok(None);
        };
        let pv = Arc::new(pv);
        self.remember(volume_id, pv.clone());
        Ok(Some(pv))
    }

    fn is_ours(&self, pv: &PersistentVolume, volume_id: &str) -> bool {
        pv.spec
            .as_ref()
            .and_then(|s| s.csi.as_ref())
            .is_some_and(|csi| csi.driver == self.driver_name && csi.volume_handle == volume_id)
    }

    fn cached(&self, volume_id: &str) -> Option<Arc<PersistentVolume>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(volume_id)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, pv)| pv.clone())
    }

    fn remember(&self, volume_id: &str, pv: Arc<PersistentVolume>) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        insert_bounded(&mut cache, volume_id.to_owned(), pv, Instant::now());
    }
}

/// Inserts keeping at most [`CAPACITY`] entries: expired ones go first, then
/// the oldest.
fn insert_bounded<V>(
    cache: &mut HashMap<String, (Instant, V)>,
    key: String,
    value: V,
    now: Instant,
) {
    if cache.len() >= CAPACITY && !cache.contains_key(&key) {
        cache.retain(|_, (at, _)| now.saturating_duration_since(*at) < TTL);
        if cache.len() >= CAPACITY
            && let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone())
        {
            cache.remove(&oldest);
        }
    }
    cache.insert(key, (now, value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_never_grows_past_its_capacity() {
        let mut c = HashMap::new();
        let t0 = Instant::now();
        for i in 0..CAPACITY * 3 {
            insert_bounded(
                &mut c,
                format!("pv-{i}"),
                i,
                t0 + Duration::from_millis(i as u64),
            );
        }
        assert_eq!(c.len(), CAPACITY);
        // The newest survive; the oldest went first.
        assert!(c.contains_key(&format!("pv-{}", CAPACITY * 3 - 1)));
        assert!(!c.contains_key("pv-0"));
    }
}
