//! `/disk print detail`: typed records, parser and byte-exact renderer (docs/routeros.md §4.7, §4.8).
//!
//! Capacity comes from the raw grouped `size=` / `free=` (exact bytes), never from the human
//! `file-size=` (rounded to 0.1 unit, docs/csi.md §5).

use crate::detail::{Prop, RawRecord, parse_print_detail, render_commented_lines};
use crate::error::RouterOsError;
use crate::legend::{DISK_FLAGS_WIDTH, Legend};
use crate::quote::quote_output;
use crate::size::{HumanSize, format_grouped, parse_grouped};
use crate::wrap::{RenderOptions, join_lines};

/// Property order for every disk type except `hardware` (merges the captured `type=file` order
/// of docs/routeros.md §4.7 exactly and the synthesized pool order; absent properties are skipped).
pub const DISK_ORDER: &[&str] = &[
    "type",
    "slot",
    "slot-default",
    "parent",
    "fs",
    "fs-label",
    "model",
    "serial",
    "size",
    "free",
    "use",
    "mount-point",
    "mount-filesystem",
    "mount-read-only",
    "compress",
    "sector-size",
    "raid-type",
    "raid-device-count",
    "raid-chunk-size",
    "raid-master",
    "nvme-tcp-export",
    "nvme-tcp-server-port",
    "nvme-tcp-server-nqn",
    "nvme-tcp-server-allow-host-name",
    "iscsi-export",
    "nfs-sharing",
    "smb-sharing",
    "media-sharing",
    "media-interface",
    "swap",
    "file-path",
    "file-size",
    "file-offset",
];

/// Property order for `type=hardware` (hAP ax3 capture: `fs-label` comes before `fs`).
pub const DISK_HARDWARE_ORDER: &[&str] = &[
    "type",
    "slot",
    "slot-default",
    "parent",
    "fs-label",
    "fs",
    "model",
    "serial",
    "size",
    "free",
    "use",
    "mount-point",
    "mount-filesystem",
    "mount-read-only",
    "compress",
    "sector-size",
    "raid-type",
    "raid-device-count",
    "raid-chunk-size",
    "raid-master",
    "nvme-tcp-export",
    "nvme-tcp-server-port",
    "nvme-tcp-server-nqn",
    "nvme-tcp-server-allow-host-name",
    "iscsi-export",
    "nfs-sharing",
    "smb-sharing",
    "media-sharing",
    "media-interface",
    "swap",
    "file-path",
    "file-size",
    "file-offset",
];

/// One `/disk` item. Every property is optional because RouterOS prints only those that apply
/// to the disk type. `raw` holds every property as printed (in order, including unknown ones);
/// when rendering, typed fields are used for known keys and `raw` only for unknown keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiskRecord {
    /// Print number (`None` if the capture had no number prefix).
    pub number: Option<u32>,
    /// Flags block as printed, positions kept, trailing spaces removed (`"B   t"`, `" BM"`).
    /// Build it with [`Legend::flag_block`]; test membership with [`DiskRecord::has_flag`].
    pub flags: String,
    /// The item's `comment` (printed as a `;;; <comment>` line; the ownership tag of the
    /// driver's disks). `None` when the item has none.
    pub comment: Option<String>,
    /// `type` (`file`, `raid`, `hardware`, ...).
    pub disk_type: Option<String>,
    /// `slot` (quoted).
    pub slot: Option<String>,
    /// `slot-default` (quoted).
    pub slot_default: Option<String>,
    /// `parent`: quoted string, except the value `none`, which prints bare.
    pub parent: Option<String>,
    /// `fs` (bare, `-` for none).
    pub fs: Option<String>,
    /// `fs-label` (quoted).
    pub fs_label: Option<String>,
    /// `model` (quoted; a file disk echoes its path).
    pub model: Option<String>,
    /// `serial` (quoted).
    pub serial: Option<String>,
    /// `size` in bytes (printed grouped). The authoritative capacity.
    pub size: Option<u64>,
    /// `free` in bytes (printed grouped).
    pub free: Option<u64>,
    /// `use` percent (`use=5%`).
    pub use_percent: Option<u8>,
    /// `mount-point` (quoted).
    pub mount_point: Option<String>,
    /// `mount-filesystem` (yes/no).
    pub mount_filesystem: Option<bool>,
    /// `mount-read-only` (yes/no).
    pub mount_read_only: Option<bool>,
    /// `compress` (yes/no).
    pub compress: Option<bool>,
    /// `sector-size` (plain number).
    pub sector_size: Option<u64>,
    /// `raid-type` (bare, e.g. `6`).
    pub raid_type: Option<String>,
    /// `raid-device-count` (plain number).
    pub raid_device_count: Option<u64>,
    /// `raid-chunk-size` (bare, e.g. `1M`).
    pub raid_chunk_size: Option<String>,
    /// `raid-master` (bare, `none`).
    pub raid_master: Option<String>,
    /// `nvme-tcp-export` (yes/no).
    pub nvme_tcp_export: Option<bool>,
    /// `nvme-tcp-server-port` (plain number).
    pub nvme_tcp_server_port: Option<u16>,
    /// `nvme-tcp-server-nqn` (quoted).
    pub nvme_tcp_server_nqn: Option<String>,
    /// `nvme-tcp-server-allow-host-name` (quoted).
    pub nvme_tcp_server_allow_host_name: Option<String>,
    /// `iscsi-export` (yes/no).
    pub iscsi_export: Option<bool>,
    /// `nfs-sharing` (yes/no).
    pub nfs_sharing: Option<bool>,
    /// `smb-sharing` (yes/no).
    pub smb_sharing: Option<bool>,
    /// `media-sharing` (yes/no).
    pub media_sharing: Option<bool>,
    /// `media-interface` (bare, `none`).
    pub media_interface: Option<String>,
    /// `swap` (yes/no).
    pub swap: Option<bool>,
    /// `file-path` (bare, leading slash kept as given at creation).
    pub file_path: Option<String>,
    /// `file-size` as printed (human, e.g. `5120.0MiB`) plus approximate bytes.
    pub file_size: Option<HumanSize>,
    /// `file-offset` (plain number).
    pub file_offset: Option<u64>,
    /// Every property as printed, in order (parser output; unknown keys are rendered from here).
    pub raw: Vec<Prop>,
}

