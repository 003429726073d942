//! Simulator configuration: where it listens, where it keeps state, and one switch for every
//! behaviour docs/routeros.md labels conflicting or assumed (with the default stated there, or —
//! where it gives none — the default chosen here and listed in the README).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use russh::keys::{PrivateKey, PublicKey};
use serde::{Deserialize, Serialize};

/// 100 GiB, the default pool size (docs/local-mode.md §7).
pub const DEFAULT_POOL_SIZE: u64 = 100 * 1024 * 1024 * 1024;

/// Everything needed to start a simulator.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Listen address; `127.0.0.1:0` in tests.
    pub listen: SocketAddr,
    /// Holds `state.json`, `files/`, `commands.log` and `host_key`.
    pub state_dir: PathBuf,
    /// Public keys that may log in (any user name).
    pub authorized_keys: Vec<PublicKey>,
    /// `None` = load or generate `<state_dir>/host_key` (stable across restarts).
    pub host_key: Option<PrivateKey>,
    /// Size of the pool `storage-pool` in bytes (its file-system total).
    pub pool_size: u64,
    /// Directories (RouterOS `/file` form, e.g. `storage-pool/metal-csi`) created at start if
    /// missing. Local mode (docs/local-mode.md §7) wants `storage-pool/metal-csi`.
    pub base_dirs: Vec<String>,
    /// Write and fsync `state.json` before replying to every change (default).
    /// Benchmarks turn it off: the file is then written behind the reply by a
    /// writer thread (still atomically; reboot and stop flush it), so the sim's
    /// own persistence does not count as RouterOS time (crate::persist).
    pub sync_state: bool,
    /// Behaviour switches.
    pub behaviour: Behaviour,
    /// NVMe/TCP export into the kernel target (nvmet over configfs); off by default.
    pub nvmet: crate::NvmetExportConfig,
}

impl SimConfig {
    /// Defaults: `127.0.0.1:0`, 100 GiB pool, no extra directories, [`Behaviour::default`].
    pub fn new(state_dir: impl Into<PathBuf>, authorized_keys: Vec<PublicKey>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_dir: state_dir.into(),
            authorized_keys,
            host_key: None,
            pool_size: DEFAULT_POOL_SIZE,
            base_dirs: Vec::new(),
            sync_state: true,
            behaviour: Behaviour::default(),
            nvmet: crate::NvmetExportConfig::default(),
        }
    }

    /// The local-mode setup (docs/local-mode.md §7): base directory `storage-pool/metal-csi` and
    /// copy-from in data-clone mode.
    pub fn local_mode(mut self) -> Self {
        self.base_dirs = vec!["storage-pool/metal-csi".to_owned()];
        self.behaviour.copy_from = CopyFromMode::DataClone;
        self
    }
}

/// docs/routeros.md §6.9: what `/disk add copy-from=` does with the file contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CopyFromMode {
    /// Generic RouterOS semantics: copy the settable properties (including export + NQN), then
    /// apply the given ones; the new file is a fresh sparse file. Default (docs/routeros.md §6.9).
    #[default]
    PropertiesOnly,
    /// Clone the source file's data (what the Go driver assumes; local mode uses it).
    DataClone,
}

/// docs/routeros.md §2.4: exit status of an exec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ExitStatusMode {
    /// 0 on success, 1 on any error (recommended default).
    #[default]
    ZeroOrOne,
    /// Always 0, even with error text.
    AlwaysZero,
    /// No `exit-status` message at all.
    Missing,
}

/// docs/routeros.md §3.2: `remove`/`set` whose `[find]` matched nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum EmptyFindMode {
    /// Silent no-op (default, INF).
    #[default]
    NoOp,
    /// `no such item`.
    NoSuchItem,
}

/// docs/routeros.md §7: parent directory of a new `file-path` missing (no known default).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MissingParentMode {
    /// Create the missing directories (chosen default: keeps simple setups working).
    #[default]
    Create,
    /// Fail with [`Texts::missing_parent`].
    Fail,
}

