//! Btrfs subvolumes through the [`Executor`] (docs/decisions.md §13): read them
//! (several selections in one round trip), add one (a new subvolume, or a
//! snapshot of another), remove one. Mutations follow the one rule of
//! [`decide_after`]: after an ambiguous failure the state decides.
//!
//! Which RouterOS texts mean what (all assumed; the sim's defaults):
//! `no btrfs filesystem <label>` (pool not Btrfs), `subvolume is busy`
//! (snapshot of an exported file refused), `slot name too long` (/disk add),
//! `file already exists` (/disk add refusing to adopt a file).

use rds_routeros::{
    Command, DiskPath, DiskRecord, DiskSelector, FileSelector, PoolName, RouterOsError, Slot,
    SubvolumeName, SubvolumeRecord, SubvolumeSelector, parse_subvolume_print_detail, split_batch,
};

use crate::error::AgentError;
use crate::rds::{Rds, View, decide_after, parse_disks_strict, parse_files_strict};

/// Disks, files and subvolumes read in one round trip.
#[derive(Debug, Default)]
pub struct Scene {
    pub view: View,
    pub subvolumes: Vec<SubvolumeRecord>,
}

impl Scene {
    pub fn subvolume(&self, name: &SubvolumeName) -> Option<&SubvolumeRecord> {
        self.subvolumes.iter().find(|s| s.name == name.as_str())
    }

    /// The pool record (a disk with `mount-point=<pool>`), if it was read.
    pub fn pool(&self, pool: &PoolName) -> Option<&DiskRecord> {
        self.view
            .disks
            .iter()
            .find(|d| d.mount_point.as_deref() == Some(pool.as_str()))
    }
}

/// Refuses layout subvolume unless the pool record says Btrfs (the pool
/// record was read in the same round trip as everything else).
pub fn require_btrfs(scene: &Scene, pool: &PoolName) -> Result<(), AgentError> {
    let fs = scene.pool(pool).and_then(|d| d.fs.as_deref());
    match fs {
        Some("btrfs") => Ok(()),
        Some(other) => Err(AgentError::Precondition(format!(
            "layout subvolume needs a Btrfs pool; {pool} is {other}"
        ))),
        None => Err(AgentError::Precondition(format!(
            "layout subvolume needs a Btrfs pool; no pool with mount-point {pool:?} on the RDS"
        ))),
    }
}

/// The runbook an operator follows when an assumption about the RDS fails.
pub const RUNBOOK: &str = "docs/btrfs.md §3";

/// The RouterOS error text of `e`, if RouterOS printed one.
fn device_text(e: &AgentError) -> Option<&str> {
    match e {
        AgentError::RouterOs { error, .. } => Some(error.text.as_str()),
        _ => None,
    }
}

/// `failure: no btrfs filesystem <label>`: the pool has no Btrfs.
pub fn is_no_btrfs(e: &AgentError) -> bool {
    device_text(e).is_some_and(|t| t.to_ascii_lowercase().contains("no btrfs filesystem"))
}

/// Errors of `/disk/btrfs` changes that are a state of the box, not a bug:
/// FAILED_PRECONDITION with what to do.
fn precondition(e: AgentError, what: &str) -> AgentError {
    let Some(text) = device_text(&e) else {
        return e;
    };
    let lower = text.to_ascii_lowercase();
    if lower.contains("no btrfs filesystem") {
        AgentError::Precondition(format!(
            "{what}: the pool has no Btrfs filesystem ({text}); layout subvolume needs a Btrfs pool"
        ))
    } else if lower.contains("busy") {
        AgentError::Precondition(format!(
            "{what}: the RDS refuses to snapshot a subvolume whose disk is exported ({text}); \
             unexport the volume (detach it) and retry, see {RUNBOOK}"
        ))
    } else {
        e
    }
}

/// `/disk print`-like strictness for a subvolume print: the legend must be
/// there (RouterOS prints it even when nothing matches) and the reply must
/// end with a complete line, so damaged output never reads as "none".
pub fn parse_subvolumes_strict(text: &str) -> Result<Vec<SubvolumeRecord>, RouterOsError> {
    let incomplete = |reason: &str| RouterOsError::Parse {
        line: 0,
        reason: reason.to_owned(),
    };
    let recs = parse_subvolume_print_detail(text)?;
    if !text.lines().any(|l| l.trim_start().starts_with("Flags:")) {
        return Err(incomplete(
            "no Flags legend: not a complete subvolume print",
        ));
    }
    if !text.ends_with('\n') {
        return Err(incomplete("output ends mid-line (truncated?)"));
    }
    Ok(recs)
}

