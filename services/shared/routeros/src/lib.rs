//! RouterOS language layer for the RDS: typed commands, output parsers and byte-exact
//! renderers. **Pure**: no I/O, no async. Used by `rds-agent` (build commands, parse output)
//! and `rds-sim` (render output identical to RouterOS). Facts: `docs/routeros.md`.
//!
//! # Public API at a glance
//!
//! **Validated inputs** ([`types`]), each `new(..) -> Result<Self, RouterOsError>`:
//! [`Slot`] (`^[A-Za-z0-9][A-Za-z0-9-]{0,127}$`), [`PoolName`] (same rule, default
//! `storage-pool`), [`DiskPath`] (absolute, `[A-Za-z0-9._/-]`, ≤ 255 bytes;
//! [`DiskPath::file_name`] gives the `/file` form without the leading slash), [`Nqn`]
//! (`nqn.YYYY-MM.domain:name`, ≤ 223; [`Nqn::for_volume`]), [`Port`] (1..=65535),
//! [`FileSize`] (bytes > 0), [`RegexPattern`] (`contains`/`starts_with` of literal text;
//! `.` → `[.]`).
//!
//! **Commands** ([`command`]): [`Command`] enum — `DiskAddFile`, `DiskAddCopy` (each with an optional [`DiskComment`]), `SubvolumeAdd`/`SubvolumePrint`/`SubvolumeRemove`/`BtrfsFilesystemPrint` ([`btrfs`]), `DiskPrint(`
//! [`DiskSelector`]`)`, `DiskSetFileSize`, `DiskRemove`, `FilePrint(`[`FileSelector`]`)`,
//! `FileRemove`, `DiskMonitorTraffic`, `SystemResourcePrint`. `cmd.to_string()` is the exact
//! command line; [`Command::verb`] / [`Command::slot`] are for tracing spans.
//! [`round_up_mib`] rounds a requested size up to 1 MiB (docs/csi.md §5).
//!
//! **Quoting** ([`quote`]): [`quote_value`] (argument: bare if safe, else quoted),
//! [`quote_where_value`], [`quote_string`] (always quoted) — all refuse NUL, control
//! characters other than TAB/LF/CR, and non-ASCII; [`unquote`] (strict);
//! [`quote_output`] (renderer side, never fails).
//!
//! **Parsers** (never panic; `Err(RouterOsError::Device(..))` when the output is a RouterOS
//! error line, `Err(RouterOsError::Parse{..})` for text that fits no record):
//! [`parse_disk_print_detail`] → `Vec<`[`DiskRecord`]`>`,
//! [`parse_file_print_detail`] → `Vec<`[`FileRecord`]`>`,
//! [`parse_monitor_traffic`] → [`MonitorTraffic`], [`parse_singleton`] → [`Singleton`]
//! (`/system resource print`), [`parse_print_detail`] → untyped [`PrintDetail`].
//! [`classify_error`] / [`classify_error_line`] → [`DeviceError`] { [`RouterOsErrorKind`],
//! text } — run it on the output of every command (RouterOS has no error stream).
//!
//! **Renderers** (for rds-sim; [`RenderOptions`]: width 78, CRLF, [`CutRule::AtLimit`], no
//! trailing space, blank line after each record): [`render_disk_print`] (legend + records),
//! [`render_disk_record`], [`Legend`] (text, wrapping, [`Legend::flag_block`]),
//! [`render_file_print`], [`render_singleton`] + [`SingletonStyle`],
//! [`render_monitor_traffic`]. Record builders: [`DiskRecord::file_disk`],
//! [`DiskRecord::raid_pool`], [`FileRecord::regular`], [`FileRecord::directory`],
//! [`MonitorTraffic::zero`].
//!
//! **Values**: [`format_grouped`]/[`parse_grouped`] (`53 687 091 200`),
//! [`format_human_size`]/[`parse_human_size`]/[`HumanSize`] (`5120.0MiB`; parsing is exact
//! in tenths of the unit, i.e. approximate — read capacity from raw `size=`),
//! [`format_rate`]/[`parse_rate`], [`format_duration_ms`]/[`parse_duration_ms`],
//! [`LastModified`]/[`CivilDateTime`].
//!
//! One error type: [`RouterOsError`].
//!
//! # Example
//! ```
//! use rds_routeros::*;
//! let slot = Slot::new("pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8")?;
//! let cmd = Command::DiskAddFile {
//!     file_path: DiskPath::new(&format!("/storage-pool/metal-csi/{slot}.img"))?,
//!     file_size: FileSize::new(round_up_mib(1_500_000_000).unwrap_or(0))?,
//!     export: Some(NvmeExport {
//!         port: Port::NVME_TCP_DEFAULT,
//!         nqn: Nqn::for_volume(&slot),
//!         allow_hosts: None,
//!     }),
//!     slot,
//! };
//! assert!(cmd.to_string().starts_with("/disk add type=file file-path=/storage-pool/"));
//! assert_eq!(cmd.verb(), "disk add");
//! # Ok::<(), RouterOsError>(())
//! ```

pub mod allow;
pub mod btrfs;
pub mod classify;
pub mod command;
pub mod detail;
pub mod disk;
pub mod error;
pub mod file;
pub mod legend;
pub mod monitor;
pub mod quote;
pub mod singleton;
pub mod size;
pub mod system;
pub mod time;
pub mod types;
pub mod wrap;

pub use allow::{
    ALLOW_HOST_PROPERTY, ALLOW_LIST_SEPARATOR, AllowHosts, HostNqn, NO_HOST_NQN, parse_allow_hosts,
};
pub use btrfs::{
    FilesystemRecord, SUBVOLUME_LEGEND, SubvolumeName, SubvolumeRecord,
    parse_filesystem_print_detail, parse_subvolume_print_detail, render_filesystem_print,
    render_subvolume_print,
};
pub use classify::{DeviceError, Position, RouterOsErrorKind, classify_error, classify_error_line};
pub use command::{
    BATCH_END, Command, CopyExport, DiskComment, DiskSelector, FileSelector, InfoPrint, NvmeExport,
    SubvolumeSelector, split_batch,
};
pub use detail::{PrintDetail, Prop, RawRecord, parse_print_detail};
pub use disk::{
    DISK_ORDER, DiskRecord, parse_disk_print_detail, render_disk_print, render_disk_record,
};
pub use error::RouterOsError;
pub use file::{FileRecord, parse_file_print_detail, render_file_print};
pub use legend::{HAP_AX3_LEGEND, Legend, ROSE_STORAGE_LEGEND};
pub use monitor::{MonitorTraffic, parse_monitor_traffic, render_monitor_traffic};
pub use quote::{quote_output, quote_string, quote_value, quote_where_value, unquote};
pub use rds_ids::MANAGED_NQN_PREFIX;
pub use singleton::{Singleton, SingletonStyle, parse_singleton, render_singleton};
pub use size::{
    HumanSize, format_duration_ms, format_grouped, format_human_size, format_rate,
    parse_duration_ms, parse_grouped, parse_human_size, parse_rate, round_up_mib,
};
pub use system::{
    ActiveUserRecord, PackageRecord, ServiceRecord, parse_active_user_print, parse_package_print,
    parse_service_print, render_active_user_print, render_package_print, render_service_print,
};
pub use time::{CivilDateTime, LastModified};
pub use types::{DiskPath, FileSize, Nqn, PoolName, Port, RegexPattern, Slot};
pub use wrap::{CutRule, LineEnding, RenderOptions, pack_tokens};
