//! Read-only, in-process access to the RDS for operator tools (`rdsctl doctor`,
//! `rdsctl orphans`, `rdsctl attachments`): the same SSH target, host-key pin,
//! command validation, deadlines and parsers as the service, without a bus
//! server. Nothing here mutates the RDS: every method is a typed `print`.
//!
//! It keeps its footprint on the box small (one connection, at most two
//! sessions), since an operator runs it next to a live controller.

use std::sync::Arc;

use rds_routeros::{
    ActiveUserRecord, Command, DiskPath, DiskRecord, FileRecord, InfoPrint, PackageRecord,
    ServiceRecord, parse_active_user_print, parse_package_print, parse_service_print,
};

use crate::config::Settings;
use crate::error::AgentError;
use crate::executor::Executor;
use crate::layout::{BasePaths, DiskKind};
use crate::metrics::Metrics;
use crate::pool::{Pool, PoolConfig, Transport};
use crate::rds::Rds;
use crate::ssh::SshTarget;

/// A disk entry with what rds-agent makes of it.
#[derive(Debug, Clone)]
pub struct ClassifiedDisk {
    pub record: DiskRecord,
    pub kind: DiskKind,
}

/// The ownership tag of a disk: its `comment` (printed as a `;;;` line),
/// which every disk this driver creates carries (docs/decisions.md §13).
/// `None` when the disk has no comment (the Go driver's disks). A
/// `comment=` property, should a RouterOS version print it that way, counts
/// too.
pub fn ownership_tag(d: &DiskRecord) -> Option<String> {
    d.comment
        .clone()
        .or_else(|| {
            d.raw
                .iter()
                .find(|p| p.key == "comment")
                .map(|p| p.value.clone())
        })
        .filter(|c| !c.trim().is_empty())
}

/// The storage-fencing allow list of an export (issue 20), split on `,`
/// (the separator is unverified on RouterOS; this is the place to change it).
/// Empty when the export admits any host.
pub fn allow_list(d: &DiskRecord) -> Vec<String> {
    d.nvme_tcp_server_allow_host_name
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect()
}

pub struct Inspector {
    settings: Settings,
    pool: Arc<Pool>,
    exec: Arc<Executor>,
    rds: Rds,
}

impl Inspector {
    /// Wires target → pool (1 connection, ≤ 2 sessions) → executor → typed reads.
    /// Connects lazily, on the first read.
    pub fn new(s: &Settings) -> Inspector {
        let target = SshTarget {
            host: s.rds_host.clone(),
            port: s.rds_port,
            user: s.rds_user.clone(),
            key: s.key.clone(),
            host_key: s.host_key.clone(),
            connect_timeout: s.connect_timeout,
            // A one-shot tool: the files read at start are the current ones.
            credentials: None,
        };
        let metrics = Metrics::new(&target.address());
        let pool = Arc::new(Pool::new(
            target,
            PoolConfig {
                max_connections: 1,
                max_sessions: s.max_sessions.clamp(1, 2),
                command_timeout: s.command_timeout,
                queue_timeout: s.queue_timeout,
                // Doctor reports the first failure; it does not wait out a breaker.
                breaker_threshold: u32::MAX,
                backoff_initial: s.backoff_initial,
                backoff_max: s.backoff_max,
                // A one-shot tool: its connection lives as long as it does.
                idle_timeout: None,
            },
            metrics.clone(),
        ));
        let transport: Arc<dyn Transport> = pool.clone();
        let exec = Arc::new(Executor::new(transport, metrics, s.command_timeout));
        let bases = BasePaths::new(s.base_paths.clone())
            .unwrap_or_else(|_| BasePaths::single(s.base_path.clone()));
        let rds = Rds::new(exec.clone(), s.pool.clone(), bases);
        Inspector {
            settings: s.clone(),
            pool,
            exec,
            rds,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn bases(&self) -> &BasePaths {
        self.rds.bases()
    }

    /// Connects (host key checked against the pin, key auth) and reads the
    /// RouterOS version (`/system resource print`), one attempt.
    pub async fn version(&self) -> Result<String, AgentError> {
        self.exec.probe().await
    }

    pub async fn packages(&self) -> Result<Vec<PackageRecord>, AgentError> {
        self.exec
            .read(
                &Command::InfoPrint(InfoPrint::Packages),
                parse_package_print,
            )
            .await
    }

    /// The `ssh` entry of `/ip service`, if the box lists one.
    pub async fn ssh_service(&self) -> Result<Option<ServiceRecord>, AgentError> {
        let all = self
            .exec
            .read(
                &Command::InfoPrint(InfoPrint::SshService),
                parse_service_print,
            )
            .await?;
        Ok(all.into_iter().find(|s| s.name == "ssh"))
    }

    pub async fn active_users(&self) -> Result<Vec<ActiveUserRecord>, AgentError> {
        self.exec
            .read(
                &Command::InfoPrint(InfoPrint::ActiveUsers),
                parse_active_user_print,
            )
            .await
    }

    /// The configured pool's record (`None`: no disk is mounted there).
    pub async fn pool(&self) -> Result<Option<DiskRecord>, AgentError> {
        self.rds.pool_record(self.rds.pool()).await
    }

    /// The `/file` entry of `path` (a base path: a directory).
    pub async fn file(&self, path: &DiskPath) -> Result<Option<FileRecord>, AgentError> {
        self.rds.file(path).await
    }

    /// Every file disk, classified against the base paths.
    pub async fn disks(&self) -> Result<Vec<ClassifiedDisk>, AgentError> {
        Ok(self
            .rds
            .file_disks()
            .await?
            .into_iter()
            .map(|d| ClassifiedDisk {
                kind: self.rds.kind(&d),
                record: d,
            })
            .collect())
    }

    /// Files under every base path (directories included).
    pub async fn files_under_bases(&self) -> Result<Vec<FileRecord>, AgentError> {
        let mut out = Vec::new();
        for b in self.rds.bases().paths() {
            out.extend(self.rds.files_under(b).await?);
        }
        Ok(out)
    }

    /// `/disk/btrfs/filesystem print detail`: every Btrfs filesystem (empty
    /// when the box has none). For `rdsctl doctor --btrfs`.
    pub async fn btrfs_filesystems(
        &self,
    ) -> Result<Vec<rds_routeros::FilesystemRecord>, AgentError> {
        self.exec
            .read(
                &Command::BtrfsFilesystemPrint,
                rds_routeros::parse_filesystem_print_detail,
            )
            .await
    }

    /// Subvolumes under every base path (`where name~"^<base rel>/"`), read
    /// and parsed strictly, exactly as the agent reads them.
    pub async fn subvolumes_under_bases(
        &self,
    ) -> Result<Vec<rds_routeros::SubvolumeRecord>, AgentError> {
        let mut sels = Vec::new();
        for b in self.rds.bases().paths() {
            let rel = b.file_name().split_once('/').map_or("", |(_, r)| r);
            let re = rds_routeros::RegexPattern::starts_with(&format!("{rel}/"))
                .map_err(|e| AgentError::InvalidArgument(format!("base path {b}: {e}")))?;
            sels.push(rds_routeros::SubvolumeSelector::NameMatches(re));
        }
        self.rds.subvolumes(sels).await
    }

    /// Closes the SSH connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
