//! Loop-device data plane for local mode: rds-sim's sparse backing files
//! (`<files_root>/<volumePath>`) attached with losetup. Same guarantees as
//! NVMe: idempotent attach (`--nooverlap` reuses an existing device), the
//! device found again from the *file* on every call (sysfs `backing_file`,
//! what `losetup -j` reads, without a process per call), and only devices
//! backed by files under the files root are ever detached.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::command::{Cmd, CommandRunner, run_checked};
use crate::dataplane::{Attachment, DataPlane, OrphanReport};
use crate::device::Device;
use crate::error::{DataPlaneError, Result};
use crate::paths::file_under;
use crate::source::{LoopTarget, VolumeSource};

#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// The sim's files root (`DIR/sim/files`).
    pub files_root: PathBuf,
    pub sysfs_root: PathBuf,
    pub command_timeout: Duration,
}

impl LoopConfig {
    pub fn new(files_root: impl Into<PathBuf>) -> Self {
        LoopConfig {
            files_root: files_root.into(),
            sysfs_root: PathBuf::from("/sys"),
            command_timeout: Duration::from_secs(30),
        }
    }
}

/// The loop-device implementation of [`DataPlane`].
pub struct LoopPlane {
    cfg: LoopConfig,
    runner: Arc<dyn CommandRunner>,
}

/// Loop devices need root; say so plainly (docs/local-mode.md §8).
pub fn require_root(euid: u32) -> Result<()> {
    if euid == 0 {
        Ok(())
    } else {
        Err(DataPlaneError::NeedsRoot { uid: euid })
    }
}

impl LoopPlane {
    pub fn new(cfg: LoopConfig, runner: Arc<dyn CommandRunner>) -> Self {
        LoopPlane { cfg, runner }
    }

    /// The backing file of `t` on this node.
    pub fn file(&self, t: &LoopTarget) -> Result<PathBuf> {
        file_under(&self.cfg.files_root, &t.volume_path)
    }

    fn target(source: &VolumeSource) -> Result<&LoopTarget> {
        match source {
            VolumeSource::Loop(t) => Ok(t),
            VolumeSource::Nvme(_) => {
                Err(DataPlaneError::InvalidArgument("not a loop volume".into()))
            }
        }
    }

    fn cmd(&self) -> Cmd {
        Cmd::new("losetup", self.cfg.command_timeout)
    }

    /// All loop devices backed by `file`, lowest number first: every
    /// `<sysfs>/block/loop*/loop/backing_file` naming it (the kernel prints
    /// the resolved path the file had when it was attached).
    async fn devices_of(&self, file: &Path) -> Result<Vec<Device>> {
        if !file.is_file() {
            return Ok(Vec::new());
        }
        let want = std::fs::canonicalize(file)
            .map_err(|e| DataPlaneError::io(format!("resolving {}", file.display()), e))?;
        let block = self.cfg.sysfs_root.join("block");
        let rd = std::fs::read_dir(&block)
            .map_err(|e| DataPlaneError::io(format!("listing {}", block.display()), e))?;
        let mut devs = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str().filter(|n| n.starts_with("loop")) else {
                continue;
            };
            let Ok(backing) = std::fs::read_to_string(e.path().join("loop/backing_file")) else {
                continue; // not bound
            };
            if Path::new(backing.trim_end_matches('\n')) != want {
                continue;
            }
            let node = Path::new("/dev").join(name);
            match Device::from_node(&node) {
                Ok(Some(d)) => devs.push(d),
                Ok(None) => tracing::debug!(device = name, "not a block device node; ignored"),
                Err(e) => tracing::debug!(device = name, %e, "loop device node vanished"),
            }
        }
        devs.sort_by_key(|d| d.minor);
        Ok(devs)
    }

    /// The files root with symlinks resolved (as sysfs prints backing files).
    pub fn files_root(&self) -> PathBuf {
        std::fs::canonicalize(&self.cfg.files_root).unwrap_or_else(|_| self.cfg.files_root.clone())
    }
}

impl DataPlane for LoopPlane {
    async fn attach(&self, source: &VolumeSource) -> Result<Attachment> {
        require_root(nix::unistd::geteuid().as_raw())?;
        let t = Self::target(source)?;
        let file = self.file(t)?;
        if !file.is_file() {
            return Err(DataPlaneError::NotFound(format!(
                "backing file {} of {} does not exist",
                file.display(),
                t.volume_path
            )));
        }
        if let Some(device) = self.devices_of(&file).await?.into_iter().next() {
            return Ok(Attachment {
                device,
                attempts: 0,
            });
        }
        // --nooverlap: if another caller attached the same file meanwhile,
        // losetup returns that device instead of making a second one.
        let cmd = self
            .cmd()
            .args(["--nooverlap", "--find", "--show"])
            .arg(file.display().to_string());
        let out = run_checked(self.runner.as_ref(), &cmd).await?;
        let name = out.stdout.trim();
        let device = Device::from_node(Path::new(name))
            .map_err(|e| DataPlaneError::io(format!("losetup printed {name:?}"), e))?
            .ok_or_else(|| {
                DataPlaneError::Internal(format!("losetup printed {name:?}, not a block device"))
            })?;
        tracing::info!(file = %file.display(), device = %device, "loop device attached");
        Ok(Attachment {
            device,
            attempts: 1,
        })
    }