fn yes_no(v: bool) -> &'static str {
    if v { "yes" } else { "no" }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "yes" | "true" => Some(true),
        "no" | "false" => Some(false),
        _ => None,
    }
}

/// Bare if it is a safe bare token, else quoted (bare fields normally are).
fn bare_or_quoted(v: &str) -> String {
    if !v.is_empty()
        && v.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '.' | '_' | '/' | ':' | '-' | '+' | ',' | '%' | '@' | '*')
        })
    {
        v.to_owned()
    } else {
        quote_output(v)
    }
}

impl DiskRecord {
    /// Whether the flags block contains `flag` (e.g. `'t'` = nvme-tcp-export, `'X'` = disabled).
    pub fn has_flag(&self, flag: char) -> bool {
        flag != ' ' && self.flags.contains(flag)
    }

    /// A `type=file` disk as RouterOS shows it (docs/routeros.md §4.7 capture: `slot-default=""`, `parent=""`,
    /// `fs=-`, `model` = path, `sector-size=512`, ...). `export` = `(port, nqn)`; when `None`,
    /// `nvme-tcp-export=no` is printed and the port/NQN/allow-host-name lines are omitted (INF:
    /// RouterOS hides dependent properties, as on the pool record). Flags `B` (+ `t` if
    /// exported), laid out with `legend`. `number` is left `None`: set it when printing.
    pub fn file_disk(
        legend: &Legend,
        slot: &str,
        file_path: &str,
        size_bytes: u64,
        export: Option<(u16, &str)>,
    ) -> Self {
        let mut flags = vec!['B'];
        if export.is_some() {
            flags.push('t');
        }
        Self {
            flags: legend.flag_block(&flags),
            disk_type: Some("file".into()),
            slot: Some(slot.into()),
            slot_default: Some(String::new()),
            parent: Some(String::new()),
            fs: Some("-".into()),
            model: Some(file_path.into()),
            size: Some(size_bytes),
            mount_filesystem: Some(true),
            mount_read_only: Some(false),
            compress: Some(false),
            sector_size: Some(512),
            raid_master: Some("none".into()),
            nvme_tcp_export: Some(export.is_some()),
            nvme_tcp_server_port: export.map(|e| e.0),
            nvme_tcp_server_nqn: export.map(|e| e.1.to_owned()),
            nvme_tcp_server_allow_host_name: export.map(|_| String::new()),
            iscsi_export: Some(false),
            nfs_sharing: Some(false),
            smb_sharing: Some(false),
            media_sharing: Some(false),
            media_interface: Some("none".into()),
            swap: Some(false),
            file_path: Some(file_path.into()),
            file_size: Some(HumanSize::from_bytes(size_bytes)),
            file_offset: Some(0),
            ..Self::default()
        }
    }

