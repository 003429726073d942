//! rds-sim in-process behind the agent's real SSH pool, for the unit tests
//! of the volume and snapshot logic: the same commands go over real SSH to
//! the one RouterOS emulator the integration tests use. The helpers mirror
//! what the tests ask of the RDS (faults on the next command of a verb, the
//! slots and files it holds, the commands it received, seeding as another
//! driver would have left things).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use rds_routeros::{DiskRecord, parse_disk_print_detail, parse_file_print_detail};
use rds_sim::{FaultAction, FaultRule, Sim, SimConfig, SimHandle};
use russh::keys::PrivateKey;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;

use crate::executor::Executor;
use crate::pool::{Pool, Transport};
use crate::spec::{AgentSpec, HostKeyPin};

/// A fault on the next command of one verb (`disk add`, `disk remove`, …).
#[derive(Debug, Clone)]
pub enum SimFault {
    /// The connection drops before the command runs.
    DropBeforeEffect,
    /// The command runs, then the connection drops before any reply.
    DropAfterEffect,
    /// RouterOS error text instead of running.
    Text(String),
}

pub struct SimRds {
    pub sim: SimHandle,
    pool: Arc<Pool>,
    metrics: Arc<crate::metrics::Metrics>,
    pub pool_size: u64,
    _dir: tempfile::TempDir,
}

impl SimRds {
    /// A fresh sim with the two base directories the tests use, and an SSH
    /// pool to it built by the agent's own assembly from typed settings.
    pub async fn start() -> Arc<SimRds> {
        Self::start_with(|_| {}).await
    }

    /// Same, with the sim's configuration adjusted first.
    pub async fn start_with(adjust: impl FnOnce(&mut SimConfig)) -> Arc<SimRds> {
        let dir = tempfile::tempdir().unwrap();
        let key = PrivateKey::from(Ed25519Keypair::from_seed(&[1; 32]));
        let mut cfg = SimConfig::new(dir.path().join("sim"), vec![key.public_key().clone()]);
        cfg.base_dirs = vec![
            "storage-pool/metal-csi".to_owned(),
            "storage-pool/other-class".to_owned(),
        ];
        adjust(&mut cfg);
        let pool_size = cfg.pool_size;
        let sim = Sim::start(cfg).await.unwrap();
        let key_path = dir.path().join("id_ed25519");
        std::fs::write(
            &key_path,
            key.to_openssh(LineEnding::LF).unwrap().as_bytes(),
        )
        .unwrap();
        let mut spec = AgentSpec::new(
            "127.0.0.1",
            sim.addr().port(),
            key_path,
            HostKeyPin::Fingerprint(sim.host_key_fingerprint()),
        );
        spec.command_timeout = Some(Duration::from_secs(5));
        spec.connect_timeout = Some(Duration::from_secs(5));
        spec.reconnect_backoff = Some((Duration::from_millis(20), Duration::from_millis(200)));
        let parts = crate::assemble(&spec.settings().unwrap());
        Arc::new(SimRds {
            sim,
            pool: parts.pool,
            metrics: parts.metrics,
            pool_size,
            _dir: dir,
        })
    }

    /// The SSH pool as the agent's transport.
    pub fn transport(&self) -> Arc<dyn Transport> {
        self.pool.clone()
    }

    /// An executor over the SSH pool.
    pub fn executor(&self) -> Arc<Executor> {
        let t: Arc<dyn Transport> = self.pool.clone();
        Arc::new(Executor::new(
            t,
            self.metrics.clone(),
            Duration::from_secs(5),
        ))
    }

    /// The next command whose verb is `verb` (e.g. `disk add`) gets `fault`.
    pub fn fault(&self, verb: &str, fault: SimFault) {
        let action = match fault {
            SimFault::DropBeforeEffect => FaultAction::DropBeforeEffect,
            SimFault::DropAfterEffect => FaultAction::DropAfterEffect,
            SimFault::Text(t) => FaultAction::ErrorText(t),
        };
        self.sim
            .faults()
            .add(FaultRule::new(action).on(format!("^/{verb} ")).once());
    }

    fn disks(&self) -> Vec<DiskRecord> {
        parse_disk_print_detail(&self.sim.console("/disk print detail")).unwrap()
    }

    /// Slots of the file disks, sorted.
    pub fn slots(&self) -> Vec<String> {
        let mut s: Vec<String> = self
            .disks()
            .into_iter()
            .filter(|d| d.disk_type.as_deref() == Some("file"))
            .filter_map(|d| d.slot)
            .collect();
        s.sort();
        s
    }

    pub fn disk(&self, slot: &str) -> Option<DiskRecord> {
        self.disks()
            .into_iter()
            .find(|d| d.slot.as_deref() == Some(slot))
    }

    /// `/file` names of the `.img` files (no leading slash).
    pub fn files(&self) -> Vec<String> {
        let mut f: Vec<String> = parse_file_print_detail(&self.sim.console("/file print detail"))
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .filter(|n| n.ends_with(".img"))
            .collect();
        f.sort();
        f
    }

    /// Every command line the sim received over SSH.
    pub fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.sim.commands_log())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(" cmd=").map(|(_, c)| c.to_owned()))
            .collect()
    }

    /// Seeds a disk as another driver (e.g. the Go driver) would have made
    /// it (through the console: not in the command log).
    pub fn seed_disk(&self, slot: &str, path: &str, size: u64, export: Option<(u16, &str)>) {
        let mut line = format!("/disk add type=file file-path={path} file-size={size} slot={slot}");
        if let Some((port, nqn)) = export {
            line.push_str(&format!(
                " nvme-tcp-export=yes nvme-tcp-server-port={port} nvme-tcp-server-nqn={nqn}"
            ));
        }
        let out = self.sim.console(&line);
        assert!(out.trim().is_empty(), "seed {line}: {out}");
    }

    /// Seeds a file with no disk entry (an orphan).
    pub fn seed_file(&self, name: &str, size: u64) {
        let p = self.sim.host_path(name).unwrap();
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::File::create(&p).unwrap().set_len(size).unwrap();
    }
}
