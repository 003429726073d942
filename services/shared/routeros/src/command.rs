//! Typed RouterOS commands (every command the driver sends, docs/routeros.md §6) rendered to exact
//! command text.
//!
//! All parts are validated newtypes whose character sets are legal bare tokens; the few values
//! that are always quoted (`where name="..."`, `where slot~"..."`, `mount-point="..."`) go
//! through [`crate::quote_string`]'s escaper, which has nothing to escape for validated input.

use std::fmt;

use crate::btrfs::SubvolumeName;
use crate::error::{RouterOsError, invalid, shorten};
use crate::quote::quote_output;
use crate::types::{DiskPath, FileSize, Nqn, PoolName, Port, RegexPattern, Slot};

/// A `/disk` item's `comment` (the driver's ownership tag): printable ASCII from
/// `[A-Za-z0-9 ._/:=,-]`, 1..=255 bytes, so the quoted form has nothing to escape and the
/// `;;;` line it prints as stays one line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DiskComment(String);

impl DiskComment {
    /// Validate a comment.
    pub fn new(s: &str) -> Result<Self, RouterOsError> {
        const WHAT: &str = "disk comment";
        if s.is_empty() || s.len() > 255 {
            return Err(invalid(
                WHAT,
                format!("must be 1..=255 bytes: {}", shorten(s)),
            ));
        }
        if !s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '_' | '/' | ':' | '=' | ',' | '-')
        }) {
            return Err(invalid(
                WHAT,
                format!("only [A-Za-z0-9 ._/:=,-] allowed: {}", shorten(s)),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The validated text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which subvolumes `/disk/btrfs/subvolume print detail where ...` selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubvolumeSelector {
    /// `where name="<name>"`.
    Name(SubvolumeName),
    /// `where name~"<regex>"`.
    NameMatches(RegexPattern),
    /// `where parent="<name>"` (snapshots made from it).
    Parent(SubvolumeName),
}

impl fmt::Display for SubvolumeSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubvolumeSelector::Name(n) => write!(f, "name={}", quote_output(n.as_str())),
            SubvolumeSelector::NameMatches(re) => write!(f, "name~{}", quote_output(re.as_str())),
            SubvolumeSelector::Parent(n) => write!(f, "parent={}", quote_output(n.as_str())),
        }
    }
}

/// The NVMe/TCP export arguments of `/disk add` (`nvme-tcp-export=yes` + port + NQN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvmeExport {
    /// `nvme-tcp-server-port=`
    pub port: Port,
    /// `nvme-tcp-server-nqn=`
    pub nqn: Nqn,
    /// `nvme-tcp-server-allow-host-name="<hosts>"` when `Some` (storage fencing: a volume is
    /// created already closed, [`crate::allow::AllowHosts::nobody`]); `None` says nothing,
    /// i.e. the RouterOS default (any host) or, for a copy, whatever copy-from copies.
    pub allow_hosts: Option<crate::allow::AllowHosts>,
}

/// Export arguments of a `copy-from` add. Copy-from copies the source's
/// properties (docs/routeros.md §6.9), so "say nothing" would inherit the source's
/// export *and its NQN*; a snapshot therefore says `Disabled` explicitly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyExport {
    /// No export arguments (whatever copy-from copies).
    Inherit,
    /// `nvme-tcp-export=no`
    Disabled,
    /// `nvme-tcp-export=yes nvme-tcp-server-port=.. nvme-tcp-server-nqn=..`
    Enabled(NvmeExport),
}

/// Which disks `/disk print detail where ...` selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskSelector {
    /// `where slot=<slot>` (exact).
    Slot(Slot),
    /// `where slot~"<regex>"` (unanchored POSIX regex).
    SlotMatches(RegexPattern),
    /// `where mount-point="<pool>"` (the pool record, GetCapacity).
    MountPoint(PoolName),
    /// `where nvme-tcp-server-nqn="<nqn>"` (who already exports this NQN).
    Nqn(Nqn),
    /// No `where`: every disk (listing; callers filter by layout).
    All,
    /// `where <a> || <b> || ...` (RouterOS scripting's logical OR): one
    /// round trip for "this slot, or whoever already exports this NQN".
    /// Nested `All`/`Any` are not allowed (see [`DiskSelector::any`]).
    Any(Vec<DiskSelector>),
}