    async fn detach(&self, source: &VolumeSource) -> Result<()> {
        require_root(nix::unistd::geteuid().as_raw())?;
        let t = Self::target(source)?;
        let file = self.file(t)?;
        for d in self.devices_of(&file).await? {
            tracing::info!(file = %file.display(), device = %d, "loop device detach");
            run_checked(
                self.runner.as_ref(),
                &self.cmd().arg("--detach").arg(d.path.display().to_string()),
            )
            .await?;
        }
        Ok(())
    }

    async fn resolve(&self, source: &VolumeSource) -> Result<Option<Device>> {
        let t = Self::target(source)?;
        let file = self.file(t)?;
        Ok(self.devices_of(&file).await?.into_iter().next())
    }

    async fn rescan(&self, _source: &VolumeSource, device: &Device) -> Result<()> {
        let cmd = self
            .cmd()
            .arg("--set-capacity")
            .arg(device.path.display().to_string());
        run_checked(self.runner.as_ref(), &cmd).await.map(drop)
    }

    /// Detaches loop devices over files under the files root that no staged
    /// volume uses and nothing mounts (e.g. left by a crash). Devices over
    /// any other file are never touched.
    async fn cleanup_orphans(
        &self,
        keep: &[VolumeSource],
        busy: &[(u64, u64)],
        budget: Duration,
    ) -> OrphanReport {
        let deadline = Instant::now() + budget;
        let mut report = OrphanReport::default();
        if nix::unistd::geteuid().as_raw() != 0 {
            return report;
        }
        let root = self.files_root();
        let keep_files: Vec<PathBuf> = keep
            .iter()
            .filter_map(|s| match s {
                VolumeSource::Loop(t) => self
                    .file(t)
                    .ok()
                    .map(|f| std::fs::canonicalize(&f).unwrap_or(f)),
                VolumeSource::Nvme(_) => None,
            })
            .collect();
        let block = self.cfg.sysfs_root.join("block");
        let Ok(rd) = std::fs::read_dir(&block) else {
            return report;
        };
        let mut names: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.starts_with("loop") && n[4..].bytes().all(|b| b.is_ascii_digit()) && n.len() > 4
            })
            .collect();
        names.sort();
        for name in names {
            let Ok(backing) = std::fs::read_to_string(block.join(&name).join("loop/backing_file"))
            else {
                continue; // unbound
            };
            let backing = backing.trim();
            let (path, deleted) = match backing.strip_suffix(" (deleted)") {
                Some(p) => (PathBuf::from(p), true),
                None => (PathBuf::from(backing), false),
            };
            if !path.starts_with(&root) {
                continue; // not ours: never touched, not even listed
            }
            if !deleted && keep_files.contains(&path) {
                continue;
            }
            let node = PathBuf::from("/dev").join(&name);
            let dev = match Device::from_node(&node) {
                Ok(Some(d)) => d,
                _ => continue,
            };
            if busy.contains(&dev.dev()) {
                report.skipped.push(format!("{name} (mounted)"));
                continue;
            }
            if Instant::now() >= deadline {
                report.budget_exhausted = true;
                break;
            }
            match run_checked(
                self.runner.as_ref(),
                &self.cmd().arg("--detach").arg(node.display().to_string()),
            )
            .await
            {
                Ok(_) => {
                    tracing::info!(device = %name, file = %path.display(), "orphaned loop device detached");
                    report.cleaned.push(format!("{name} ({})", path.display()));
                }
                Err(e) => report.errors.push(format!("{name}: {e}")),
            }
        }
        report
    }

    fn sysfs_root(&self) -> &Path {
        &self.cfg.sysfs_root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_devices_need_root_and_say_so() {
        assert!(require_root(0).is_ok());
        let Err(e) = require_root(1000) else {
            panic!("uid 1000 must be refused");
        };
        let s = e.to_status();
        assert_eq!(s.code(), tonic::Code::FailedPrecondition);
        assert_eq!(
            rds_bus::reason_of(&s),
            Some(rds_bus::Reason::NodePrecondition)
        );
        assert!(
            s.message().contains("root is needed for loop devices"),
            "{}",
            s.message()
        );
    }
}
