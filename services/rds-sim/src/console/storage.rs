//! `/disk` and `/file` verbs.

use rds_routeros::Legend;

use super::exec::{Ctx, Ret, parse_bool, parse_num};
use super::parse::{Command, Menu, Verb};
use crate::model::{DiskArgs, PoolUsage};
use crate::render;

const DISK_TYPES: &[&str] = &[
    "raid",
    "nvme-tcp",
    "iscsi",
    "nfs",
    "smb",
    "partition",
    "tmpfs",
    "ramdisk",
    "crypted",
    "sshfs",
    "file",
    "hardware",
];

impl Ctx<'_, '_> {
    pub(super) fn storage(&mut self, cmd: &Command, out: &mut String) -> Result<Ret, String> {
        match (cmd.menu, cmd.verb) {
            (Menu::Disk, Verb::Add) => self.disk_add(cmd),
            (Menu::Disk, Verb::Set) => self.disk_set(cmd),
            (_, Verb::Remove) => self.storage_remove(cmd),
            (_, Verb::Find) => self.find(cmd),
            (_, Verb::Get) => self.get(cmd),
            (Menu::Disk, Verb::Print) => self.disk_print(cmd, out),
            (Menu::File, Verb::Print) => self.file_print(cmd, out),
            (Menu::File, Verb::Add) => self.file_add(cmd),
            (Menu::Disk, Verb::MonitorTraffic) => self.monitor_traffic(cmd, out),
            _ => Err("bad command name".into()),
        }
    }

    fn storage_remove(&mut self, cmd: &Command) -> Result<Ret, String> {
        let ids = self.target(cmd)?;
        if ids.is_empty() {
            return self.empty_find();
        }
        if cmd.menu == Menu::Disk {
            self.dev.disk_remove(&ids)?;
        } else {
            self.dev.file_remove(&ids)?;
        }
        self.dev.dirty = true;
        Ok(Ret::Nothing)
    }

    fn disk_print(&mut self, cmd: &Command, out: &mut String) -> Result<Ret, String> {
        let matched = self.matching(cmd)?;
        if self.print_shortcut(cmd, matched.len(), out) {
            return Ok(Ret::Nothing);
        }
        let legend = Legend::rose_storage();
        let flag_layout = self.dev.behaviour.flag_layout;
        let fs = self.dev.behaviour.pool_filesystem.as_str();
        // The pool's usage (a sum over its files) only when the pool record is printed.
        let mut usage = None;
        let mut records = Vec::with_capacity(matched.len());
        for (id, n) in &matched {
            let Some(d) = self.dev.state.disks.iter().find(|d| d.id == *id) else {
                continue;
            };
            let u = match d.file() {
                None => *usage.get_or_insert_with(|| self.dev.usage()),
                Some(_) => PoolUsage { total: 0, used: 0 },
            };
            records.push(render::disk_record(&legend, flag_layout, d, u, fs, *n));
        }
        out.push_str(&render::disk_print(&legend, &records, &self.sess.layout));
        Ok(Ret::Nothing)
    }

    fn file_print(&mut self, cmd: &Command, out: &mut String) -> Result<Ret, String> {
        let matched = self.matching_files(cmd)?;
        if self.print_shortcut(cmd, matched.len(), out) {
            return Ok(Ret::Nothing);
        }
        let records: Vec<_> = matched
            .iter()
            .map(|(f, n)| render::file_record(f, *n))
            .collect();
        out.push_str(&render::file_print(&records, &self.sess.layout));
        Ok(Ret::Nothing)
    }

    fn file_add(&mut self, cmd: &Command) -> Result<Ret, String> {
        let name = match cmd.arg("name") {
            Some(v) => self.text(v)?,
            None => return Err("failure: name not specified".into()),
        };
        let dir = match cmd.arg("type") {
            Some(v) => match self.text(v)?.as_str() {
                "directory" => true,
                "file" => false,
                _ => return Err("input does not match any value of type".into()),
            },
            None => false,
        };
        let id = self.dev.file_add(&name, dir)?;
        self.dev.dirty = true;
        Ok(Ret::Ids(vec![id]))
    }