    /// A Btrfs-on-RAID pool record like the synthesized one of docs/routeros.md §4.8 (`type=raid`, `fs=btrfs`,
    /// `fs-label` and `mount-point` = `slot`, `model="RAID6"`, RAID6 over 8 devices).
    pub fn raid_pool(legend: &Legend, slot: &str, size: u64, free: u64, use_percent: u8) -> Self {
        Self {
            flags: legend.flag_block(&['B', 'M']),
            disk_type: Some("raid".into()),
            slot: Some(slot.into()),
            slot_default: Some(String::new()),
            parent: Some("none".into()),
            fs: Some("btrfs".into()),
            fs_label: Some(slot.into()),
            model: Some("RAID6".into()),
            size: Some(size),
            free: Some(free),
            use_percent: Some(use_percent),
            mount_point: Some(slot.into()),
            mount_filesystem: Some(true),
            mount_read_only: Some(false),
            compress: Some(false),
            sector_size: Some(4096),
            raid_type: Some("6".into()),
            raid_device_count: Some(8),
            raid_chunk_size: Some("1M".into()),
            raid_master: Some("none".into()),
            nvme_tcp_export: Some(false),
            iscsi_export: Some(false),
            nfs_sharing: Some(false),
            smb_sharing: Some(false),
            ..Self::default()
        }
    }

    /// Build the typed record from an untyped one. Values that do not parse leave the typed
    /// field `None` (they stay in `raw`).
    pub fn from_raw(rec: RawRecord) -> Self {
        let mut d = DiskRecord {
            number: rec.number,
            flags: rec.flags,
            comment: rec.comment.filter(|c| !c.is_empty()),
            ..Self::default()
        };
        for p in &rec.props {
            let v = p.value.as_str();
            let s = || Some(v.to_owned());
            match p.key.as_ref() {
                "type" => d.disk_type = s(),
                "slot" => d.slot = s(),
                "slot-default" => d.slot_default = s(),
                "parent" => d.parent = s(),
                "fs" => d.fs = s(),
                "fs-label" => d.fs_label = s(),
                "model" => d.model = s(),
                "serial" => d.serial = s(),
                "size" => d.size = parse_grouped(v),
                "free" => d.free = parse_grouped(v),
                "use" => d.use_percent = v.strip_suffix('%').and_then(|n| n.trim().parse().ok()),
                "mount-point" => d.mount_point = s(),
                "mount-filesystem" => d.mount_filesystem = parse_bool(v),
                "mount-read-only" => d.mount_read_only = parse_bool(v),
                "compress" => d.compress = parse_bool(v),
                "sector-size" => d.sector_size = parse_grouped(v),
                "raid-type" => d.raid_type = s(),
                "raid-device-count" => d.raid_device_count = parse_grouped(v),
                "raid-chunk-size" => d.raid_chunk_size = s(),
                "raid-master" => d.raid_master = s(),
                "nvme-tcp-export" => d.nvme_tcp_export = parse_bool(v),
                "nvme-tcp-server-port" => d.nvme_tcp_server_port = v.trim().parse().ok(),
                "nvme-tcp-server-nqn" => d.nvme_tcp_server_nqn = s(),
                "nvme-tcp-server-allow-host-name" => d.nvme_tcp_server_allow_host_name = s(),
                "iscsi-export" => d.iscsi_export = parse_bool(v),
                "nfs-sharing" => d.nfs_sharing = parse_bool(v),
                "smb-sharing" => d.smb_sharing = parse_bool(v),
                "media-sharing" => d.media_sharing = parse_bool(v),
                "media-interface" => d.media_interface = s(),
                "swap" => d.swap = parse_bool(v),
                "file-path" => d.file_path = s(),
                "file-size" => d.file_size = HumanSize::parse(v),
                "file-offset" => d.file_offset = parse_grouped(v),
                _ => {}
            }
        }
        d.raw = rec.props;
        d
    }

