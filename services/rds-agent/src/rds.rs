//! Typed access to RDS state through the [`Executor`]: read a disk, a file,
//! the pool, or several of them in one round trip ([`Rds::view`]); remove a
//! disk or a file. Every mutation follows one rule, written once in
//! [`decide_after`]: mutate, then re-read and let the state decide.
//! Shared by the volume logic and the snapshot backends.

use std::future::Future;
use std::sync::Arc;

use rds_routeros::{
    Command, DiskPath, DiskRecord, DiskSelector, FileRecord, FileSelector, PoolName, RegexPattern,
    RouterOsErrorKind, Slot, parse_disk_print_detail, parse_file_print_detail, split_batch,
};

use rds_routeros::RouterOsError;

use crate::error::AgentError;
use crate::executor::Executor;
use crate::layout::{BasePaths, DiskKind, kind_of};

pub struct Rds {
    exec: Arc<Executor>,
    pool: PoolName,
    bases: BasePaths,
}

/// Disks and files read in one round trip.
#[derive(Debug, Default)]
pub struct View {
    pub disks: Vec<DiskRecord>,
    pub files: Vec<FileRecord>,
}

impl View {
    pub fn disk(&self, slot: &Slot) -> Option<&DiskRecord> {
        self.disks
            .iter()
            .find(|d| d.slot.as_deref() == Some(slot.as_str()))
    }

    pub fn file(&self, path: &DiskPath) -> Option<&FileRecord> {
        self.files.iter().find(|f| f.name == path.file_name())
    }
}

/// The one rule of every mutation: after `sent`, a silent success, an
/// ambiguous failure (dropped, timed out, garbled: `outcome_unknown`) or an
/// error `benign` says the state can explain (e.g. a concurrent create won)
/// is decided by re-reading the state — never by sending the mutation again.
/// `decide` gets the state and the error, if any. Other errors return as is.
/// When the re-read itself fails, the mutation's error wins (it says more).
pub async fn decide_after<S, T>(
    sent: Result<(), AgentError>,
    benign: impl Fn(&AgentError) -> bool,
    reread: impl Future<Output = Result<S, AgentError>>,
    decide: impl FnOnce(S, Option<AgentError>) -> Result<T, AgentError>,
) -> Result<T, AgentError> {
    let err = match sent {
        Ok(()) => None,
        Err(e) if e.outcome_unknown() || benign(&e) => Some(e),
        Err(e) => return Err(e),
    };
    match reread.await {
        Ok(state) => decide(state, err),
        Err(reread) => Err(match err {
            Some(e) => {
                tracing::warn!(error = %reread, "re-read after an ambiguous mutation failed");
                e
            }
            None => reread,
        }),
    }
}

impl Rds {
    pub fn new(exec: Arc<Executor>, pool: PoolName, bases: BasePaths) -> Rds {
        Rds { exec, pool, bases }
    }

    pub fn bases(&self) -> &BasePaths {
        &self.bases
    }

    pub fn exec(&self) -> &Arc<Executor> {
        &self.exec
    }

    pub fn pool(&self) -> &PoolName {
        &self.pool
    }

    pub fn kind(&self, d: &DiskRecord) -> DiskKind {
        kind_of(d, &self.bases)
    }

    /// The disk entry of `slot`, if any (`where slot=` is an exact match).
    /// Sent as a one-part batch, so "legend only" counts as "no such disk"
    /// only when the end marker proves the reply complete.
    pub async fn disk(&self, slot: &Slot) -> Result<Option<DiskRecord>, AgentError> {
        let view = self.view(DiskSelector::Slot(slot.clone()), None).await?;
        Ok(view.disk(slot).cloned())
    }

    /// Disks matching `disks` and, if given, files matching `files`, in one
    /// exec ([`Command::Batch`]); each part must end with its marker.
    pub async fn view(
        &self,
        disks: DiskSelector,
        files: Option<FileSelector>,
    ) -> Result<View, AgentError> {
        let mut parts = vec![Command::DiskPrint(disks)];
        parts.extend(files.map(Command::FilePrint));
        let n = parts.len();
        let cmd = Command::Batch(parts);
        self.exec
            .read(&cmd, |text| {
                let parts = split_batch(text, n)?;
                let disks = parse_disks_strict(parts[0])?;
                let files = match parts.get(1) {
                    Some(t) => parse_files_strict(t)?,
                    None => Vec::new(),
                };
                Ok(View { disks, files })
            })
            .await
    }

