//! Property values of one item as `where` and `get` see them (raw values: bytes for sizes,
//! `yes`/`no` for booleans, unquoted strings).

use super::exec::yes_no;
use super::expr::Props;
use crate::config::Behaviour;
use crate::model::{Disk, DiskKind, FileItem, POOL, PoolUsage, format_id};
use crate::render;
use crate::store::FileKind;
use crate::subvol::Subvolume;

pub(super) fn disk_props(
    d: &Disk,
    upper: bool,
    b: &Behaviour,
    usage: &dyn Fn() -> PoolUsage,
) -> Props {
    let mut p: Vec<(&'static str, String)> =
        vec![(".id", format_id(d.id, upper)), ("slot", d.slot.clone())];
    p.push(("disabled", yes_no(d.disabled)));
    p.push(("comment", d.comment.clone()));
    p.push(("block-device", "yes".into()));
    p.push(("slot-default", String::new()));
    match &d.kind {
        DiskKind::Pool => pool_props(&mut p, b, usage()),
        DiskKind::File(f) => {
            p.extend([
                ("type", "file".to_owned()),
                ("parent", String::new()),
                ("fs", "-".into()),
                ("model", f.file_path.clone()),
                ("size", f.file_size.to_string()),
                ("mounted", "no".into()),
                ("mount-filesystem", yes_no(f.mount_filesystem)),
                ("mount-read-only", yes_no(f.mount_read_only)),
                ("compress", yes_no(f.compress)),
                ("sector-size", "512".into()),
                ("raid-master", "none".into()),
                ("nvme-tcp-export", yes_no(f.nvme_tcp_export)),
                ("iscsi-export", yes_no(f.iscsi_export)),
                ("nfs-sharing", yes_no(f.nfs_sharing)),
                ("smb-sharing", yes_no(f.smb_sharing)),
                ("media-sharing", yes_no(f.media_sharing)),
                ("media-interface", f.media_interface.clone()),
                ("swap", yes_no(f.swap)),
                ("file-path", f.file_path.clone()),
                ("file-size", f.file_size.to_string()),
                ("file-offset", f.file_offset.to_string()),
            ]);
            if f.nvme_tcp_export {
                p.extend([
                    ("nvme-tcp-server-port", f.nvme_tcp_server_port.to_string()),
                    ("nvme-tcp-server-nqn", f.nvme_tcp_server_nqn.clone()),
                    (
                        "nvme-tcp-server-allow-host-name",
                        f.nvme_tcp_server_allow_host_name.clone(),
                    ),
                ]);
            }
        }
    }
    Props(p)
}

fn pool_props(p: &mut Vec<(&'static str, String)>, b: &Behaviour, usage: PoolUsage) {
    p.extend([
        ("type", "raid".to_owned()),
        ("parent", "none".into()),
        ("fs", b.pool_filesystem.as_str().into()),
        ("fs-label", POOL.into()),
        ("model", "RAID6".into()),
        ("size", usage.total.to_string()),
        ("free", usage.free().to_string()),
        ("use", format!("{}%", usage.use_percent())),
        ("mount-point", POOL.into()),
        ("mounted", "yes".into()),
        ("mount-filesystem", "yes".into()),
        ("mount-read-only", "no".into()),
        ("compress", "no".into()),
        ("sector-size", "4096".into()),
        ("raid-type", "6".into()),
        ("raid-device-count", "8".into()),
        ("raid-chunk-size", "1M".into()),
        ("raid-master", "none".into()),
        ("nvme-tcp-export", "no".into()),
        ("iscsi-export", "no".into()),
        ("nfs-sharing", "no".into()),
        ("smb-sharing", "no".into()),
    ]);
}

pub(super) fn file_props(f: &FileItem, upper: bool) -> Props {
    let ty = match f.info.kind {
        FileKind::Disk => "disk".to_owned(),
        FileKind::Directory => "directory".to_owned(),
        FileKind::File => {
            let base = f.info.name.rsplit('/').next().unwrap_or(&f.info.name);
            match base.rfind('.') {
                Some(i) if i > 0 => format!("{} file", &base[i..]),
                _ => "file".into(),
            }
        }
    };
    let mut p = vec![
        (".id", format_id(f.id, upper)),
        ("name", f.info.name.clone()),
        ("type", ty),
        ("last-modified", render::civil(f.info.mtime).text),
    ];
    if f.info.kind == FileKind::File {
        p.push(("size", f.info.size.to_string()));
    }
    Props(p)
}

pub(super) fn subvolume_props(s: &Subvolume, upper: bool) -> Props {
    Props(vec![
        (".id", format_id(s.id, upper)),
        ("name", s.name.clone()),
        ("fs", s.fs.clone()),
        ("parent", s.parent.clone()),
        ("read-only", yes_no(s.read_only)),
        ("uuid", s.uuid.clone()),
        ("subvolume-id", s.id.to_string()),
        ("generation", s.generation.to_string()),
        ("creation-time", render::civil(s.creation_time).text),
        ("path", format!("/{}", s.dir())),
    ])
}

pub(super) fn filesystem_props(uuid: &str, upper: bool) -> Props {
    Props(vec![
        (".id", format_id(1, upper)),
        ("label", POOL.to_owned()),
        ("uuid", uuid.to_owned()),
        ("devs", "raid1".into()),
        ("default-subvolume", "5".into()),
    ])
}