    /// The printed token for a known key, if the field is set.
    fn token(&self, key: &str) -> Option<String> {
        let q = |v: &Option<String>| v.as_ref().map(|v| format!("{key}={}", quote_output(v)));
        let b = |v: &Option<String>| v.as_ref().map(|v| format!("{key}={}", bare_or_quoted(v)));
        let yn = |v: Option<bool>| v.map(|v| format!("{key}={}", yes_no(v)));
        let grouped = |v: Option<u64>| v.map(|v| format!("{key}={}", format_grouped(v)));
        let plain = |v: Option<u64>| v.map(|v| format!("{key}={v}"));
        match key {
            "type" => b(&self.disk_type),
            "slot" => q(&self.slot),
            "slot-default" => q(&self.slot_default),
            "parent" => match self.parent.as_deref() {
                Some("none") => Some(format!("{key}=none")),
                _ => q(&self.parent),
            },
            "fs" => b(&self.fs),
            "fs-label" => q(&self.fs_label),
            "model" => q(&self.model),
            "serial" => q(&self.serial),
            "size" => grouped(self.size),
            "free" => grouped(self.free),
            "use" => self.use_percent.map(|u| format!("{key}={u}%")),
            "mount-point" => q(&self.mount_point),
            "mount-filesystem" => yn(self.mount_filesystem),
            "mount-read-only" => yn(self.mount_read_only),
            "compress" => yn(self.compress),
            "sector-size" => plain(self.sector_size),
            "raid-type" => b(&self.raid_type),
            "raid-device-count" => plain(self.raid_device_count),
            "raid-chunk-size" => b(&self.raid_chunk_size),
            "raid-master" => b(&self.raid_master),
            "nvme-tcp-export" => yn(self.nvme_tcp_export),
            "nvme-tcp-server-port" => self.nvme_tcp_server_port.map(|p| format!("{key}={p}")),
            "nvme-tcp-server-nqn" => q(&self.nvme_tcp_server_nqn),
            "nvme-tcp-server-allow-host-name" => q(&self.nvme_tcp_server_allow_host_name),
            "iscsi-export" => yn(self.iscsi_export),
            "nfs-sharing" => yn(self.nfs_sharing),
            "smb-sharing" => yn(self.smb_sharing),
            "media-sharing" => yn(self.media_sharing),
            "media-interface" => b(&self.media_interface),
            "swap" => yn(self.swap),
            "file-path" => b(&self.file_path),
            "file-size" => self.file_size.as_ref().map(|h| format!("{key}={}", h.text)),
            "file-offset" => plain(self.file_offset),
            _ => None,
        }
    }

    /// The property tokens in print order (known keys from typed fields, then unknown keys
    /// from `raw` in their original order).
    pub fn tokens(&self) -> Vec<String> {
        let order = if self.disk_type.as_deref() == Some("hardware") {
            DISK_HARDWARE_ORDER
        } else {
            DISK_ORDER
        };
        let mut out: Vec<String> = order.iter().filter_map(|k| self.token(k)).collect();
        out.extend(
            self.raw
                .iter()
                .filter(|p| !DISK_ORDER.contains(&p.key.as_ref()))
                .map(Prop::render),
        );
        out
    }
}

/// Parse `/disk print detail` output into typed records (legend skipped). See
/// [`crate::parse_print_detail`] for the wrapping rules and errors.
pub fn parse_disk_print_detail(text: &str) -> Result<Vec<DiskRecord>, RouterOsError> {
    Ok(parse_print_detail(text)?
        .records
        .into_iter()
        .map(DiskRecord::from_raw)
        .collect())
}

/// Render one record's lines (no legend, no trailing blank line). The number column is 2 wide
/// (wider for numbers ≥ 100), the property column 15.
pub fn render_disk_record(rec: &DiskRecord, opts: &RenderOptions) -> String {
    let nw = rec.number.map_or(2, |n| n.to_string().len().max(2));
    let lines = render_commented_lines(
        rec.number,
        &rec.flags,
        rec.comment.as_deref(),
        nw,
        DISK_FLAGS_WIDTH,
        &rec.tokens(),
        opts,
    );
    join_lines(&lines, opts.line_ending)
}

/// Render a whole `/disk print detail` output: the legend, then every record followed by a
/// blank line. With no records: the legend followed by one blank line (assumed, docs/routeros.md §4.4).
pub fn render_disk_print(legend: &Legend, records: &[DiskRecord], opts: &RenderOptions) -> String {
    let legend_lines = legend.render_lines(opts);
    let mut out = join_lines(&legend_lines, opts.line_ending);
    if records.is_empty() {
        out.push_str(opts.line_ending.as_str());
        return out;
    }
    let nw = records
        .iter()
        .filter_map(|r| r.number)
        .map(|n| n.to_string().len())
        .max()
        .unwrap_or(2)
        .max(2);
    for r in records {
        let lines = render_commented_lines(
            r.number,
            &r.flags,
            r.comment.as_deref(),
            nw,
            DISK_FLAGS_WIDTH,
            &r.tokens(),
            opts,
        );
        out.push_str(&join_lines(&lines, opts.line_ending));
        if opts.blank_line_after_record {
            out.push_str(opts.line_ending.as_str());
        }
    }
    out
}