    /// Every file-backed disk entry (filtered by [`kind_of`] later). The
    /// print is unfiltered: a `where slot~` regex would miss ids it does not
    /// anticipate.
    pub async fn file_disks(&self) -> Result<Vec<DiskRecord>, AgentError> {
        let cmd = Command::DiskPrint(DiskSelector::All);
        let disks = self.exec.read(&cmd, parse_disks_strict).await?;
        Ok(disks
            .into_iter()
            .filter(|d| d.disk_type.as_deref() == Some("file"))
            .collect())
    }

    /// The pool record (`where mount-point="<pool>"`), with raw `size` and
    /// `free` (a record lacking them is damaged output and is re-read).
    pub async fn pool_record(&self, pool: &PoolName) -> Result<Option<DiskRecord>, AgentError> {
        let cmd = Command::DiskPrint(DiskSelector::MountPoint(pool.clone()));
        let parse = |text: &str| {
            let disks = parse_disks_strict(text)?;
            match disks.into_iter().next() {
                Some(d) if d.size.is_none() || d.free.is_none() || d.mount_point.is_none() => {
                    Err(RouterOsError::Parse {
                        line: 0,
                        reason: "pool record without size/free/mount-point".into(),
                    })
                }
                other => Ok(other),
            }
        };
        self.exec.read(&cmd, parse).await
    }

    pub async fn file(&self, path: &DiskPath) -> Result<Option<FileRecord>, AgentError> {
        let cmd = Command::FilePrint(FileSelector::Name(path.clone()));
        let files = self.exec.read(&cmd, parse_files_strict).await?;
        Ok(files.into_iter().find(|f| f.name == path.file_name()))
    }

    /// Files directly or indirectly under `dir` (one command for a listing).
    pub async fn files_under(&self, dir: &DiskPath) -> Result<Vec<FileRecord>, AgentError> {
        let pattern = RegexPattern::starts_with(&format!("{}/", dir.file_name()))?;
        let cmd = Command::FilePrint(FileSelector::NameMatches(pattern));
        self.exec.read(&cmd, parse_files_strict).await
    }

    /// Removes the disk entry of `slot`. Missing is fine (`[find]` matching
    /// nothing is a no-op, or `no such item` on some versions). After an
    /// ambiguous failure the state decides: gone → done.
    pub async fn remove_disk(&self, slot: &Slot) -> Result<(), AgentError> {
        let cmd = Command::DiskRemove { slot: slot.clone() };
        match self.exec.mutate(&cmd).await {
            Ok(()) => Ok(()),
            Err(AgentError::RouterOs { error, .. }) if error.is_not_found() => Ok(()),
            sent => {
                decide_after(
                    sent,
                    |_| false,
                    self.disk(slot),
                    |d, e| match (d, e) {
                        (None, _) => Ok(()),
                        (Some(_), Some(e)) => Err(e),
                        (Some(_), None) => Err(AgentError::Internal(format!(
                            "disk {slot} still exists after /disk remove"
                        ))),
                    },
                )
                .await
            }
        }
    }

    /// Removes a file (`/disk remove` never does, docs/routeros.md §6.6).
    pub async fn remove_file(&self, path: &DiskPath) -> Result<(), AgentError> {
        let cmd = Command::FileRemove { path: path.clone() };
        match self.exec.mutate(&cmd).await {
            Ok(()) => Ok(()),
            Err(AgentError::RouterOs { error, .. })
                if matches!(
                    error.kind,
                    RouterOsErrorKind::NoSuchItem | RouterOsErrorKind::ExpectedItemId
                ) =>
            {
                Ok(())
            }
            sent => {
                decide_after(
                    sent,
                    |_| false,
                    self.file(path),
                    |f, e| match (f, e) {
                        (None, _) => Ok(()),
                        (Some(_), Some(e)) => Err(e),
                        (Some(_), None) => Err(AgentError::Internal(format!(
                            "file {path} still exists after /file remove"
                        ))),
                    },
                )
                .await
            }
        }
    }
}