impl DiskSelector {
    /// `a || b || ...` of plain selectors; `None` when `parts` is empty or
    /// holds `All`/`Any` (which have no `where` form to combine).
    pub fn any(parts: Vec<DiskSelector>) -> Option<DiskSelector> {
        let plain = |d: &DiskSelector| !matches!(d, DiskSelector::All | DiskSelector::Any(_));
        (!parts.is_empty() && parts.iter().all(plain)).then_some(DiskSelector::Any(parts))
    }

    fn write_condition(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskSelector::Slot(slot) => write!(f, "slot={slot}"),
            DiskSelector::SlotMatches(re) => write!(f, "slot~{}", quote_output(re.as_str())),
            DiskSelector::MountPoint(pool) => {
                write!(f, "mount-point={}", quote_output(pool.as_str()))
            }
            DiskSelector::Nqn(nqn) => {
                write!(f, "nvme-tcp-server-nqn={}", quote_output(nqn.as_str()))
            }
            DiskSelector::All => Ok(()),
            DiskSelector::Any(parts) => {
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" || ")?;
                    }
                    p.write_condition(f)?;
                }
                Ok(())
            }
        }
    }
}

/// Which files `/file print detail where ...` selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSelector {
    /// `where name="<path without leading slash>"`.
    Name(DiskPath),
    /// `where name~"<regex>"`.
    NameMatches(RegexPattern),
    /// `where <a> || <b> || ...` (one round trip over several base paths).
    Any(Vec<FileSelector>),
}

impl FileSelector {
    fn write_condition(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileSelector::Name(path) => write!(f, "name={}", quote_output(path.file_name())),
            FileSelector::NameMatches(re) => write!(f, "name~{}", quote_output(re.as_str())),
            FileSelector::Any(parts) => {
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" || ")?;
                    }
                    p.write_condition(f)?;
                }
                Ok(())
            }
        }
    }
}

/// The setup prints `rdsctl doctor` reads (parsers in [`crate::system`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoPrint {
    /// `/system package print detail`
    Packages,
    /// `/ip service print detail where name=ssh`
    SshService,
    /// `/user active print detail`
    ActiveUsers,
}

impl InfoPrint {
    /// Menu + action, for tracing spans.
    pub fn verb(self) -> &'static str {
        match self {
            InfoPrint::Packages => "system package print",
            InfoPrint::SshService => "ip service print",
            InfoPrint::ActiveUsers => "user active print",
        }
    }

    /// The exact command line (fixed text: nothing from the caller reaches it).
    pub fn command_line(self) -> &'static str {
        match self {
            InfoPrint::Packages => "/system package print detail",
            InfoPrint::SshService => "/ip service print detail where name=ssh",
            InfoPrint::ActiveUsers => "/user active print detail",
        }
    }
}

/// The line `:put` prints after every part of a [`Command::Batch`]. Seeing
/// it proves the part before it was printed in full: a reply cut at a record
/// boundary (which parses fine) lacks it, so "legend only = no such disk" is
/// believed only when this line follows.
pub const BATCH_END: &str = "rds-csi:end";

/// Splits the output of a [`Command::Batch`] of `parts` commands into the
/// output of each part. Fails unless every part is followed by its
/// [`BATCH_END`] line and nothing but blank lines follows the last one.
pub fn split_batch(text: &str, parts: usize) -> Result<Vec<&str>, crate::RouterOsError> {
    let incomplete = |reason: String| crate::RouterOsError::Parse { line: 0, reason };
    let mut out = Vec::with_capacity(parts);
    let mut start = 0;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let end = pos + line.len();
        if line.trim_end_matches(['\r', '\n']) == BATCH_END {
            if out.len() == parts {
                return Err(incomplete("more end markers than commands".into()));
            }
            out.push(&text[start..pos]);
            start = end;
        }
        pos = end;
    }
    if out.len() != parts {
        return Err(incomplete(format!(
            "{} of {parts} end markers (output cut short?)",
            out.len()
        )));
    }
    if !text[start..].trim().is_empty() {
        return Err(incomplete("output after the last end marker".into()));
    }
    Ok(out)
}