impl Rds {
    /// Disks matching `disks`, files matching `files` and the subvolumes of
    /// `subs`, in one exec ([`Command::Batch`], every part ending with its
    /// marker).
    ///
    /// A box whose pool has no Btrfs may refuse the subvolume prints (the
    /// sim lists nothing; real RouterOS is unverified): then the same read
    /// runs once more without them, so flat calls keep working there.
    pub async fn scene(
        &self,
        disks: DiskSelector,
        files: Option<FileSelector>,
        subs: Vec<SubvolumeSelector>,
    ) -> Result<Scene, AgentError> {
        if subs.is_empty() {
            return self.scene_once(disks, files, subs).await;
        }
        match self.scene_once(disks.clone(), files.clone(), subs).await {
            Err(e) if is_no_btrfs(&e) => self.scene_once(disks, files, Vec::new()).await,
            other => other,
        }
    }

    async fn scene_once(
        &self,
        disks: DiskSelector,
        files: Option<FileSelector>,
        subs: Vec<SubvolumeSelector>,
    ) -> Result<Scene, AgentError> {
        let mut parts = vec![Command::DiskPrint(disks)];
        let has_files = files.is_some();
        parts.extend(files.map(Command::FilePrint));
        parts.extend(subs.into_iter().map(Command::SubvolumePrint));
        let n = parts.len();
        let cmd = Command::Batch(parts);
        self.exec()
            .read(&cmd, |text| {
                let parts = split_batch(text, n)?;
                let disks = parse_disks_strict(parts[0])?;
                let (files, rest) = if has_files {
                    (parse_files_strict(parts[1])?, &parts[2..])
                } else {
                    (Vec::new(), &parts[1..])
                };
                let mut subvolumes = Vec::new();
                for p in rest {
                    subvolumes.extend(parse_subvolumes_strict(p)?);
                }
                subvolumes.sort_by(|a, b| a.name.cmp(&b.name));
                subvolumes.dedup_by(|a, b| a.name == b.name);
                Ok(Scene {
                    view: View { disks, files },
                    subvolumes,
                })
            })
            .await
    }

    /// Subvolumes matching any of `sels`, in one exec (a batch whose every
    /// part must end with its marker). Duplicates are removed.
    pub async fn subvolumes(
        &self,
        sels: Vec<SubvolumeSelector>,
    ) -> Result<Vec<SubvolumeRecord>, AgentError> {
        if sels.is_empty() {
            return Ok(Vec::new());
        }
        let n = sels.len();
        let cmd = Command::Batch(sels.into_iter().map(Command::SubvolumePrint).collect());
        let mut all = self
            .exec()
            .read(&cmd, |text| {
                let mut out = Vec::new();
                for part in split_batch(text, n)? {
                    out.extend(parse_subvolumes_strict(part)?);
                }
                Ok(out)
            })
            .await?;
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all.dedup_by(|a, b| a.name == b.name);
        Ok(all)
    }

    /// The subvolume called `name`, if any.
    pub async fn subvolume(
        &self,
        name: &SubvolumeName,
    ) -> Result<Option<SubvolumeRecord>, AgentError> {
        let all = self
            .subvolumes(vec![SubvolumeSelector::Name(name.clone())])
            .await?;
        Ok(all.into_iter().find(|s| s.name == name.as_str()))
    }

    /// Creates subvolume `name` on `fs` (a snapshot of `parent` when given).
    /// A silent success is trusted (the disk add or the caller's read that
    /// follows sees the result); a duplicate-name or ambiguous failure is
    /// decided by reading the name: it exists → done.
    pub async fn add_subvolume(
        &self,
        fs: &PoolName,
        name: &SubvolumeName,
        parent: Option<&SubvolumeName>,
        read_only: bool,
    ) -> Result<(), AgentError> {
        let cmd = Command::SubvolumeAdd {
            fs: fs.clone(),
            name: name.clone(),
            parent: parent.cloned(),
            read_only,
        };
        let what = format!("subvolume {name}");
        let sent = self
            .exec()
            .mutate(&cmd)
            .await
            .map_err(|e| precondition(e, &what));
        if sent.is_ok() {
            return Ok(());
        }
        decide_after(
            sent,
            |e| e.reason() == rds_bus::Reason::SlotExists,
            self.subvolume(name),
            |found, err| match (found, err) {
                (Some(_), _) => Ok(()),
                (None, Some(e)) => Err(precondition(e, &what)),
                (None, None) => Err(AgentError::Internal(format!(
                    "the RDS accepted {what} but does not list it"
                ))),
            },
        )
        .await
    }