/// `/disk print detail` parsed with two checks that turn damaged output into
/// a (retried) parse error instead of a wrong answer:
/// - RouterOS always prints the Flags legend, even when nothing matches
///   (docs/routeros.md §4.1), so output without it is not an answer — an empty
///   reply must never read as "no such disk" (Delete would report nothing
///   existed and leak the disk; Create would try again);
/// - a file disk record must carry `slot`, `size`, `file-path` and the later
///   `file-size` (field order: docs/routeros.md §4.7), so output cut short mid-record is caught.
pub fn parse_disks_strict(text: &str) -> Result<Vec<DiskRecord>, RouterOsError> {
    let incomplete = |reason: String| RouterOsError::Parse { line: 0, reason };
    if !text.lines().any(|l| l.trim_start().starts_with("Flags:")) {
        return Err(incomplete(
            "no Flags legend: not a complete /disk print".into(),
        ));
    }
    // Output cut mid-line (a dropped or truncated reply) ends without a newline.
    if !text.ends_with('\n') {
        return Err(incomplete("output ends mid-line (truncated?)".into()));
    }
    let disks = parse_disk_print_detail(text)?;
    for d in &disks {
        let complete = d.slot.is_some()
            && match d.disk_type.as_deref() {
                Some("file") => d.size.is_some() && d.file_path.is_some() && d.file_size.is_some(),
                Some(_) => true,
                None => false,
            };
        if !complete {
            return Err(incomplete(format!(
                "incomplete disk record {:?} (truncated output?)",
                d.slot
            )));
        }
    }
    Ok(disks)
}

/// `/file print detail` with the same truncation guard: no legend exists
/// here (an empty reply is "no such file"), but a non-empty reply must end
/// with a complete line and every record needs `name`, `type` and, for
/// regular files, `last-modified` (the last field, docs/routeros.md §4.9).
pub fn parse_files_strict(text: &str) -> Result<Vec<FileRecord>, RouterOsError> {
    let incomplete = |reason: String| RouterOsError::Parse { line: 0, reason };
    if !text.trim().is_empty() && !text.ends_with('\n') {
        return Err(incomplete("output ends mid-line (truncated?)".into()));
    }
    let files = parse_file_print_detail(text)?;
    for f in &files {
        let is_file = f.file_type.as_deref().is_some_and(|t| t.ends_with(" file"));
        if f.name.is_empty() || f.file_type.is_none() || (is_file && f.last_modified.is_none()) {
            return Err(incomplete(format!("incomplete file record {:?}", f.name)));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use rds_routeros::{Legend, RenderOptions, render_disk_print};

    #[test]
    fn empty_or_truncated_disk_prints_are_not_answers() {
        assert!(parse_disks_strict("").is_err());
        assert!(parse_disks_strict("\r\n").is_err());
        let legend = Legend::rose_storage();
        let d = DiskRecord::file_disk(
            &legend,
            "pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8",
            "/storage-pool/metal-csi/pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8.img",
            5 << 30,
            Some((
                4420,
                "nqn.2000-02.com.mikrotik:pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8",
            )),
        );
        let want = d.clone();
        let full = render_disk_print(&legend, &[d], &RenderOptions::default());
        assert_eq!(parse_disks_strict(&full).unwrap().len(), 1);
        let none = render_disk_print(&legend, &[], &RenderOptions::default());
        assert!(parse_disks_strict(&none).unwrap().is_empty());
        let pool = DiskRecord::raid_pool(
            &legend,
            "storage-pool",
            7_681_574_174_720,
            7_301_927_047_168,
            5,
        );
        let full_pool = render_disk_print(&legend, &[pool], &RenderOptions::default());
        for cut in full_pool.find("type=").unwrap()..full_pool.len() {
            if let Ok(v) = parse_disks_strict(&full_pool[..cut]) {
                let usable = v.first().is_some_and(|d| {
                    d.size.is_some() && d.free.is_some() && d.mount_point.is_some()
                });
                if usable {
                    assert!(
                        v[0].size == Some(7_681_574_174_720)
                            && v[0].free == Some(7_301_927_047_168),
                        "pool cut at {cut} gave {v:?}"
                    );
                }
            }
        }
        // Every cut inside the record is either refused or yields the full record.
        let start = full.find("type=file").unwrap();
        for cut in start..full.len() {
            let text = &full[..cut];
            if let Ok(v) = parse_disks_strict(text) {
                assert!(
                    v.is_empty()
                        || (v[0].size == want.size
                            && v[0].slot == want.slot
                            && v[0].file_path == want.file_path
                            && v[0].nvme_tcp_server_nqn == want.nvme_tcp_server_nqn),
                    "cut at {cut} gave {v:?}"
                );
            }
        }
    }
}