/// A RouterOS command the driver sends. Build it from validated parts; `to_string()` gives the
/// exact command line (no trailing newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/disk add type=file file-path=<path> file-size=<bytes> slot=<slot>
    /// [nvme-tcp-export=yes nvme-tcp-server-port=<port> nvme-tcp-server-nqn=<nqn>]`
    DiskAddFile {
        /// Backing file.
        file_path: DiskPath,
        /// Size in bytes (plain digits).
        file_size: FileSize,
        /// New slot.
        slot: Slot,
        /// Export arguments, if the disk is exported.
        export: Option<NvmeExport>,
        /// `comment="<text>"` (ownership tag) when `Some`.
        comment: Option<DiskComment>,
    },
    /// `/disk add type=file copy-from=[find slot=<source>] file-path=<path> [file-size=<bytes>]
    /// slot=<slot> [nvme export args]` (snapshot create / restore, docs/routeros.md §6.9).
    DiskAddCopy {
        /// Slot to copy from.
        source: Slot,
        /// Backing file of the new disk.
        file_path: DiskPath,
        /// Optional new size.
        file_size: Option<FileSize>,
        /// New slot.
        slot: Slot,
        /// Export arguments of the new disk.
        export: CopyExport,
        /// `comment="<text>"` when `Some` (else copy-from copies the source's).
        comment: Option<DiskComment>,
    },
    /// `/disk add type=file file-path=<path> slot=<slot> [nvme export args] [comment=".."]`
    /// without `file-size`: makes a disk of a file that already exists (a restored or cloned
    /// Btrfs subvolume brings its `volume.img` along). Whether RouterOS adopts the file and
    /// keeps its data is UNVERIFIED (docs/decisions.md §13).
    DiskAddExisting {
        /// The existing backing file.
        file_path: DiskPath,
        /// New slot.
        slot: Slot,
        /// Export arguments, if the disk is exported.
        export: Option<NvmeExport>,
        /// `comment="<text>"` when `Some`.
        comment: Option<DiskComment>,
    },
    /// `/disk print detail where ...`
    DiskPrint(DiskSelector),
    /// `/disk set [find slot=<slot>] file-size=<bytes>`
    DiskSetFileSize {
        /// Disk to resize.
        slot: Slot,
        /// New size in bytes.
        file_size: FileSize,
    },
    /// `/disk set [find slot=<slot>] nvme-tcp-server-allow-host-name="<hosts>"` (storage
    /// fencing; value format assumed in [`crate::allow`]).
    DiskSetAllowHosts {
        /// Disk whose export is fenced.
        slot: Slot,
        /// The hosts admitted (or any host).
        hosts: crate::allow::AllowHosts,
    },
    /// `/disk remove [find slot=<slot>]` (does NOT delete the backing file, docs/routeros.md §6.6).
    DiskRemove {
        /// Disk to remove.
        slot: Slot,
    },
    /// `/file print detail where ...`
    FilePrint(FileSelector),
    /// `/file remove [find name="<path without leading slash>"]`
    FileRemove {
        /// File to remove (rendered in `/file` form, without the leading slash).
        path: DiskPath,
    },
    /// `/disk monitor-traffic <slot> once`
    DiskMonitorTraffic {
        /// Disk (or pool) slot.
        slot: Slot,
    },
    /// `/system resource print` (probe).
    SystemResourcePrint,
    /// `/disk/btrfs/subvolume/add fs=<pool> name=<name> [parent=<name>] [read-only=yes]`
    /// (with a parent: a snapshot of it, copy-on-write).
    SubvolumeAdd {
        /// The Btrfs filesystem's label (the pool).
        fs: PoolName,
        /// New subvolume, relative to the filesystem's mount.
        name: SubvolumeName,
        /// Snapshot of this subvolume when `Some`.
        parent: Option<SubvolumeName>,
        /// `read-only=yes`.
        read_only: bool,
    },
    /// `/disk/btrfs/subvolume/print detail where ...`
    SubvolumePrint(SubvolumeSelector),
    /// `/disk/btrfs/subvolume/remove [find where name="<name>"]` (removes its files too).
    SubvolumeRemove {
        /// Subvolume to remove.
        name: SubvolumeName,
    },
    /// `/disk/btrfs/filesystem/print detail`
    BtrfsFilesystemPrint,
    /// A read-only print of the box's setup ([`InfoPrint`], `rdsctl doctor`).
    InfoPrint(InfoPrint),
    /// Several reads in one exec (one round trip): `<a>; :put "rds-csi:end";
    /// <b>; :put "rds-csi:end"` ([`BATCH_END`], [`split_batch`]). Reads only.
    Batch(Vec<Command>),
}

