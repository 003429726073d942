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
    pending: Option<State>,
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

fn write(path: &std::path::Path, state: &State, sync: bool) -> Result<(), SimError> {
    let json = serde_json::to_vec(state).map_err(|e| SimError::State(e.to_string()))?;
    write_atomic_sync(path, &json, None, sync)
}

impl Persister {
    /// `sync`: write (and fsync) before returning from [`Persister::save`]; otherwise behind.
    pub(crate) fn new(path: PathBuf, sync: bool) -> Result<Self, SimError> {
        if sync {
            return Ok(Self { path, behind: None });
        }
        let behind = Arc::new(Behind::default());
        let (b, p) = (behind.clone(), path.clone());
        std::thread::Builder::new()
            .name("rds-sim-state".into())
            .spawn(move || writer(&b, &p))
            .map_err(|e| SimError::io("starting the state writer for", path.clone(), e))?;
        Ok(Self {
            path,
            behind: Some(behind),
        })
    }

    pub(crate) fn save(&self, state: &State) -> Result<(), SimError> {
        match &self.behind {
            None => write(&self.path, state, true),
            Some(b) => {
                let mut s = lock(&b.slot);
                s.pending = Some(state.clone());
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

fn writer(b: &Behind, path: &std::path::Path) {
    let mut s = lock(&b.slot);
    loop {
        if s.pending.is_some() && !s.urgent && !s.closed {
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
        if let Some(state) = s.pending.take() {
            let upto = s.queued;
            drop(s);
            if let Err(e) = write(path, &state, false) {
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
        let p = Persister::new(path.clone(), false).unwrap();
        let mut st = State::fresh();
        for i in 0..50 {
            st.identity = Some(format!("id-{i}"));
            p.save(&st).unwrap();
        }
        p.flush();
        let back: State = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back.identity.as_deref(), Some("id-49"));
    }
}
