//! An in-memory RDS behind [`Transport`], kept only for what rds-sim cannot
//! do: answer a command that took effect with arbitrary non-RouterOS text
//! (exit status 0) or with an odd exit status straight from the transport
//! (`volumes::tests::garbled_or_wrong_exit_status_after_effect_still_succeed`).
//! Every other unit test runs against rds-sim in-process over real SSH
//! ([`crate::sim_rds::SimRds`]). It acts on the typed [`Command`] (no second
//! parser) and answers with text rendered by rds-routeros.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use rds_routeros::{
    CivilDateTime, Command, CopyExport, DiskPath, DiskRecord, DiskSelector, FileRecord,
    FileSelector, FileSize, LastModified, Legend, NvmeExport, RenderOptions, SingletonStyle, Slot,
    render_disk_print, render_file_print, render_singleton,
};

use crate::error::AgentError;
use crate::executor::Executor;
use crate::metrics::Metrics;
use crate::pool::Transport;
use crate::ssh::RawOutput;

#[derive(Debug, Clone)]
pub enum FakeFault {
    /// Runs, then answers with garbage and exit 0.
    GarbleAfterEffect,
    /// Runs, answers normally but with this exit status.
    ExitStatus(u32),
}

#[derive(Default)]
struct State {
    disks: BTreeMap<String, DiskRecord>,
    files: BTreeMap<String, (u64, LastModified)>,
    log: Vec<String>,
    clock: i64,
}

