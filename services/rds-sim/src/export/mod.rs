//! NVMe/TCP export backend: mirrors every exported file disk into the Linux kernel target
//! (nvmet) through configfs, so a real initiator (`nvme connect -t tcp`) reaches the sim's
//! backing files. Off by default ([`NvmetExportConfig::enabled`], `--nvmet-export`).
//!
//! Per exported disk:
//! - subsystem `nvmet/subsystems/<NQN>`: `attr_model=rds-sim` (our mark, also what
//!   `nvme list` shows), `attr_allow_any_host=1`;
//! - namespace 1: `device_path` = the real sparse file, `buffered_io`, `enable=1`;
//! - port `nvmet/ports/<nvme-tcp-server-port>`: tcp, ipv4/ipv6, `addr_traddr` (default
//!   127.0.0.1), `addr_trsvcid` = the port; the subsystem is linked into it.
//!
//! The exporter reconciles after every state change, at start and after a simulated reboot
//! (the export is withdrawn while the box is "down"). It only changes or removes entries it
//! made itself: they are listed in `<state_dir>/nvmet-export.json` and subsystems carry the
//! `attr_model` mark; anything else in configfs is left alone (a clash is reported, never
//! "fixed"). Stopping the sim leaves the export in place (the data path outlives the SSH
//! server, as on the real box); a later start reconciles it, and a start with export off
//! withdraws what a previous run made.

mod desired;
mod hosts;
mod owned;
mod tree;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::error::SimError;
use crate::model::State;
use crate::store::Store;
use desired::{Desired, desired};
pub use hosts::AllowListSwitches;
use owned::{Owned, OwnedSubsystem};
use tree::{PORT_DEFAULT_GROUPS, SUBSYSTEM_DEFAULT_GROUPS, Tree};

/// `attr_model` of every subsystem the exporter makes: its ownership mark.
pub const MODEL_MARK: &str = "rds-sim";

/// Where configfs is normally mounted.
pub const DEFAULT_CONFIGFS_ROOT: &str = "/sys/kernel/config";

/// Settings of the NVMe/TCP export backend.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NvmetExportConfig {
    /// Mirror exported disks into the kernel target. Default off.
    pub enabled: bool,
    /// configfs mount point (holds `nvmet/`); a plain directory tree in tests.
    pub configfs_root: PathBuf,
    /// Address the kernel target listens on for every port.
    pub traddr: IpAddr,
    /// Namespaces use buffered file I/O: the sim's files may live on tmpfs, where the kernel
    /// refuses O_DIRECT, and the real box serves from its page cache too.
    pub buffered_io: bool,
    /// How a disk's host allow list is read (unverified RouterOS details).
    pub allow_list: AllowListSwitches,
}

impl Default for NvmetExportConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            configfs_root: PathBuf::from(DEFAULT_CONFIGFS_ROOT),
            traddr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            buffered_io: true,
            allow_list: AllowListSwitches::default(),
        }
    }
}

/// The running exporter: the configfs tree, what it owns there, and what it last applied.
#[derive(Debug)]
pub(crate) struct Exporter {
    tree: Tree,
    cfg: NvmetExportConfig,
    owned_path: PathBuf,
    owned: Owned,
    /// The export last applied without error (skip identical reconciles).
    applied: Option<Desired>,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SimError + 'a {
    move |e| SimError::io(what, path, e)
}

impl Exporter {
    /// Opens the configfs tree; a clear error when nvmet is not there.
    pub(crate) fn open(cfg: &NvmetExportConfig, state_dir: &Path) -> Result<Self, SimError> {
        let tree = Tree::open(&cfg.configfs_root).ok_or_else(|| {
            SimError::Invalid(format!(
                "--nvmet-export: {}/nvmet/{{subsystems,ports}} not found: mount configfs there \
                 and load the nvmet and nvmet-tcp kernel modules (modprobe nvmet-tcp)",
                cfg.configfs_root.display()
            ))
        })?;
        if tree.is_plain() {
            tracing::warn!(root = %cfg.configfs_root.display(), "nvmet export on a plain directory tree (not configfs): nothing is really exported");
        }
        let owned_path = Owned::path(state_dir);
        let owned = Owned::load(&owned_path)?;
        Ok(Self {
            tree,
            cfg: cfg.clone(),
            owned_path,
            owned,
            applied: None,
        })
    }