/// docs/routeros.md §6.5: `/disk set … file-size=` on an existing file disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SetFileSizeMode {
    /// Grow the file and `size` (default, docs/routeros.md §6.5). Shrinking is refused.
    #[default]
    Grow,
    /// Refuse with [`Texts::set_file_size`].
    Reject,
    /// Accept silently without effect.
    Ignore,
}

/// docs/routeros.md §4.12 / §7: the same NQN exported twice on the same port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DuplicateNqnMode {
    /// Refuse with [`Texts::duplicate_nqn`] (assumed default, docs/routeros.md §4.12).
    #[default]
    Reject,
    /// Allow.
    Allow,
}

/// docs/routeros.md §7 / §7.1: `file-size` larger than the pool's free space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SpaceMode {
    /// Files are sparse; creation always succeeds; space is used as data is written.
    #[default]
    Sparse,
    /// The full `file-size` must fit in free space (counted as allocated on creation).
    Strict,
}

/// docs/routeros.md §7: `/disk add` whose `file-path` already exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ExistingFileMode {
    /// Attach the existing file, keep contents; resize only if `file-size` is given (INF default).
    #[default]
    Attach,
    /// Fail with [`Texts::file_exists`].
    Fail,
}

/// docs/routeros.md §7: `/file remove` of a file that backs a live disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LiveFileRemoveMode {
    /// Delete it (the disk keeps pointing at a missing file). Default.
    #[default]
    Delete,
    /// Refuse with [`Texts::file_in_use`].
    Refuse,
}

/// docs/routeros.md §6.11: the pool's filesystem (some RDS pools run XFS; only Btrfs has
/// subvolumes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PoolFilesystem {
    /// Btrfs (default): `/disk/btrfs/...` works.
    #[default]
    Btrfs,
    /// XFS: every `/disk/btrfs/...` change answers [`Texts`]' "no btrfs filesystem" text.
    Xfs,
    /// ext4: as XFS.
    Ext4,
}

impl PoolFilesystem {
    /// The pool record's `fs=` value.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolFilesystem::Btrfs => "btrfs",
            PoolFilesystem::Xfs => "xfs",
            PoolFilesystem::Ext4 => "ext4",
        }
    }
}

/// docs/routeros.md §6.11: a slot length limit reported by one driver on 7.24 (unverified).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SlotLimit {
    /// Any length the console takes (default).
    #[default]
    None,
    /// Slots longer than 32 characters fail with [`Texts::slot_too_long`].
    #[serde(rename = "32")]
    Max32,
}

/// docs/routeros.md §6.15: a subvolume snapshot of a subvolume holding an exported disk's file
/// (unverified whether RouterOS allows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LiveSnapshotMode {
    /// Snapshot it (default; Btrfs itself allows it, crash-consistent).
    #[default]
    Allow,
    /// Refuse with [`Texts::subvolume_busy`].
    Refuse,
}

/// docs/routeros.md §3.2: print numbers of a filtered print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum NumberingMode {
    /// Position in the whole menu (what the synthesized record of docs/routeros.md §4.7 shows: `31`). Default.
    #[default]
    Global,
    /// 0..n-1 over the printed items.
    Filtered,
}

/// docs/routeros.md §4.2 / §4.7: where the flag letters of a `/disk` record sit in its
/// flags block. Flag positions on an RDS are [INF]: no real RDS capture shows
/// them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FlagLayout {
    /// The positions of the synthesized RDS records (docs/routeros.md §4.7: file disk
    /// `B   t`, pool `BM`): B (and A, E) at 0, M (F, S) at 1, X at 2, f/r at
    /// 3, t at 4, i 5, s 6, n 7, m 8, c/L/O/o 9, g/p 10. Default, so the sim
    /// prints those records byte for byte.
    #[default]
    Synthesized,
    /// One position per legend column, in legend order (X first), as the
    /// hAP ax3 capture lays out its (shorter) legend: file disk ` B    t`.
    LegendColumns,
}

