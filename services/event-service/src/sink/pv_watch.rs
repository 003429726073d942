//! `--pv-lookup=watch` (the controller's default): a cache of every PV kept
//! by a cluster-wide list + watch (kube::runtime reflector), so resolving an
//! event never costs an API call. Needs `list`/`watch` on PVs.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use crate::error::Error;

pub struct WatchedPvs {
    pvs: Store<PersistentVolume>,
    driver_name: String,
    attempt_timeout: Duration,
    watch: tokio::task::JoinHandle<()>,
}

impl Drop for WatchedPvs {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

impl WatchedPvs {
    /// Starts the PV watch. Must run in a runtime.
    pub fn new(client: Client, driver_name: String, attempt_timeout: Duration) -> WatchedPvs {
        let (reader, writer) = reflector::store::<PersistentVolume>();
        let api: Api<PersistentVolume> = Api::all(client);
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff();
        let watch = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                match item {
                    Ok(watcher::Event::InitDone) => {
                        tracing::info!("PersistentVolume cache synced")
                    }
                    Ok(_) => {}
                    // The stream retries with backoff; each failure is logged.
                    Err(e) => tracing::warn!(error = %e, "PersistentVolume watch failed; retrying"),
                }
            }
        });
        WatchedPvs {
            pvs: reader,
            driver_name,
            attempt_timeout,
            watch,
        }
    }

    /// The PV of `volume_id` from the cache. Until the first list has been
    /// applied it waits up to the attempt timeout; if the cache is still not
    /// synced, `Ok(None)` when the request named the PVC itself (the event can
    /// go out, only without the PVC's uid), else [`Error::CacheNotReady`].
    pub async fn find(
        &self,
        volume_id: &str,
        have_pvc: bool,
    ) -> Result<Option<Arc<PersistentVolume>>, Error> {
        let ready = tokio::time::timeout(self.attempt_timeout, self.pvs.wait_until_ready()).await;
        if !matches!(ready, Ok(Ok(()))) {
            return if have_pvc {
                Ok(None)
            } else {
                Err(Error::CacheNotReady)
            };
        }
        let driver = self.driver_name.as_str();
        Ok(self.pvs.find(|pv| {
            pv.spec
                .as_ref()
                .and_then(|s| s.csi.as_ref())
                .is_some_and(|csi| csi.driver == driver && csi.volume_handle == volume_id)
        }))
    }
}
