//! Per-volume async locks: a decision about a volume (read record, decide,
//! make it durable, publish it) runs under its lock, so two calls for the
//! same volume never interleave while calls for different volumes run in
//! parallel. Entries are removed when the last user lets go (the Go driver's
//! lock map grew forever).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rds_bus::VolumeId;
use tokio::sync::OwnedMutexGuard;

#[derive(Default)]
pub struct VolumeLocks {
    map: Mutex<HashMap<VolumeId, Arc<tokio::sync::Mutex<()>>>>,
}

pub struct VolumeGuard<'a> {
    locks: &'a VolumeLocks,
    volume: VolumeId,
    guard: Option<OwnedMutexGuard<()>>,
}

impl VolumeLocks {
    pub async fn lock(&self, volume: &VolumeId) -> VolumeGuard<'_> {
        let mutex = {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(volume.clone()).or_default().clone()
        };
        let guard = mutex.lock_owned().await;
        VolumeGuard {
            locks: self,
            volume: volume.clone(),
            guard: Some(guard),
        }
    }

    /// Number of volumes with a live lock entry (tests: no leak).
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for VolumeGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.locks.map.lock().unwrap_or_else(|e| e.into_inner());
        // Only the map holds it: nobody waits, forget the entry.
        if map
            .get(&self.volume)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            map.remove(&self.volume);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_are_dropped_after_use_and_same_volume_serialises() {
        let locks = Arc::new(VolumeLocks::default());
        let v = VolumeId::parse("v").unwrap();
        let g = locks.lock(&v).await;
        let l2 = locks.clone();
        let v2 = v.clone();
        let waiter = tokio::spawn(async move {
            let _g = l2.lock(&v2).await;
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "second locker must wait");
        drop(g);
        waiter.await.unwrap();
        assert!(locks.is_empty());
    }
}