impl FlagLayout {
    /// The flags block for `set` (trailing blanks trimmed, like the renderer).
    pub fn block(self, legend: &rds_routeros::Legend, set: &[char]) -> String {
        const SYNTHESIZED: [&str; 11] = [
            "BAE", "MFS", "X", "fr", "t", "i", "s", "n", "m", "cLOo", "gp",
        ];
        match self {
            FlagLayout::LegendColumns => legend.flag_block(set),
            FlagLayout::Synthesized => SYNTHESIZED
                .iter()
                .map(|col| col.chars().find(|c| set.contains(c)).unwrap_or(' '))
                .collect::<String>()
                .trim_end()
                .to_owned(),
        }
    }
}

/// docs/routeros.md §4.3: where a token longer than a line is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CutRule {
    /// Exactly at the width limit (default).
    #[default]
    AtLimit,
    /// Before the last `-` or `/` that fits.
    BeforeSeparator,
}

/// docs/routeros.md §2.1: what happens when a connection has `session_limit` channels open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SessionLimitMode {
    /// Refuse the channel open (default).
    #[default]
    Refuse,
    /// Hold the open until a channel closes.
    Block,
}

/// Error texts whose real wording is unknown (docs/routeros.md §5.2). Defaults keep
/// the substrings the Go driver classifies on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Texts {
    /// `/disk add` with an existing slot.
    pub duplicate_slot: String,
    /// Not enough space (strict mode, disk-full fault).
    pub not_enough_space: String,
    /// Same NQN already exported on the port.
    pub duplicate_nqn: String,
    /// Parent directory of `file-path` missing ([`MissingParentMode::Fail`]).
    pub missing_parent: String,
    /// `file-path` already exists ([`ExistingFileMode::Fail`]).
    pub file_exists: String,
    /// `/file remove` of a live backing file ([`LiveFileRemoveMode::Refuse`]).
    pub file_in_use: String,
    /// `/disk set file-size=` refused.
    pub set_file_size: String,
    /// Invalid regular expression in `~`.
    pub bad_regex: String,
    /// A slot longer than the limit ([`SlotLimit::Max32`]).
    pub slot_too_long: String,
    /// Subvolume snapshot of an exported disk's subvolume ([`LiveSnapshotMode::Refuse`]).
    pub subvolume_busy: String,
    /// Subvolume remove while a disk's file is inside it.
    pub subvolume_in_use: String,
    /// Subvolume remove while another subvolume is inside it.
    pub subvolume_nested: String,
    /// `parent=` names no subvolume.
    pub no_parent_subvolume: String,
    /// A write the sim would make inside a read-only subvolume.
    pub read_only: String,
}

impl Default for Texts {
    fn default() -> Self {
        Self {
            duplicate_slot: "failure: item with such name already exists".into(),
            not_enough_space: "failure: not enough space".into(),
            duplicate_nqn: "failure: nvme-tcp-server-nqn already used on this port".into(),
            missing_parent: "failure: parent directory does not exist".into(),
            file_exists: "failure: file already exists".into(),
            file_in_use: "failure: file is in use".into(),
            set_file_size: "failure: file-size can only be set when creating".into(),
            bad_regex: "failure: invalid regular expression".into(),
            slot_too_long: "failure: slot name too long (32 characters max)".into(),
            subvolume_busy: "failure: subvolume is busy".into(),
            subvolume_in_use: "failure: subvolume is in use".into(),
            subvolume_nested: "failure: subvolume has subvolumes inside".into(),
            no_parent_subvolume: "failure: no such parent subvolume".into(),
            read_only: "failure: read-only file system".into(),
        }
    }
}

