//! Which items a `where` (or `find`) selects, and the properties it compares.
//!
//! Cost (issue 16): a filter that can only hold for named items (`name=` on `/file`,
//! `slot=`/`file-path=`/`nvme-tcp-server-nqn=` on `/disk`, joined by `||`) looks at those
//! items only: a `/file` lookup reads just the named files; a `/disk` pass compares strings
//! in memory. Other filters list everything (the answer grows with the menu anyway).

use super::exec::Ctx;
use super::expr::{Expr, Props, eq_alternatives, eval, mentions_any, parse_number, values_eq};
use super::parse::{Command, Menu};
use super::props::{disk_props, file_props, filesystem_props, subvolume_props};
use crate::config::NumberingMode;
use crate::model::{DiskKind, FileItem, PoolUsage};

/// The candidates of one command, each with its global print number.
pub(super) enum View {
    /// Files (all of them, or just the named ones).
    Files(Vec<(FileItem, u32)>),
    /// Disks (position = print number): all, or only those at the listed positions (the
    /// filter can hold for nothing else). The pool's usage is computed only if a filter
    /// reads a usage property of the pool record.
    Disks(std::cell::OnceCell<PoolUsage>, Option<Vec<usize>>),
    Subvolumes,
    Filesystems,
}

impl Ctx<'_, '_> {
    /// Items matching the command's filter, with their print numbers.
    pub(super) fn matching(&mut self, cmd: &Command) -> Result<Vec<(u64, u32)>, String> {
        let view = self.view(cmd);
        let hits = self.filter(cmd, &view)?;
        Ok(hits
            .into_iter()
            .filter_map(|(at, n)| Some((self.id_in(&view, at)?, n)))
            .collect())
    }

    /// Files matching the command's filter, with their print numbers.
    pub(super) fn matching_files(&mut self, cmd: &Command) -> Result<Vec<(FileItem, u32)>, String> {
        let view = self.view(cmd);
        let hits = self.filter(cmd, &view)?;
        let View::Files(mut files) = view else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(hits.len());
        for (at, n) in hits.into_iter().rev() {
            out.push((files.swap_remove(at).0, n));
        }
        out.reverse();
        Ok(out)
    }

    /// Id of the item at position `at` of `view`.
    fn id_in(&self, view: &View, at: usize) -> Option<u64> {
        match view {
            View::Files(f) => f.get(at).map(|(f, _)| f.id),
            View::Disks(..) => self.dev.state.disks.get(at).map(|d| d.id),
            View::Subvolumes => self.dev.state.btrfs.subvolumes.get(at).map(|s| s.id),
            View::Filesystems => Some(1),
        }
    }

    /// Positions (in `view`) of the items the filter keeps, with their print numbers.
    fn filter(&mut self, cmd: &Command, view: &View) -> Result<Vec<(usize, u32)>, String> {
        let alts = cmd.filter.as_ref().and_then(eq_alternatives);
        let mut out = Vec::new();
        let all;
        let positions = match view {
            View::Disks(_, Some(at)) => at.as_slice(),
            _ => {
                all = (0..self.view_len(view)).collect::<Vec<_>>();
                all.as_slice()
            }
        };
        for &at in positions {
            let keep = match &cmd.filter {
                None => true,
                Some(_) if alts.as_ref().is_some_and(|a| !self.may_match(view, at, a)) => false,
                Some(f) => {
                    let props = self.props_at(view, at).unwrap_or(Props(Vec::new()));
                    let bad_regex = self.dev.behaviour.texts.bad_regex.clone();
                    eval(f, &props, &mut |v| self.text(v))
                        .map_err(|e| if e == "bad-regex" { bad_regex } else { e })?
                }
            };
            if keep {
                out.push((at, self.number_at(view, at)));
            }
        }
        if self.dev.behaviour.numbering == NumberingMode::Filtered {
            for (i, item) in out.iter_mut().enumerate() {
                item.1 = u32::try_from(i).unwrap_or(u32::MAX);
            }
        }
        Ok(out)
    }

    fn view_len(&self, view: &View) -> usize {
        match view {
            View::Files(f) => f.len(),
            View::Disks(..) => self.dev.state.disks.len(),
            View::Subvolumes => self.dev.state.btrfs.subvolumes.len(),
            View::Filesystems => usize::from(self.dev.btrfs_fs(None).is_ok()),
        }
    }

    fn number_at(&self, view: &View, at: usize) -> u32 {
        match view {
            View::Files(f) => f.get(at).map_or(0, |(_, n)| *n),
            _ => u32::try_from(at).unwrap_or(u32::MAX),
        }
    }

    /// The candidates of `cmd` (all items of its menu, or the named files).
    pub(super) fn view(&mut self, cmd: &Command) -> View {
        match cmd.menu {
            Menu::File => self.files_view(cmd.filter.as_ref()),
            Menu::BtrfsSubvolume => View::Subvolumes,
            Menu::BtrfsFilesystem => View::Filesystems,
            _ => {
                let cell = std::cell::OnceCell::new();
                // Membership only: a filter that reads no usage property does not need the
                // pool's usage.
                if cmd
                    .filter
                    .as_ref()
                    .is_some_and(|f| !mentions_any(f, &["size", "free", "use"]))
                {
                    let _ = cell.set(PoolUsage { total: 0, used: 0 });
                }
                let only = cmd.filter.as_ref().and_then(|f| self.indexed_disks(f));
                View::Disks(cell, only)
            }
        }
    }