pub struct FakeRds {
    state: Mutex<State>,
    faults: Mutex<VecDeque<(&'static str, FakeFault)>>,
    pub pool_size: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn ok(stdout: String) -> Result<RawOutput, AgentError> {
    Ok(RawOutput {
        stdout,
        stderr: String::new(),
        exit_status: Some(0),
    })
}

fn failure(text: &str) -> Result<RawOutput, AgentError> {
    Ok(RawOutput {
        stdout: format!("{text}\r\n"),
        stderr: String::new(),
        exit_status: Some(1),
    })
}

/// The fake's reading of a `where` (literal regexes only: `^`, `[.]`).
fn disk_matches(d: &DiskRecord, sel: &DiskSelector) -> bool {
    match sel {
        DiskSelector::Slot(slot) => d.slot.as_deref() == Some(slot.as_str()),
        DiskSelector::All => true,
        DiskSelector::Nqn(nqn) => d.nvme_tcp_server_nqn.as_deref() == Some(nqn.as_str()),
        DiskSelector::SlotMatches(re) => {
            let lit = re.as_str().trim_start_matches('^').replace("[.]", ".");
            d.slot.as_deref().is_some_and(|x| x.contains(&lit))
        }
        DiskSelector::MountPoint(_) => false,
        DiskSelector::Any(parts) => parts.iter().any(|p| disk_matches(d, p)),
    }
}

fn file_matches(name: &str, sel: &FileSelector) -> bool {
    match sel {
        FileSelector::Name(p) => name == p.file_name(),
        FileSelector::NameMatches(re) => {
            let prefix = re.as_str().trim_start_matches('^').replace("[.]", ".");
            name.starts_with(&prefix)
        }
        FileSelector::Any(parts) => parts.iter().any(|p| file_matches(name, p)),
    }
}

/// `/disk add type=file`: a new file disk and its file; refused if the slot is taken.
fn add_file_disk(
    s: &mut State,
    legend: &Legend,
    file_path: &DiskPath,
    file_size: FileSize,
    slot: &Slot,
    export: Option<&NvmeExport>,
) -> Result<RawOutput, AgentError> {
    if s.disks.contains_key(slot.as_str()) {
        return failure("failure: item with such name already exists");
    }
    let nqn = export.map(|e| e.nqn.to_string());
    let exp = export.zip(nqn.as_deref()).map(|(e, n)| (e.port.get(), n));
    let d = DiskRecord::file_disk(
        legend,
        slot.as_str(),
        file_path.as_str(),
        file_size.bytes(),
        exp,
    );
    s.disks.insert(slot.to_string(), d);
    let lm = FakeRds::tick(s);
    s.files
        .insert(file_path.file_name().to_owned(), (file_size.bytes(), lm));
    ok(String::new())
}

/// `/disk add copy-from=`: a copy of the source disk, inheriting its export unless told.
fn add_copy_disk(
    s: &mut State,
    legend: &Legend,
    source: &Slot,
    file_path: &DiskPath,
    file_size: Option<FileSize>,
    slot: &Slot,
    export: &CopyExport,
) -> Result<RawOutput, AgentError> {
    if s.disks.contains_key(slot.as_str()) {
        return failure("failure: item with such name already exists");
    }
    let Some(src) = s.disks.get(source.as_str()).cloned() else {
        return failure("no such item");
    };
    let size = file_size
        .map(|f| f.bytes())
        .unwrap_or(src.size.unwrap_or(0));
    // Copy-from copies properties: Inherit keeps the source's
    // export (and NQN), like real RouterOS would.
    let inherited = src.nvme_tcp_export.filter(|on| *on).and(
        src.nvme_tcp_server_port
            .zip(src.nvme_tcp_server_nqn.clone()),
    );
    let exp_owned: Option<(u16, String)> = match export {
        CopyExport::Inherit => inherited,
        CopyExport::Disabled => None,
        CopyExport::Enabled(e) => Some((e.port.get(), e.nqn.to_string())),
    };
    let exp = exp_owned.as_ref().map(|(p, n)| (*p, n.as_str()));
    let d = DiskRecord::file_disk(legend, slot.as_str(), file_path.as_str(), size, exp);
    s.disks.insert(slot.to_string(), d);
    let lm = FakeRds::tick(s);
    s.files.insert(file_path.file_name().to_owned(), (size, lm));
    ok(String::new())
}

/// `/file print detail where ...` over the fake's files.
fn file_print(s: &State, sel: &FileSelector, opts: &RenderOptions) -> String {
    let names: Vec<String> = s
        .files
        .keys()
        .filter(|n| file_matches(n, sel))
        .cloned()
        .collect();
    let recs: Vec<FileRecord> = names
        .iter()
        .filter_map(|n| {
            s.files
                .get(n)
                .map(|(size, lm)| FileRecord::regular(n, *size, lm.clone()))
        })
        .collect();
    render_file_print(&recs, opts)
}

impl FakeRds {
    pub fn new() -> Arc<FakeRds> {
        Arc::new(FakeRds {
            state: Mutex::new(State {
                clock: 1_760_000_000,
                ..State::default()
            }),
            faults: Mutex::new(VecDeque::new()),
            pool_size: 100 << 30,
        })
    }

    /// The next command whose verb is `verb` gets `fault` (FIFO).
    pub fn fault(&self, verb: &'static str, fault: FakeFault) {
        lock(&self.faults).push_back((verb, fault));
    }

    pub fn log(&self) -> Vec<String> {
        lock(&self.state).log.clone()
    }

    fn tick(s: &mut State) -> LastModified {
        s.clock += 1;
        LastModified::from_civil(CivilDateTime::from_unix_seconds(s.clock).unwrap_or(
            CivilDateTime {
                year: 2025,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0,
            },
        ))
    }

    /// Applies a command; returns its normal output.
    fn apply(&self, cmd: &Command) -> Result<RawOutput, AgentError> {
        if let Command::Batch(parts) = cmd {
            let mut out = String::new();
            for p in parts {
                let o = self.apply(p)?;
                out.push_str(&o.stdout);
                out.push_str(rds_routeros::BATCH_END);
                out.push_str("\r\n");
            }
            return ok(out);
        }
        let mut s = lock(&self.state);
        let legend = Legend::rose_storage();
        let opts = RenderOptions::default();
        match cmd {
            Command::DiskAddFile {
                file_path,
                file_size,
                slot,
                export,
                ..
            } => add_file_disk(
                &mut s,
                &legend,
                file_path,
                *file_size,
                slot,
                export.as_ref(),
            ),
            Command::DiskAddCopy {
                source,
                file_path,
                file_size,
                slot,
                export,
                ..
            } => add_copy_disk(&mut s, &legend, source, file_path, *file_size, slot, export),
            Command::DiskPrint(sel) => ok(self.disk_print(&s, &legend, sel, &opts)),
            Command::DiskSetFileSize { slot, file_size } => {
                let Some(d) = s.disks.get_mut(slot.as_str()) else {
                    return ok(String::new());
                };
                d.size = Some(file_size.bytes());
                d.file_size = Some(rds_routeros::HumanSize::from_bytes(file_size.bytes()));
                ok(String::new())
            }
            Command::DiskSetAllowHosts { slot, hosts } => {
                if let Some(d) = s.disks.get_mut(slot.as_str()) {
                    d.nvme_tcp_server_allow_host_name = Some(hosts.value());
                }
                ok(String::new())
            }
            Command::DiskRemove { slot } => {
                s.disks.remove(slot.as_str());
                ok(String::new())
            }
            Command::FilePrint(sel) => ok(file_print(&s, sel, &opts)),
            Command::FileRemove { path } => {
                s.files.remove(path.file_name());
                ok(String::new())
            }
            Command::DiskMonitorTraffic { .. } => failure("bad command name monitor-traffic"),
            Command::Batch(_) => failure("nested batch"),
            Command::InfoPrint(_) => failure("bad command name"),
            // No Btrfs here: prints list nothing, changes fail like a
            // pool without a Btrfs filesystem.
            Command::SubvolumePrint(_) => ok(rds_routeros::render_subvolume_print(&[], &opts)),
            Command::BtrfsFilesystemPrint => ok(String::new()),
            Command::SubvolumeAdd { .. }
            | Command::SubvolumeRemove { .. }
            | Command::DiskAddExisting { .. } => {
                failure("failure: no btrfs filesystem storage-pool")
            }
            Command::SystemResourcePrint => ok(render_singleton(
                &[("version".to_owned(), "7.16 (stable)".to_owned())],
                &SingletonStyle::default(),
            )),
        }
    }

    /// `/disk print detail [where ...]`; a mount-point selector prints the pool's RAID
    /// disk with its free space.
    fn disk_print(
        &self,
        s: &State,
        legend: &Legend,
        sel: &DiskSelector,
        opts: &RenderOptions,
    ) -> String {
        let recs: Vec<DiskRecord> = match sel {
            DiskSelector::MountPoint(pool) => {
                let used: u64 = s.disks.values().filter_map(|d| d.size).sum();
                let free = self.pool_size.saturating_sub(used);
                vec![DiskRecord::raid_pool(
                    legend,
                    pool.as_str(),
                    self.pool_size,
                    free,
                    5,
                )]
            }
            sel => s
                .disks
                .values()
                .filter(|d| disk_matches(d, sel))
                .cloned()
                .collect(),
        };
        let recs: Vec<DiskRecord> = recs
            .into_iter()
            .enumerate()
            .map(|(i, mut d)| {
                d.number = u32::try_from(i).ok();
                d
            })
            .collect();
        render_disk_print(legend, &recs, opts)
    }

    /// An executor (with metrics) over this fake.
    pub fn executor(self: &Arc<Self>) -> Arc<Executor> {
        let t: Arc<dyn Transport> = self.clone();
        Arc::new(Executor::new(
            t,
            Metrics::new("fake:22"),
            std::time::Duration::from_secs(5),
        ))
    }
}

impl Transport for FakeRds {
    fn exec<'a>(
        &'a self,
        cmd: &'a Command,
        text: &'a str,
        _budget: std::time::Duration,
    ) -> BoxFuture<'a, Result<RawOutput, AgentError>> {
        lock(&self.state).log.push(text.to_owned());
        let fault = {
            let mut f = lock(&self.faults);
            match f.iter().position(|(v, _)| *v == cmd.verb()) {
                Some(i) => f.remove(i).map(|(_, x)| x),
                None => None,
            }
        };
        let res = match fault {
            None => self.apply(cmd),
            Some(FakeFault::GarbleAfterEffect) => self.apply(cmd).map(|mut o| {
                o.stdout = format!("\u{1b}[31m{}#garbage#", o.stdout);
                o
            }),
            Some(FakeFault::ExitStatus(n)) => self.apply(cmd).map(|mut o| {
                o.exit_status = Some(n);
                o
            }),
        };
        Box::pin(async move { res })
    }

    fn describe(&self) -> String {
        "fake".into()
    }

    fn is_down(&self) -> bool {
        false
    }
}