/// Every behaviour switch. `Behaviour::default()` is the documented default set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Behaviour {
    /// docs/routeros.md §6.9.
    pub copy_from: CopyFromMode,
    /// docs/routeros.md §2.4.
    pub exit_status: ExitStatusMode,
    /// Output width in columns when the login has no `+w<n>` suffix (78, docs/routeros.md §4.3).
    pub width: usize,
    /// Cut rule for over-long tokens.
    pub cut_rule: CutRule,
    /// Empty `[find]` on set/remove.
    pub empty_find: EmptyFindMode,
    /// Missing parent directory on `/disk add`.
    pub missing_parent: MissingParentMode,
    /// `/disk set file-size=`.
    pub set_file_size: SetFileSizeMode,
    /// Duplicate NQN on the same port.
    pub duplicate_nqn: DuplicateNqnMode,
    /// Space accounting.
    pub space: SpaceMode,
    /// Existing backing file on `/disk add` (also a file inside a subvolume snapshot).
    pub existing_file: ExistingFileMode,
    /// Slot length limit.
    pub slot_limit: SlotLimit,
    /// Subvolume snapshot while a disk inside is exported.
    pub live_snapshot: LiveSnapshotMode,
    /// The pool's filesystem (`fs=` of the pool record; `/disk/btrfs` needs btrfs).
    pub pool_filesystem: PoolFilesystem,
    /// `/file remove` of a live backing file.
    pub live_file_remove: LiveFileRemoveMode,
    /// Print numbering of filtered prints.
    pub numbering: NumberingMode,
    /// Where flag letters sit in a `/disk` record.
    pub flag_layout: FlagLayout,
    /// Max open session channels per connection (`None` = unlimited, default).
    pub session_limit: Option<u32>,
    /// Reaction at the session limit.
    pub session_limit_mode: SessionLimitMode,
    /// RouterOS version string printed by `/system resource print`; ids are lowercase hex
    /// before 7.20 and uppercase from 7.20 on.
    pub version: String,
    /// `/system identity`.
    pub identity: String,
    /// `/system resource` board name.
    pub board_name: String,
    /// Print a space after the last token of each `/file` line (as MikroTik's documentation example
    /// does; the synthesized output of docs/routeros.md §4.9 does not). Default off.
    pub file_trailing_space: bool,
    /// Downtime of `/system reboot` (docs/routeros.md §8.9 and §10.10: an estimated 60–120 s; 90 s by default).
    pub reboot_downtime_ms: u64,
    /// Unverified error texts.
    pub texts: Texts,
    /// What the setup menus doctor reads show (`crate::setup`).
    pub setup: crate::setup::SetupMenus,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            copy_from: CopyFromMode::default(),
            exit_status: ExitStatusMode::default(),
            width: 78,
            cut_rule: CutRule::default(),
            empty_find: EmptyFindMode::default(),
            missing_parent: MissingParentMode::default(),
            set_file_size: SetFileSizeMode::default(),
            duplicate_nqn: DuplicateNqnMode::default(),
            space: SpaceMode::default(),
            existing_file: ExistingFileMode::default(),
            slot_limit: SlotLimit::default(),
            live_snapshot: LiveSnapshotMode::default(),
            pool_filesystem: PoolFilesystem::default(),
            live_file_remove: LiveFileRemoveMode::default(),
            numbering: NumberingMode::default(),
            flag_layout: FlagLayout::default(),
            session_limit: None,
            session_limit_mode: SessionLimitMode::default(),
            version: "7.16 (stable)".into(),
            identity: "RDS".into(),
            board_name: "RDS2216".into(),
            file_trailing_space: false,
            reboot_downtime_ms: 90_000,
            texts: Texts::default(),
            setup: crate::setup::SetupMenus::default(),
        }
    }
}

impl Behaviour {
    /// Ids print uppercase from 7.20 on (docs/routeros.md §3.2).
    pub fn uppercase_ids(&self) -> bool {
        let mut parts = self.version.split(|c: char| !c.is_ascii_digit());
        let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(7);
        let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        (major, minor) >= (7, 20)
    }

    /// Reboot downtime as a [`Duration`].
    pub fn reboot_downtime(&self) -> Duration {
        Duration::from_millis(self.reboot_downtime_ms)
    }
}
