//! Which items a `where` (or `find`) selects, and the properties it compares.

use std::collections::HashMap;

use super::exec::Ctx;
use super::expr::{Props, eq_alternatives, eval, mentions_any, values_eq};
use super::parse::{Command, Menu};
use super::props::{disk_props, file_props, filesystem_props, subvolume_props};
use crate::config::NumberingMode;
use crate::model::{DiskKind, FileItem, PoolUsage};

/// What `where` evaluation needs, computed once per command.
/// Each variant carries an id → position index, so evaluating a filter over
/// n items is O(n), not O(n²).
pub(super) enum View {
    None,
    Files(Vec<FileItem>, HashMap<u64, usize>),
    /// The pool's usage is computed only if the pool record's properties are needed.
    Disks(std::cell::OnceCell<PoolUsage>, HashMap<u64, usize>),
    /// Subvolumes and the filesystem record: read from the state as they are.
    Btrfs(Menu),
}

impl Ctx<'_, '_> {
    /// Items matching the command's filter, with their print numbers.
    pub(super) fn matching(&mut self, cmd: &Command) -> Result<Vec<(u64, u32)>, String> {
        let all = self.all_ids(cmd.menu);
        let view = match &cmd.filter {
            None => View::None,
            Some(f) => self.filter_view(cmd.menu, f),
        };
        let alts = cmd.filter.as_ref().and_then(eq_alternatives);
        let mut out = Vec::new();
        for (pos, (id, _)) in all.iter().enumerate() {
            let keep = match &cmd.filter {
                None => true,
                Some(_)
                    if alts
                        .as_ref()
                        .is_some_and(|a| !self.may_match(&view, *id, a)) =>
                {
                    false
                }
                Some(f) => {
                    let props = self.props_in(&view, *id).unwrap_or(Props(Vec::new()));
                    let bad_regex = self.dev.behaviour.texts.bad_regex.clone();
                    eval(f, &props, &mut |v| self.text(v))
                        .map_err(|e| if e == "bad-regex" { bad_regex } else { e })?
                }
            };
            if keep {
                out.push((*id, u32::try_from(pos).unwrap_or(u32::MAX)));
            }
        }
        if self.dev.behaviour.numbering == NumberingMode::Filtered {
            for (i, item) in out.iter_mut().enumerate() {
                item.1 = u32::try_from(i).unwrap_or(u32::MAX);
            }
        }
        Ok(out)
    }

    /// The view a filter over `menu` evaluates against.
    fn filter_view(&mut self, menu: Menu, f: &super::expr::Expr) -> View {
        match menu {
            Menu::File => self.files_view(),
            Menu::BtrfsSubvolume | Menu::BtrfsFilesystem => View::Btrfs(menu),
            _ => {
                let view = self.disks_view();
                // Membership only: a filter that reads no usage property does not need the
                // pool's usage.
                if !mentions_any(f, &["size", "free", "use"])
                    && let View::Disks(cell, _) = &view
                {
                    let _ = cell.set(PoolUsage { total: 0, used: 0 });
                }
                view
            }
        }
    }

    /// Quick pre-check against [`eq_alternatives`] without building the item's properties:
    /// false only when no alternative can hold. Properties it does not know say "maybe".
    fn may_match(&self, view: &View, id: u64, alts: &[(&str, &str)]) -> bool {
        // Some(None): the item has no such property, so `=` is false.
        let cheap = |prop: &str| -> Option<Option<&str>> {
            match view {
                View::Files(files, at) => {
                    let f = at.get(&id).and_then(|&i| files.get(i))?;
                    (prop == "name").then_some(Some(f.info.name.as_str()))
                }
                View::Disks(_, at) => {
                    let d = at.get(&id).and_then(|&i| self.dev.state.disks.get(i))?;
                    match (prop, &d.kind) {
                        ("slot", _) => Some(Some(d.slot.as_str())),
                        ("file-path", DiskKind::File(f)) => Some(Some(f.file_path.as_str())),
                        ("nvme-tcp-server-nqn", DiskKind::File(f)) => {
                            Some(f.nvme_tcp_export.then_some(f.nvme_tcp_server_nqn.as_str()))
                        }
                        _ => None,
                    }
                }
                View::Btrfs(Menu::BtrfsSubvolume) => {
                    let s = self
                        .dev
                        .state
                        .btrfs
                        .subvolumes
                        .iter()
                        .find(|s| s.id == id)?;
                    match prop {
                        "name" => Some(Some(s.name.as_str())),
                        "parent" => Some(Some(s.parent.as_str())),
                        _ => None,
                    }
                }
                View::Btrfs(_) | View::None => None,
            }
        };
        alts.iter().any(|(prop, want)| match cheap(prop) {
            None => true,
            Some(None) => false,
            Some(Some(have)) => values_eq(have, want),
        })
    }

    pub(super) fn props_in(&mut self, view: &View, id: u64) -> Option<Props> {
        let upper = self.upper();
        match view {
            View::Files(files, at) => at
                .get(&id)
                .and_then(|&i| files.get(i))
                .map(|f| file_props(f, upper)),
            View::Disks(u, at) => {
                let dev = &*self.dev;
                at.get(&id).and_then(|&i| dev.state.disks.get(i)).map(|d| {
                    disk_props(d, upper, dev.behaviour, &|| *u.get_or_init(|| dev.usage()))
                })
            }
            View::Btrfs(Menu::BtrfsSubvolume) => self
                .dev
                .state
                .btrfs
                .subvolumes
                .iter()
                .find(|s| s.id == id)
                .map(|s| subvolume_props(s, upper)),
            View::Btrfs(_) => {
                let uuid = self.dev.fs_uuid();
                Some(filesystem_props(&uuid, upper))
            }
            View::None => None,
        }
    }

    pub(super) fn props_of(&mut self, menu: Menu, id: u64) -> Option<Props> {
        let view = match menu {
            Menu::File => self.files_view(),
            Menu::BtrfsSubvolume | Menu::BtrfsFilesystem => View::Btrfs(menu),
            _ => self.disks_view(),
        };
        self.props_in(&view, id)
    }

    pub(super) fn files_view(&mut self) -> View {
        let files = self.dev.files();
        let at = files.iter().enumerate().map(|(i, f)| (f.id, i)).collect();
        View::Files(files, at)
    }

    fn disks_view(&mut self) -> View {
        let at = self
            .dev
            .state
            .disks
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id, i))
            .collect();
        View::Disks(std::cell::OnceCell::new(), at)
    }
}
