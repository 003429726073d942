//! `/disk/btrfs/subvolume add|set|remove|print|find|get` and `/disk/btrfs/filesystem print`
//! (layouts assumed: docs/routeros.md §6.15).

use super::exec::{Ctx, Ret, parse_bool};
use super::parse::{Command, Menu, Verb};
use crate::render;
use crate::subvol::SubvolumeArgs;

impl Ctx<'_, '_> {
    pub(super) fn btrfs(&mut self, cmd: &Command, out: &mut String) -> Result<Ret, String> {
        match (cmd.menu, cmd.verb) {
            (Menu::BtrfsSubvolume, Verb::Add) => self.subvolume_add(cmd),
            (Menu::BtrfsSubvolume, Verb::Set) => self.subvolume_set(cmd),
            (Menu::BtrfsSubvolume, Verb::Remove) => self.subvolume_remove(cmd),
            (Menu::BtrfsSubvolume, Verb::Print) => self.subvolume_print(cmd, out),
            (Menu::BtrfsFilesystem, Verb::Print) => self.filesystem_print(cmd, out),
            (_, Verb::Find) => self.find(cmd),
            (_, Verb::Get) => self.get(cmd),
            _ => Err("bad command name".into()),
        }
    }

    fn subvolume_add(&mut self, cmd: &Command) -> Result<Ret, String> {
        let mut a = SubvolumeArgs::default();
        for arg in &cmd.args {
            let v = self.text(&arg.value)?;
            match arg.name.as_str() {
                "fs" => a.fs = Some(v),
                "name" => a.name = Some(v),
                "parent" => a.parent = Some(v),
                "read-only" => a.read_only = parse_bool("read-only", &v)?,
                n => return Err(format!("invalid value for argument {n}")),
            }
        }
        let id = self.dev.subvolume_add(&a)?;
        self.dev.dirty = true;
        Ok(Ret::Ids(vec![id]))
    }

    fn subvolume_set(&mut self, cmd: &Command) -> Result<Ret, String> {
        let ids = self.target(cmd)?;
        let read_only = match cmd.arg("read-only") {
            Some(v) => Some(parse_bool("read-only", &self.text(v)?)?),
            None => None,
        };
        if ids.is_empty() {
            return self.empty_find();
        }
        self.dev.subvolume_set(&ids, read_only)?;
        self.dev.dirty = true;
        Ok(Ret::Nothing)
    }

    fn subvolume_remove(&mut self, cmd: &Command) -> Result<Ret, String> {
        // On a pool that is not Btrfs every change fails, even one that selects nothing.
        self.dev.btrfs_fs(None)?;
        let ids = self.target(cmd)?;
        if ids.is_empty() {
            return self.empty_find();
        }
        self.dev.subvolume_remove(&ids)?;
        self.dev.dirty = true;
        Ok(Ret::Nothing)
    }

    fn subvolume_print(&mut self, cmd: &Command, out: &mut String) -> Result<Ret, String> {
        let matched = self.matching(cmd)?;
        if self.print_shortcut(cmd, matched.len(), out) {
            return Ok(Ret::Nothing);
        }
        let subvolumes = &self.dev.state.btrfs.subvolumes;
        let records: Vec<_> = matched
            .iter()
            .filter_map(|(id, n)| {
                let s = subvolumes.iter().find(|s| s.id == *id)?;
                Some(render::subvolume_record(s, *n))
            })
            .collect();
        out.push_str(&render::subvolume_print(&records, &self.sess.layout));
        Ok(Ret::Nothing)
    }

    fn filesystem_print(&mut self, cmd: &Command, out: &mut String) -> Result<Ret, String> {
        let matched = self.matching(cmd)?;
        if self.print_shortcut(cmd, matched.len(), out) {
            return Ok(Ret::Nothing);
        }
        let records: Vec<_> = match matched.first() {
            Some((_, n)) => vec![render::filesystem_record(&self.dev.fs_uuid(), *n)],
            None => Vec::new(),
        };
        out.push_str(&render::filesystem_print(&records, &self.sess.layout));
        Ok(Ret::Nothing)
    }
}