impl Command {
    /// Menu + action, for tracing spans: `"disk add"`, `"disk print"`, `"disk set"`,
    /// `"disk remove"`, `"disk monitor-traffic"`, `"file print"`, `"file remove"`,
    /// `"system resource print"`.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::DiskAddFile { .. }
            | Command::DiskAddCopy { .. }
            | Command::DiskAddExisting { .. } => "disk add",
            Command::DiskPrint(_) => "disk print",
            Command::DiskSetFileSize { .. } | Command::DiskSetAllowHosts { .. } => "disk set",
            Command::DiskRemove { .. } => "disk remove",
            Command::FilePrint(_) => "file print",
            Command::FileRemove { .. } => "file remove",
            Command::DiskMonitorTraffic { .. } => "disk monitor-traffic",
            Command::SubvolumeAdd { .. } => "btrfs subvolume add",
            Command::SubvolumePrint(_) => "btrfs subvolume print",
            Command::SubvolumeRemove { .. } => "btrfs subvolume remove",
            Command::BtrfsFilesystemPrint => "btrfs filesystem print",
            Command::SystemResourcePrint => "system resource print",
            Command::InfoPrint(p) => p.verb(),
            Command::Batch(parts) => parts.first().map_or("batch", Command::verb),
        }
    }

    /// The slot the command is about, for tracing spans (`None` for file, regex and system
    /// commands). For `DiskAddCopy` it is the *new* slot.
    pub fn slot(&self) -> Option<&Slot> {
        match self {
            Command::DiskAddFile { slot, .. }
            | Command::DiskAddCopy { slot, .. }
            | Command::DiskAddExisting { slot, .. }
            | Command::DiskSetFileSize { slot, .. }
            | Command::DiskSetAllowHosts { slot, .. }
            | Command::DiskRemove { slot }
            | Command::DiskMonitorTraffic { slot }
            | Command::DiskPrint(DiskSelector::Slot(slot)) => Some(slot),
            Command::DiskPrint(DiskSelector::Any(parts)) => parts.iter().find_map(|p| match p {
                DiskSelector::Slot(s) => Some(s),
                _ => None,
            }),
            Command::Batch(parts) => parts.first().and_then(Command::slot),
            _ => None,
        }
    }

    /// True for commands that change state (`add`, `set`, `remove`).
    pub fn is_mutating(&self) -> bool {
        if let Command::Batch(parts) = self {
            return parts.iter().any(Command::is_mutating);
        }
        matches!(
            self,
            Command::DiskAddFile { .. }
                | Command::DiskAddCopy { .. }
                | Command::DiskAddExisting { .. }
                | Command::DiskSetFileSize { .. }
                | Command::DiskSetAllowHosts { .. }
                | Command::DiskRemove { .. }
                | Command::FileRemove { .. }
                | Command::SubvolumeAdd { .. }
                | Command::SubvolumeRemove { .. }
        )
    }
}

fn write_comment(f: &mut fmt::Formatter<'_>, comment: &Option<DiskComment>) -> fmt::Result {
    match comment {
        Some(c) => write!(f, " comment={}", quote_output(c.as_str())),
        None => Ok(()),
    }
}

fn write_export(f: &mut fmt::Formatter<'_>, export: &Option<NvmeExport>) -> fmt::Result {
    if let Some(e) = export {
        write!(
            f,
            " nvme-tcp-export=yes nvme-tcp-server-port={} nvme-tcp-server-nqn={}",
            e.port, e.nqn
        )?;
        if let Some(hosts) = &e.allow_hosts {
            write!(
                f,
                " {}={}",
                crate::allow::ALLOW_HOST_PROPERTY,
                quote_output(&hosts.value())
            )?;
        }
    }
    Ok(())
}