    /// Positions of the only disks `f` can keep, from the disk lookups, when it is made of
    /// `||`-joined equalities on indexed properties with plain text values (a number or a
    /// yes/no compares loosely, so those take the full pass).
    fn indexed_disks(&mut self, f: &Expr) -> Option<Vec<usize>> {
        let alts = eq_alternatives(f)?;
        let plain =
            |v: &str| parse_number(v).is_none() && !matches!(v, "yes" | "no" | "true" | "false");
        let ix = self.dev.disk_lookup();
        let mut ids = Vec::new();
        for (p, v) in alts {
            if !plain(v) {
                return None;
            }
            ids.extend_from_slice(ix.ids(p, v)?);
        }
        let mut at: Vec<usize> = ids
            .into_iter()
            .filter_map(|id| self.dev.disk_index(id))
            .collect();
        at.sort_unstable();
        at.dedup();
        Some(at)
    }

    /// `/file` candidates: only the named files when the filter can hold for nothing else,
    /// otherwise everything (re-walked, so changes made from outside show).
    fn files_view(&mut self, filter: Option<&Expr>) -> View {
        let names: Option<Vec<String>> = filter.and_then(eq_alternatives).and_then(|alts| {
            alts.iter()
                .map(|(p, v)| (*p == "name").then(|| (*v).to_owned()))
                .collect()
        });
        let Some(mut names) = names else {
            self.dev.store.rescan();
            let all = self.dev.files();
            return View::Files(
                all.into_iter()
                    .enumerate()
                    .map(|(i, f)| (f, u32::try_from(i).unwrap_or(u32::MAX)))
                    .collect(),
            );
        };
        names.sort();
        names.dedup();
        let mut files: Vec<FileItem> = names
            .iter()
            .filter_map(|n| self.dev.file_named(n))
            .collect();
        files.sort_by_key(|f| f.id);
        let dev = &*self.dev;
        View::Files(
            files
                .into_iter()
                .map(|f| {
                    let n = dev.file_position(f.id);
                    (f, u32::try_from(n).unwrap_or(u32::MAX))
                })
                .collect(),
        )
    }

    /// Quick pre-check against [`eq_alternatives`] without building the item's properties:
    /// false only when no alternative can hold. Properties it does not know say "maybe".
    fn may_match(&self, view: &View, at: usize, alts: &[(&str, &str)]) -> bool {
        // Some(None): the item has no such property, so `=` is false.
        let cheap = |prop: &str| -> Option<Option<&str>> {
            match view {
                View::Files(files) => {
                    let (f, _) = files.get(at)?;
                    (prop == "name").then_some(Some(f.info.name.as_str()))
                }
                View::Disks(..) => {
                    let d = self.dev.state.disks.get(at)?;
                    match (prop, &d.kind) {
                        ("slot", _) => Some(Some(d.slot.as_str())),
                        ("file-path", DiskKind::File(f)) => Some(Some(f.file_path.as_str())),
                        ("nvme-tcp-server-nqn", DiskKind::File(f)) => {
                            Some(f.nvme_tcp_export.then_some(f.nvme_tcp_server_nqn.as_str()))
                        }
                        _ => None,
                    }
                }
                View::Subvolumes => {
                    let s = self.dev.state.btrfs.subvolumes.get(at)?;
                    match prop {
                        "name" => Some(Some(s.name.as_str())),
                        "parent" => Some(Some(s.parent.as_str())),
                        _ => None,
                    }
                }
                View::Filesystems => None,
            }
        };
        alts.iter().any(|(prop, want)| match cheap(prop) {
            None => true,
            Some(None) => false,
            Some(Some(have)) => values_eq(have, want),
        })
    }

    fn props_at(&mut self, view: &View, at: usize) -> Option<Props> {
        let upper = self.upper();
        match view {
            View::Files(files) => files.get(at).map(|(f, _)| file_props(f, upper)),
            View::Disks(u, _) => {
                let dev = &*self.dev;
                dev.state.disks.get(at).map(|d| {
                    disk_props(d, upper, dev.behaviour, &|| *u.get_or_init(|| dev.usage()))
                })
            }
            View::Subvolumes => self
                .dev
                .state
                .btrfs
                .subvolumes
                .get(at)
                .map(|s| subvolume_props(s, upper)),
            View::Filesystems => {
                let uuid = self.dev.fs_uuid();
                Some(filesystem_props(&uuid, upper))
            }
        }
    }

    /// Properties of item `id` of `menu` (`get`).
    pub(super) fn props_of(&mut self, menu: Menu, id: u64) -> Option<Props> {
        let upper = self.upper();
        match menu {
            Menu::File => {
                let f = self.dev.file_by_id(id)?;
                Some(file_props(&f, upper))
            }
            Menu::BtrfsSubvolume => {
                let at = self
                    .dev
                    .state
                    .btrfs
                    .subvolumes
                    .iter()
                    .position(|s| s.id == id)?;
                self.props_at(&View::Subvolumes, at)
            }
            Menu::BtrfsFilesystem => self.props_at(&View::Filesystems, 0),
            _ => {
                let at = self.dev.state.disks.iter().position(|d| d.id == id)?;
                self.props_at(&View::Disks(std::cell::OnceCell::new(), None), at)
            }
        }
    }
}