    fn save(&self) -> Result<(), SimError> {
        self.owned.save(&self.owned_path)
    }

    /// Reconcile unless `want` is what was last applied cleanly.
    pub(crate) fn apply(&mut self, want: &Desired) -> Vec<SimError> {
        if self.applied.as_ref() == Some(want) {
            return Vec::new();
        }
        self.reconcile(want)
    }

    /// Bring configfs to `want`, touching only owned entries; every problem is returned (and
    /// the rest still done).
    pub(crate) fn reconcile(&mut self, want: &Desired) -> Vec<SimError> {
        let mut errs = Vec::new();
        self.forget_vanished();
        let good_ports = self.unlink_unwanted(want, &mut errs);
        self.remove_unwanted_subsystems(want, &mut errs);
        self.remove_unwanted_ports(want, &mut errs);
        let usable_ports: Vec<u16> = want
            .ports()
            .into_iter()
            .filter(|&p| self.ensure_port(p, good_ports.contains(&p), &mut errs))
            .collect();
        for (nqn, sub) in &want.subsystems {
            if !self.ensure_subsystem(nqn, sub, &mut errs) {
                continue;
            }
            match self.ensure_hosts(nqn, sub) {
                Ok(true) if self.cfg.allow_list.drop_on_change => {
                    // Drop connected controllers: unlink now, relinked just below.
                    for port in &sub.ports {
                        if self.tree.exists(&self.tree.link(*port, nqn)) {
                            let _ = self.tree.remove_link(*port, nqn);
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    // Not linked: an export whose access cannot be set is not offered.
                    for port in &sub.ports {
                        let _ = self.tree.remove_link(*port, nqn);
                    }
                    errs.push(e);
                    continue;
                }
            }
            for port in sub.ports.iter().filter(|p| usable_ports.contains(p)) {
                if !self.tree.exists(&self.tree.link(*port, nqn))
                    && let Err(e) = self.tree.add_link(*port, nqn)
                {
                    errs.push(SimError::io(
                        "linking into port",
                        self.tree.link(*port, nqn),
                        e,
                    ));
                }
            }
        }
        if let Err(e) = self.save() {
            errs.push(e);
        }
        self.applied = errs.is_empty().then(|| want.clone());
        for e in &errs {
            tracing::error!(error = %e, "nvmet export");
        }
        errs
    }

    /// Withdraw everything this exporter made.
    pub(crate) fn withdraw_all(&mut self) -> Vec<SimError> {
        self.reconcile(&Desired::default())
    }

    fn owns_subsystem(&self, nqn: &str) -> bool {
        self.owned.subsystems.contains_key(nqn) && self.marked(nqn)
    }

    /// The subsystem carries our mark (or, on a kernel without `attr_model`, nothing else).
    fn marked(&self, nqn: &str) -> bool {
        let dir = self.tree.subsystem(nqn);
        match self.tree.read_attr(&dir, "attr_model") {
            Some(m) => m == MODEL_MARK,
            None => !self.tree.has_attr(&dir, "attr_model"),
        }
    }

    /// Drop records of entries that are gone (a reboot of the machine, manual removal) or no
    /// longer carry our mark: those are not ours to touch any more.
    fn forget_vanished(&mut self) {
        let subs: Vec<String> = self.owned.subsystems.keys().cloned().collect();
        for nqn in subs {
            let dir = self.tree.subsystem(&nqn);
            if !self.tree.exists(&dir) {
                self.owned.subsystems.remove(&nqn);
            } else if !self.marked(&nqn) {
                tracing::warn!(%nqn, "subsystem recorded as ours has another model mark now; leaving it alone");
                self.owned.subsystems.remove(&nqn);
            }
        }
        let ports: Vec<u16> = self.owned.ports.iter().copied().collect();
        for p in ports {
            if !self.tree.exists(&self.tree.port(p)) {
                self.owned.ports.remove(&p);
            }
        }
    }

    /// Unlink our subsystems from our ports where not wanted (or where the port's address must
    /// change, which the kernel only allows on a port with no links). Returns the owned ports
    /// whose address is already right.
    fn unlink_unwanted(&mut self, want: &Desired, errs: &mut Vec<SimError>) -> Vec<u16> {
        let mut good = Vec::new();
        let ports: Vec<u16> = self.owned.ports.iter().copied().collect();
        for p in ports {
            let addr_ok = self.port_addr_ok(p);
            if addr_ok {
                good.push(p);
            }
            for nqn in self.tree.links(p) {
                if addr_ok && want.wants_link(p, &nqn) {
                    continue;
                }
                if !self.owned.subsystems.contains_key(&nqn) {
                    tracing::warn!(port = p, %nqn, "foreign subsystem linked into our port; left alone");
                    continue;
                }
                if let Err(e) = self.tree.remove_link(p, &nqn) {
                    errs.push(SimError::io("unlinking", self.tree.link(p, &nqn), e));
                }
            }
        }
        good
    }

    fn remove_unwanted_subsystems(&mut self, want: &Desired, errs: &mut Vec<SimError>) {
        let subs: Vec<String> = self.owned.subsystems.keys().cloned().collect();
        for nqn in subs
            .into_iter()
            .filter(|n| !want.subsystems.contains_key(n))
        {
            match self.remove_subsystem(&nqn) {
                Ok(()) => {
                    self.owned.subsystems.remove(&nqn);
                    tracing::info!(%nqn, "nvmet subsystem withdrawn");
                }
                Err(e) => errs.push(e),
            }
        }
    }

    fn remove_subsystem(&self, nqn: &str) -> Result<(), SimError> {
        self.clear_hosts(nqn);
        let ns = self.tree.namespace(nqn);
        if self.tree.exists(&ns) {
            // Disable first so the file is closed before the group goes.
            if self.tree.read_attr(&ns, "enable").as_deref() == Some("1") {
                self.tree
                    .write_attr(&ns, "enable", "0")
                    .map_err(io("disabling namespace", &ns))?;
            }
            self.tree
                .drop_group(&ns, &[])
                .map_err(io("removing namespace", &ns))?;
        }
        let dir = self.tree.subsystem(nqn);
        self.tree
            .drop_group(&dir, SUBSYSTEM_DEFAULT_GROUPS)
            .map_err(io("removing subsystem", &dir))
    }

    fn remove_unwanted_ports(&mut self, want: &Desired, errs: &mut Vec<SimError>) {
        let wanted = want.ports();
        let ports: Vec<u16> = self.owned.ports.iter().copied().collect();
        for p in ports.into_iter().filter(|p| !wanted.contains(p)) {
            let dir = self.tree.port(p);
            match self.tree.drop_group(&dir, PORT_DEFAULT_GROUPS) {
                Ok(()) => {
                    self.owned.ports.remove(&p);
                    tracing::info!(port = p, "nvmet port withdrawn");
                }
                Err(e) => errs.push(SimError::io("removing port", dir, e)),
            }
        }
    }

    fn port_addr_ok(&self, p: u16) -> bool {
        let dir = self.tree.port(p);
        self.tree.read_attr(&dir, "addr_traddr").as_deref() == Some(&self.cfg.traddr.to_string())
            && self.tree.read_attr(&dir, "addr_trsvcid").as_deref() == Some(&p.to_string())
            && self.tree.read_attr(&dir, "addr_trtype").as_deref() == Some("tcp")
    }

    /// Make (or fix) port `p`; false when it cannot be used (a foreign port has that id).
    fn ensure_port(&mut self, p: u16, addr_ok: bool, errs: &mut Vec<SimError>) -> bool {
        let dir = self.tree.port(p);
        let exists = self.tree.exists(&dir);
        if exists && !self.owned.ports.contains(&p) {
            errs.push(SimError::Invalid(format!(
                "nvmet port {} exists and was not made by rds-sim; disks on TCP port {p} are not exported",
                dir.display()
            )));
            return false;
        }
        if exists && addr_ok {
            return true;
        }
        if !exists {
            self.owned.ports.insert(p);
            if let Err(e) = self.save() {
                errs.push(e);
                return false;
            }
            if let Err(e) = self.tree.make_group(&dir, PORT_DEFAULT_GROUPS) {
                errs.push(SimError::io("creating port", dir, e));
                return false;
            }
        }
        let adrfam = if self.cfg.traddr.is_ipv4() {
            "ipv4"
        } else {
            "ipv6"
        };
        let traddr = self.cfg.traddr.to_string();
        for (attr, value) in [
            ("addr_trtype", "tcp"),
            ("addr_adrfam", adrfam),
            ("addr_traddr", traddr.as_str()),
            ("addr_trsvcid", &p.to_string()),
        ] {
            if let Err(e) = self.tree.write_attr(&dir, attr, value) {
                errs.push(SimError::io("configuring port", dir.join(attr), e));
                return false;
            }
        }
        tracing::info!(port = p, %traddr, "nvmet port configured");
        true
    }

    /// Make (or fix) the subsystem; false when it cannot be used.
    fn ensure_subsystem(
        &mut self,
        nqn: &str,
        want: &desired::WantedSubsystem,
        errs: &mut Vec<SimError>,
    ) -> bool {
        let dir = self.tree.subsystem(nqn);
        if self.tree.exists(&dir) && !self.owns_subsystem(nqn) {
            errs.push(SimError::Invalid(format!(
                "nvmet subsystem {nqn} exists and was not made by rds-sim; not exported"
            )));
            return false;
        }
        let r = if self.tree.exists(&dir) {
            self.fix_subsystem(nqn, want)
        } else {
            self.create_subsystem(nqn, want)
        };
        match r {
            Ok(()) => {
                self.owned
                    .subsystems
                    .insert(nqn.to_owned(), OwnedSubsystem { size: want.size });
                true
            }
            Err(e) => {
                errs.push(e);
                false
            }
        }
    }

    fn create_subsystem(
        &mut self,
        nqn: &str,
        want: &desired::WantedSubsystem,
    ) -> Result<(), SimError> {
        let dir = self.tree.subsystem(nqn);
        // Record first: a crash after the mkdir must not leave an entry we would not own.
        self.owned
            .subsystems
            .insert(nqn.to_owned(), OwnedSubsystem { size: want.size });
        self.save()?;
        self.tree
            .make_group(&dir, SUBSYSTEM_DEFAULT_GROUPS)
            .map_err(io("creating subsystem", &dir))?;
        // The mark goes on before anything can discover the subsystem (the kernel freezes the
        // model number at the first Identify).
        self.tree
            .write_attr(&dir, "attr_model", MODEL_MARK)
            .map_err(io("marking subsystem", &dir))?;
        self.tree
            .write_attr(&dir, "attr_allow_any_host", "1")
            .map_err(io("configuring subsystem", &dir))?;
        let ns = self.tree.namespace(nqn);
        self.tree
            .make_group(&ns, &[])
            .map_err(io("creating namespace", &ns))?;
        self.enable_namespace(&ns, &want.device_path)?;
        tracing::info!(%nqn, device_path = %want.device_path.display(), "nvmet subsystem exported");
        Ok(())
    }

    fn enable_namespace(&self, ns: &Path, device_path: &Path) -> Result<(), SimError> {
        let path = device_path
            .to_str()
            .ok_or_else(|| SimError::Invalid(format!("{} is not UTF-8", device_path.display())))?;
        self.tree
            .write_attr(ns, "device_path", path)
            .map_err(io("setting device_path", ns))?;
        if self.cfg.buffered_io {
            self.tree
                .write_attr(ns, "buffered_io", "1")
                .map_err(io("setting buffered_io", ns))?;
        }
        self.tree
            .write_attr(ns, "enable", "1")
            .map_err(io("enabling namespace", ns))
    }

    /// An owned subsystem: same file, enabled, and revalidated when the file grew.
    fn fix_subsystem(&self, nqn: &str, want: &desired::WantedSubsystem) -> Result<(), SimError> {
        let ns = self.tree.namespace(nqn);
        if !self.tree.exists(&ns) {
            self.tree
                .make_group(&ns, &[])
                .map_err(io("creating namespace", &ns))?;
        }
        let path_now = self.tree.read_attr(&ns, "device_path").map(PathBuf::from);
        let enabled = self.tree.read_attr(&ns, "enable").as_deref() == Some("1");
        if path_now.as_deref() != Some(want.device_path.as_path()) || !enabled {
            if enabled {
                // device_path can only change on a disabled namespace.
                self.tree
                    .write_attr(&ns, "enable", "0")
                    .map_err(io("disabling namespace", &ns))?;
            }
            return self.enable_namespace(&ns, &want.device_path);
        }
        let recorded = self.owned.subsystems.get(nqn).map(|s| s.size);
        if recorded != Some(want.size) && self.tree.has_attr(&ns, "revalidate_size") {
            // The file was resized (/disk set file-size=): make the kernel re-read its size.
            self.tree
                .write_attr(&ns, "revalidate_size", "1")
                .map_err(io("revalidating namespace size", &ns))?;
        }
        Ok(())
    }
}

/// The exporter of a running sim (none when export is off).
#[derive(Debug, Default)]
pub(crate) struct Export {
    inner: Mutex<Option<Exporter>>,
}

fn lock(m: &Mutex<Option<Exporter>>) -> MutexGuard<'_, Option<Exporter>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Export {
    /// Start-up: with export on, open configfs (an error when it is missing) and reconcile
    /// with `state`; with export off, withdraw what an earlier run left behind.
    pub(crate) fn start(
        cfg: &NvmetExportConfig,
        state_dir: &Path,
        state: &State,
        store: &Store,
    ) -> Result<Self, SimError> {
        if !cfg.enabled {
            withdraw_leftovers(cfg, state_dir);
            return Ok(Self::default());
        }
        let mut ex = Exporter::open(cfg, state_dir)?;
        let (want, warnings) = desired(state, store);
        for w in warnings {
            tracing::warn!("{w}");
        }
        ex.reconcile(&want);
        Ok(Self {
            inner: Mutex::new(Some(ex)),
        })
    }

    /// After a state change: export what the disks now ask for.
    pub(crate) fn sync(&self, state: &State, store: &Store) {
        if let Some(ex) = lock(&self.inner).as_mut() {
            let (want, warnings) = desired(state, store);
            if ex.applied.as_ref() != Some(&want) {
                for w in warnings {
                    tracing::warn!("{w}");
                }
            }
            ex.apply(&want);
        }
    }

    /// Simulated reboot: the box stops exporting while it is down.
    pub(crate) fn withdraw(&self) {
        if let Some(ex) = lock(&self.inner).as_mut() {
            ex.withdraw_all();
        }
    }
}

/// Export is off: if a previous run left exports behind (its record exists), withdraw them.
fn withdraw_leftovers(cfg: &NvmetExportConfig, state_dir: &Path) {
    let path = Owned::path(state_dir);
    if !path.exists() {
        return;
    }
    match Exporter::open(cfg, state_dir) {
        Ok(mut ex) => {
            let errs = ex.withdraw_all();
            if errs.is_empty() && ex.owned.is_empty() {
                let _ = std::fs::remove_file(&path);
            }
        }
        // nvmet not visible: nothing can be withdrawn now; keep the record for a later start.
        Err(e) => {
            tracing::warn!(error = %e, "export is off but an earlier run's nvmet export may remain")
        }
    }
}