    /// Removes subvolume `name` and the files inside it. Missing is fine.
    pub async fn remove_subvolume(&self, name: &SubvolumeName) -> Result<(), AgentError> {
        let cmd = Command::SubvolumeRemove { name: name.clone() };
        match self.exec().mutate(&cmd).await {
            Ok(()) => Ok(()),
            Err(AgentError::RouterOs { error, .. }) if error.is_not_found() => Ok(()),
            sent => {
                let what = format!("subvolume {name}");
                decide_after(
                    sent,
                    |_| false,
                    self.subvolume(name),
                    |found, err| match (found, err) {
                        (None, _) => Ok(()),
                        (Some(_), Some(e)) => Err(precondition(e, &what)),
                        (Some(_), None) => Err(AgentError::Internal(format!(
                            "{what} still exists after remove"
                        ))),
                    },
                )
                .await
            }
        }
    }
}

/// The RDS refused a slot for its length (`slot_limit` in the sim):
/// INVALID_ARGUMENT naming the limit and the id's length, never a rename.
pub fn slot_too_long(e: AgentError, slot: &Slot) -> AgentError {
    let Some(text) = device_text(&e) else {
        return e;
    };
    let lower = text.to_ascii_lowercase();
    if !(lower.contains("slot") && lower.contains("too long")) {
        return e;
    }
    let limit = lower
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| !w.is_empty())
        .unwrap_or("?");
    AgentError::InvalidArgument(format!(
        "the RDS refuses slots longer than {limit} characters; volume id {slot} is {} ({text}); \
         the slot is always the volume id, so use shorter volume names",
        slot.as_str().len()
    ))
}

/// `/disk add` refused to adopt the backing file a subvolume snapshot
/// brought along: FAILED_PRECONDITION, never an empty volume in its place.
pub fn adopt_refused(e: AgentError, file: &DiskPath) -> AgentError {
    let Some(text) = device_text(&e) else {
        return e;
    };
    let lower = text.to_ascii_lowercase();
    if !(lower.contains("file") && lower.contains("exist")) {
        return e;
    }
    AgentError::Precondition(format!(
        "the RDS refuses to make a disk of the existing file {file} ({text}); restore and clone \
         of subvolume volumes need /disk add to adopt a file (rds-sim switch existing_file=attach; \
         on a real RDS check it with the runbook in {RUNBOOK})"
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn routeros(text: &str) -> AgentError {
        AgentError::RouterOs {
            verb: "disk add",
            error: rds_routeros::classify_error(text).unwrap(),
        }
    }

    #[test]
    fn refusals_are_named() {
        let slot = Slot::new(&format!("pvc-{}", "a".repeat(36))).unwrap();
        let e = slot_too_long(
            routeros("failure: slot name too long (32 characters max)"),
            &slot,
        );
        assert_eq!(e.reason(), rds_bus::Reason::InvalidArgument);
        assert!(
            e.to_string()
                .contains("longer than 32 characters; volume id"),
            "{e}"
        );
        assert!(e.to_string().contains(" is 40 "), "{e}");
        let other = slot_too_long(routeros("failure: not enough space"), &slot);
        assert_eq!(other.reason(), rds_bus::Reason::CapacityExhausted);
        let f = DiskPath::new("/storage-pool/metal-csi/pvc-1/volume.img").unwrap();
        let e = adopt_refused(routeros("failure: file already exists"), &f);
        assert_eq!(e.reason(), rds_bus::Reason::RdsPrecondition);
        assert!(e.to_string().contains("existing_file"), "{e}");
        let e = precondition(routeros("failure: no btrfs filesystem storage-pool"), "x");
        assert_eq!(e.reason(), rds_bus::Reason::RdsPrecondition);
        assert!(is_no_btrfs(&routeros(
            "failure: no btrfs filesystem storage-pool"
        )));
    }

    #[test]
    fn damaged_subvolume_prints_are_not_answers() {
        assert!(parse_subvolumes_strict("").is_err());
        let ok = "Flags: D - DEAD; S - SNAPSHOT; r - READ-ONLY; M - MOUNTED\r\n\r\n";
        assert!(parse_subvolumes_strict(ok).unwrap().is_empty());
        let rec = rds_routeros::render_subvolume_print(
            &[SubvolumeRecord {
                number: Some(0),
                name: "metal-csi/pvc-1".into(),
                fs: Some("storage-pool".into()),
                parent: Some(String::new()),
                read_only: Some(false),
                path: Some("/storage-pool/metal-csi/pvc-1".into()),
                ..SubvolumeRecord::default()
            }],
            &rds_routeros::RenderOptions::default(),
        );
        assert_eq!(parse_subvolumes_strict(&rec).unwrap().len(), 1);
        assert!(parse_subvolumes_strict(rec.trim_end_matches(['\r', '\n'])).is_err());
    }
}
