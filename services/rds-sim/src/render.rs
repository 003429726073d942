//! Model → `rds-routeros` records. All byte layout (packing, cutting, legend, sizes) is the
//! routeros crate's; this file only decides which values a record carries.

use rds_routeros::{
    CivilDateTime, CutRule, DiskRecord, FileRecord, FilesystemRecord, LastModified, Legend,
    LineEnding, MonitorTraffic, RenderOptions, SUBVOLUME_LEGEND, SingletonStyle, SubvolumeRecord,
    render_disk_print, render_file_print, render_filesystem_print, render_monitor_traffic,
    render_singleton, render_subvolume_print,
};

use crate::model::{Disk, DiskKind, FileItem, POOL, PoolUsage};
use crate::store::FileKind;
use crate::subvol::Subvolume;

/// Per-session rendering parameters.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub width: usize,
    pub cut_rule: CutRule,
    pub file_trailing_space: bool,
}

impl Layout {
    fn opts(&self) -> RenderOptions {
        RenderOptions {
            width: self.width,
            line_ending: LineEnding::Crlf,
            cut_rule: self.cut_rule,
            ..RenderOptions::default()
        }
    }
}

pub(crate) fn disk_record(
    legend: &Legend,
    layout: crate::config::FlagLayout,
    d: &Disk,
    usage: PoolUsage,
    pool_fs: &str,
    number: u32,
) -> DiskRecord {
    let mut rec = match &d.kind {
        DiskKind::Pool => {
            let mut r =
                DiskRecord::raid_pool(legend, POOL, usage.total, usage.free(), usage.use_percent());
            // A mounted block device: B and M.
            r.flags = layout.block(legend, &['B', 'M']);
            r.fs = Some(pool_fs.to_owned());
            r
        }
        DiskKind::File(f) => {
            let export = f
                .nvme_tcp_export
                .then_some((f.nvme_tcp_server_port, f.nvme_tcp_server_nqn.as_str()));
            let mut r = DiskRecord::file_disk(legend, &d.slot, &f.file_path, f.file_size, export);
            if f.nvme_tcp_export {
                r.nvme_tcp_server_allow_host_name = Some(f.nvme_tcp_server_allow_host_name.clone());
            }
            r.mount_filesystem = Some(f.mount_filesystem);
            r.mount_read_only = Some(f.mount_read_only);
            r.compress = Some(f.compress);
            r.swap = Some(f.swap);
            r.iscsi_export = Some(f.iscsi_export);
            r.nfs_sharing = Some(f.nfs_sharing);
            r.smb_sharing = Some(f.smb_sharing);
            r.media_sharing = Some(f.media_sharing);
            r.media_interface = Some(f.media_interface.clone());
            r.file_offset = Some(f.file_offset);
            let mut flags = vec!['B'];
            if f.nvme_tcp_export {
                flags.push('t');
            }
            if f.iscsi_export {
                flags.push('i');
            }
            if f.smb_sharing {
                flags.push('s');
            }
            if f.nfs_sharing {
                flags.push('n');
            }
            if f.media_sharing {
                flags.push('m');
            }
            if d.disabled {
                flags.push('X');
            }
            r.flags = layout.block(legend, &flags);
            r
        }
    };
    rec.number = Some(number);
    rec.comment = Some(d.comment.clone()).filter(|c| !c.is_empty());
    rec
}

pub(crate) fn disk_print(legend: &Legend, records: &[DiskRecord], layout: &Layout) -> String {
    render_disk_print(legend, records, &layout.opts())
}

/// One `/disk/btrfs/subvolume` record: `S` when made from a parent, `r` when read-only.
pub(crate) fn subvolume_record(s: &Subvolume, number: u32) -> SubvolumeRecord {
    let mut flags = Vec::new();
    if !s.parent.is_empty() {
        flags.push('S');
    }
    if s.read_only {
        flags.push('r');
    }
    SubvolumeRecord {
        number: Some(number),
        flags: Legend::new(SUBVOLUME_LEGEND).flag_block(&flags),
        name: s.name.clone(),
        fs: Some(s.fs.clone()),
        parent: Some(s.parent.clone()),
        read_only: Some(s.read_only),
        uuid: Some(s.uuid.clone()),
        subvolume_id: Some(s.id),
        generation: Some(s.generation),
        creation_time: Some(civil(s.creation_time)),
        path: Some(format!("/{}", s.dir())),
        raw: Vec::new(),
    }
}

pub(crate) fn subvolume_print(records: &[SubvolumeRecord], layout: &Layout) -> String {
    render_subvolume_print(records, &layout.opts())
}

/// The pool's `/disk/btrfs/filesystem` record.
pub(crate) fn filesystem_record(uuid: &str, number: u32) -> FilesystemRecord {
    FilesystemRecord {
        number: Some(number),
        label: POOL.to_owned(),
        uuid: Some(uuid.to_owned()),
        devs: Some("raid1".to_owned()),
        default_subvolume: Some(5),
        raw: Vec::new(),
    }
}

pub(crate) fn filesystem_print(records: &[FilesystemRecord], layout: &Layout) -> String {
    render_filesystem_print(records, &layout.opts())
}

pub(crate) fn civil(unix: i64) -> LastModified {
    match CivilDateTime::from_unix_seconds(unix) {
        Some(c) => LastModified::from_civil(c),
        None => LastModified::parse("1970-01-01 00:00:00"),
    }
}

pub(crate) fn file_record(item: &FileItem, number: u32) -> FileRecord {
    let lm = civil(item.info.mtime);
    let mut rec = match item.info.kind {
        FileKind::File => FileRecord::regular(&item.info.name, item.info.size, lm),
        FileKind::Directory => FileRecord::directory(&item.info.name, lm),
        FileKind::Disk => {
            let mut r = FileRecord::directory(&item.info.name, lm);
            r.file_type = Some("disk".into());
            r
        }
    };
    rec.number = Some(number);
    rec
}

pub(crate) fn file_print(records: &[FileRecord], layout: &Layout) -> String {
    let opts = RenderOptions {
        trailing_space: layout.file_trailing_space,
        ..layout.opts()
    };
    render_file_print(records, &opts)
}

pub(crate) fn singleton(pairs: &[(String, String)], min_key_width: usize) -> String {
    render_singleton(
        pairs,
        &SingletonStyle {
            min_key_width,
            ..SingletonStyle::default()
        },
    )
}

pub(crate) fn monitor_traffic(slot: &str) -> String {
    render_monitor_traffic(&MonitorTraffic::zero(slot), LineEnding::Crlf)
}

/// RouterOS uptime: `1w2d3h4m5s` with zero units left out (`0s` for zero).
pub(crate) fn uptime(secs: u64) -> String {
    let units = [
        ("w", 604_800),
        ("d", 86_400),
        ("h", 3_600),
        ("m", 60),
        ("s", 1),
    ];
    let mut rest = secs;
    let mut out = String::new();
    for (u, n) in units {
        let v = rest / n;
        rest %= n;
        if v > 0 {
            out.push_str(&format!("{v}{u}"));
        }
    }
    if out.is_empty() { "0s".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn uptime_format() {
        assert_eq!(uptime(0), "0s");
        assert_eq!(uptime(2 * 86_400 + 3 * 3600 + 4 * 60 + 5), "2d3h4m5s");
        assert_eq!(uptime(604_800 + 60), "1w1m");
    }
}