/// Renders the `copy-from` form of `/disk add` (`Command::DiskAddCopy`).
fn write_disk_add_copy(
    f: &mut fmt::Formatter<'_>,
    source: &Slot,
    file_path: &impl fmt::Display,
    file_size: &Option<FileSize>,
    slot: &Slot,
    export: &CopyExport,
    comment: &Option<DiskComment>,
) -> fmt::Result {
    write!(
        f,
        "/disk add type=file copy-from=[find slot={source}] file-path={file_path}"
    )?;
    if let Some(size) = file_size {
        write!(f, " file-size={size}")?;
    }
    write!(f, " slot={slot}")?;
    match export {
        CopyExport::Inherit => {}
        CopyExport::Disabled => write!(f, " nvme-tcp-export=no")?,
        CopyExport::Enabled(e) => write_export(f, &Some(e.clone()))?,
    }
    write_comment(f, comment)
}

/// Renders `/disk/btrfs/subvolume/add` (`Command::SubvolumeAdd`).
fn write_subvolume_add(
    f: &mut fmt::Formatter<'_>,
    fs: &impl fmt::Display,
    name: &impl fmt::Display,
    parent: &Option<impl fmt::Display>,
    read_only: bool,
) -> fmt::Result {
    write!(f, "/disk/btrfs/subvolume/add fs={fs} name={name}")?;
    if let Some(p) = parent {
        write!(f, " parent={p}")?;
    }
    if read_only {
        f.write_str(" read-only=yes")?;
    }
    Ok(())
}

/// Renders a batch: each command followed by a `:put` of the end marker, so the reply
/// can be split per command.
fn write_batch(f: &mut fmt::Formatter<'_>, parts: &[Command]) -> fmt::Result {
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            f.write_str("; ")?;
        }
        write!(f, "{p}; :put {}", quote_output(BATCH_END))?;
    }
    Ok(())
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::DiskAddFile {
                file_path,
                file_size,
                slot,
                export,
                comment,
            } => {
                write!(
                    f,
                    "/disk add type=file file-path={file_path} file-size={file_size} slot={slot}"
                )?;
                write_export(f, export)?;
                write_comment(f, comment)
            }
            Command::DiskAddCopy {
                source,
                file_path,
                file_size,
                slot,
                export,
                comment,
            } => write_disk_add_copy(f, source, file_path, file_size, slot, export, comment),
            Command::DiskAddExisting {
                file_path,
                slot,
                export,
                comment,
            } => {
                write!(f, "/disk add type=file file-path={file_path} slot={slot}")?;
                write_export(f, export)?;
                write_comment(f, comment)
            }
            Command::DiskPrint(DiskSelector::All) => f.write_str("/disk print detail"),
            Command::DiskPrint(sel) => {
                f.write_str("/disk print detail where ")?;
                sel.write_condition(f)
            }
            Command::DiskSetFileSize { slot, file_size } => {
                write!(f, "/disk set [find slot={slot}] file-size={file_size}")
            }
            Command::DiskSetAllowHosts { slot, hosts } => write!(
                f,
                "/disk set [find slot={slot}] {}={}",
                crate::allow::ALLOW_HOST_PROPERTY,
                quote_output(&hosts.value())
            ),
            Command::DiskRemove { slot } => write!(f, "/disk remove [find slot={slot}]"),
            Command::FilePrint(sel) => {
                f.write_str("/file print detail where ")?;
                sel.write_condition(f)
            }
            Command::FileRemove { path } => write!(
                f,
                "/file remove [find name={}]",
                quote_output(path.file_name())
            ),
            Command::DiskMonitorTraffic { slot } => {
                write!(f, "/disk monitor-traffic {slot} once")
            }
            Command::SystemResourcePrint => f.write_str("/system resource print"),
            Command::SubvolumeAdd {
                fs,
                name,
                parent,
                read_only,
            } => write_subvolume_add(f, fs, name, parent, *read_only),
            Command::SubvolumePrint(sel) => {
                write!(f, "/disk/btrfs/subvolume/print detail where {sel}")
            }
            Command::SubvolumeRemove { name } => write!(
                f,
                "/disk/btrfs/subvolume/remove [find where name={}]",
                quote_output(name.as_str())
            ),
            Command::BtrfsFilesystemPrint => f.write_str("/disk/btrfs/filesystem/print detail"),
            Command::InfoPrint(p) => f.write_str(p.command_line()),
            Command::Batch(parts) => write_batch(f, parts),
        }
    }
}
