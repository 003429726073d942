//! Writing `state.json`. By default each change is written and fsynced before the reply.
//! With `SimConfig::sync_state` off (benchmarks) a writer thread writes it behind the reply,
//! coalescing changes (the newest snapshot wins): a real RouterOS does not spend time
//! proportional to its disk count on every change, and a 2,000-disk state rewritten per
//! command would make the benchmarks measure the sim. Both ways replace the file atomically
//! (temporary file + rename), so a crash leaves the old or the new state, never a torn one.
//! Reboot and stop flush first, so a reload never reads an older state than the memory copy.
//! The writer waits [`DEBOUNCE`] after a change before writing, so a burst of changes costs
//! one write, not one per command (on two cores a write per change competes with the
//! commands themselves).

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::SimError;
use crate::model::State;
use crate::store::write_atomic_sync;

/// How long the writer collects changes before writing them (write-behind mode only).
const DEBOUNCE: Duration = Duration::from_millis(250);

#[derive(Default)]
struct Slot {
    /// A change is waiting to be written.
    pending: bool,
    queued: u64,
    written: u64,
    closed: bool,
    /// A flush waits: write now.
    urgent: bool,
}

#[derive(Default)]
struct Behind {
    slot: Mutex<Slot>,
    cv: Condvar,
}

pub(crate) struct Persister {
    path: PathBuf,
    behind: Option<Arc<Behind>>,
}

fn lock(m: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The state the sim serves; the writer thread reads it when it writes (no copy per change:
/// copying 2,000 disks per command made every change cost O(disks)).
pub(crate) type SharedState = Arc<Mutex<State>>;

fn write(path: &std::path::Path, state: &State, sync: bool) -> Result<(), SimError> {
    let json = serde_json::to_vec(state).map_err(|e| SimError::State(e.to_string()))?;
    write_atomic_sync(path, &json, None, sync)
}

impl Persister {
    /// `sync`: write (and fsync) before returning from [`Persister::save`]; otherwise behind.
    /// `state`: what the writer thread writes (behind mode).
    pub(crate) fn new(path: PathBuf, sync: bool, state: SharedState) -> Result<Self, SimError> {
        if sync {
            return Ok(Self { path, behind: None });
        }
        let behind = Arc::new(Behind::default());
        let (b, p) = (behind.clone(), path.clone());
        std::thread::Builder::new()
            .name("rds-sim-state".into())
            .spawn(move || writer(&b, &p, &state))
            .map_err(|e| SimError::io("starting the state writer for", path.clone(), e))?;
        Ok(Self {
            path,
            behind: Some(behind),
        })
    }

    /// Write `state` now (sync mode), or note that the shared state changed (behind mode:
    /// the writer reads it later). The caller may hold the state's lock.
    pub(crate) fn save(&self, state: &State) -> Result<(), SimError> {
        match &self.behind {
            None => write(&self.path, state, true),
            Some(b) => {
                let mut s = lock(&b.slot);
                s.pending = true;
                s.queued += 1;
                b.cv.notify_all();
                Ok(())
            }
        }
    }

    /// Wait until every saved snapshot is on disk.
    pub(crate) fn flush(&self) {
        if let Some(b) = &self.behind {
            let mut s = lock(&b.slot);
            while s.written < s.queued {
                s.urgent = true;
                b.cv.notify_all();
                s = b.cv.wait(s).unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        self.flush();
        if let Some(b) = &self.behind {
            lock(&b.slot).closed = true;
            b.cv.notify_all();
        }
    }
}

fn writer(b: &Behind, path: &std::path::Path, state: &SharedState) {
    let mut s = lock(&b.slot);
    loop {
        if s.pending && !s.urgent && !s.closed {
            let until = Instant::now() + DEBOUNCE;
            while !s.urgent && !s.closed {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                s =
                    b.cv.wait_timeout(s, left)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0);
            }
        }
        if std::mem::take(&mut s.pending) {
            let upto = s.queued;
            // Never hold the slot while taking the state: a command holds the state while
            // it calls `save`, which takes the slot.
            drop(s);
            let json = {
                let st = state.lock().unwrap_or_else(|e| e.into_inner());
                serde_json::to_vec(&*st).map_err(|e| SimError::State(e.to_string()))
            };
            let written = json.and_then(|j| write_atomic_sync(path, &j, None, false));
            if let Err(e) = written {
                tracing::error!(error = %e, "cannot persist state");
            }
            s = lock(&b.slot);
            s.written = upto;
            if s.written == s.queued {
                s.urgent = false;
            }
            b.cv.notify_all();
        } else if s.closed {
            return;
        } else {
            s = b.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn written_behind_state_is_on_disk_after_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let shared: SharedState = Arc::new(Mutex::new(State::fresh()));
        let p = Persister::new(path.clone(), false, shared.clone()).unwrap();
        for i in 0..50 {
            let mut st = shared.lock().unwrap();
            st.identity = Some(format!("id-{i}"));
            p.save(&st).unwrap();
        }
        p.flush();
        let back: State = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back.identity.as_deref(), Some("id-49"));
    }
}