    fn monitor_traffic(&mut self, cmd: &Command, out: &mut String) -> Result<Ret, String> {
        let Some((v, _)) = cmd.positional.first() else {
            return Err("no such item".into());
        };
        let slot = self.text(v)?;
        if !self.dev.state.disks.iter().any(|d| d.slot == slot) {
            return Err("no such item".into());
        }
        if !cmd.words.iter().any(|w| w == "once") {
            // Without `once` the command streams forever (docs/routeros.md §4.10).
            self.hang = true;
            return Ok(Ret::Nothing);
        }
        out.push_str(&render::monitor_traffic(&slot));
        Ok(Ret::Nothing)
    }

    fn disk_args(&mut self, cmd: &Command) -> Result<DiskArgs, String> {
        let mut a = DiskArgs::default();
        for arg in &cmd.args {
            let v = self.text(&arg.value)?;
            disk_arg(&mut a, arg.name.as_str(), v)?;
        }
        Ok(a)
    }

    fn disk_add(&mut self, cmd: &Command) -> Result<Ret, String> {
        let ty = match cmd.arg("type") {
            Some(v) => self.text(v)?,
            None => return Err("failure: type not specified".into()),
        };
        if !DISK_TYPES.contains(&ty.as_str()) {
            return Err("input does not match any value of type".into());
        }
        if ty != "file" {
            return Err(format!("failure: type={ty} is not simulated by rds-sim"));
        }
        let copy_from = match cmd.arg("copy-from") {
            Some(v) => {
                let ids = self.items(Menu::Disk, v)?;
                match ids.as_slice() {
                    [] => return Err("no such item".into()),
                    [one] => Some(*one),
                    _ => return Err("invalid value for argument copy-from".into()),
                }
            }
            None => None,
        };
        let args = self.disk_args(cmd)?;
        let id = self.dev.disk_add(&args, copy_from)?;
        self.dev.dirty = true;
        Ok(Ret::Ids(vec![id]))
    }

    fn disk_set(&mut self, cmd: &Command) -> Result<Ret, String> {
        let ids = self.target(cmd)?;
        let args = self.disk_args(cmd)?;
        if ids.is_empty() {
            return self.empty_find();
        }
        self.dev.disk_set(&ids, &args)?;
        self.dev.dirty = true;
        Ok(Ret::Nothing)
    }
}

/// One `/disk add|set` argument into `a`.
fn disk_arg(a: &mut DiskArgs, n: &str, v: String) -> Result<(), String> {
    match n {
        "slot" => {
            if v.is_empty() {
                return Err("invalid value for argument slot".into());
            }
            a.slot = Some(v);
        }
        "comment" => a.comment = Some(v),
        "disabled" => a.disabled = Some(parse_bool(n, &v)?),
        "file-path" => a.file_path = Some(v),
        "file-size" => a.file_size = Some(parse_num(n, &v)?),
        "file-offset" => a.file_offset = Some(parse_num(n, &v)?),
        "mount-filesystem" => a.mount_filesystem = Some(parse_bool(n, &v)?),
        "mount-read-only" => a.mount_read_only = Some(parse_bool(n, &v)?),
        "compress" => {
            if parse_bool(n, &v)? {
                return Err("compression only available for btrfs".into());
            }
            a.compress = Some(false);
        }
        "swap" => a.swap = Some(parse_bool(n, &v)?),
        "nvme-tcp-export" => a.nvme_tcp_export = Some(parse_bool(n, &v)?),
        "nvme-tcp-server-port" => {
            let p = parse_num(n, &v)?;
            a.nvme_tcp_server_port = Some(
                u16::try_from(p)
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("invalid value for argument {n}"))?,
            );
        }
        "nvme-tcp-server-nqn" => a.nvme_tcp_server_nqn = Some(v),
        "nvme-tcp-server-allow-host-name" => a.nvme_tcp_server_allow_host_name = Some(v),
        "nvme-tcp-server-password" => a.nvme_tcp_server_password = Some(v),
        "iscsi-export" => a.iscsi_export = Some(parse_bool(n, &v)?),
        "nfs-sharing" => a.nfs_sharing = Some(parse_bool(n, &v)?),
        "smb-sharing" => a.smb_sharing = Some(parse_bool(n, &v)?),
        "media-sharing" => a.media_sharing = Some(parse_bool(n, &v)?),
        "media-interface" => a.media_interface = Some(v),
        // Accepted; not part of the printed record.
        "parent" | "type" | "copy-from" => {}
        _ => return Err(format!("invalid value for argument {n}")),
    }
    Ok(())
}
