//! Runs parsed commands against the device model and produces RouterOS output.
//!
//! A parse error rejects the whole line; a runtime error prints its text and stops at the
//! failing command (docs/routeros.md §2.3). `add`/`set`/`remove` print nothing on success
//! (docs/routeros.md §3.5). The verbs live by menu: `storage.rs` (`/disk`, `/file`),
//! `btrfs.rs` (`/disk/btrfs`), `system.rs`; item selection in `select.rs`.

use super::expr::parse_number;
use super::parse::{Command, Menu, Value, Verb, parse_line};
use crate::config::EmptyFindMode;
use crate::model::{Device, format_id, parse_id};
use crate::render::Layout;

/// Per-exec session parameters.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub layout: Layout,
    pub uptime_secs: u64,
    /// Logged-in SSH connections (`/user active`).
    pub logins: Vec<crate::setup::Login>,
}

/// What a line did.
#[derive(Clone, Debug, Default)]
pub(crate) struct Outcome {
    /// Exactly what goes to the channel.
    pub output: String,
    /// An error was printed.
    pub error: bool,
    /// `/system reboot` ran.
    pub reboot: bool,
    /// A streaming command (monitor without `once`) that never ends.
    pub hang: bool,
}

/// What a command hands to the one that substitutes it (`[find ...]`, `get`).
pub(super) enum Ret {
    Nothing,
    Ids(Vec<u64>),
    Text(String),
}

pub(super) struct Ctx<'d, 'a> {
    pub dev: &'d mut Device<'a>,
    pub sess: &'d Session,
    pub reboot: bool,
    pub hang: bool,
}

/// Parse and run one exec line.
pub(crate) fn run_line(dev: &mut Device<'_>, sess: &Session, line: &str) -> Outcome {
    let cmds = match parse_line(line) {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                output: format!("{e}\r\n"),
                error: true,
                ..Outcome::default()
            };
        }
    };
    let mut ctx = Ctx {
        dev,
        sess,
        reboot: false,
        hang: false,
    };
    let mut out = String::new();
    let mut error = false;
    for cmd in &cmds {
        if let Err(text) = ctx.exec(cmd, &mut out) {
            out.push_str(&text);
            out.push_str("\r\n");
            error = true;
            break;
        }
        if ctx.hang || ctx.reboot {
            break;
        }
    }
    // Files the line made or removed get or lose their `/file` ids before the state is saved.
    ctx.dev.sync_file_ids();
    Outcome {
        output: out,
        error,
        reboot: ctx.reboot,
        hang: ctx.hang,
    }
}

pub(super) fn yes_no(b: bool) -> String {
    if b { "yes".into() } else { "no".into() }
}

pub(super) fn parse_bool(arg: &str, v: &str) -> Result<bool, String> {
    match v {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("input does not match any value of {arg}")),
    }
}

pub(super) fn parse_num(arg: &str, v: &str) -> Result<u64, String> {
    parse_number(v).ok_or_else(|| {
        if v.starts_with(|c: char| c.is_ascii_digit()) {
            format!("value of {arg} contains invalid trailing characters")
        } else {
            format!("invalid value for argument {arg}")
        }
    })
}

impl Ctx<'_, '_> {
    pub(super) fn upper(&self) -> bool {
        self.dev.behaviour.uppercase_ids()
    }

    /// One command: dispatched by menu.
    pub(super) fn exec(&mut self, cmd: &Command, out: &mut String) -> Result<Ret, String> {
        match cmd.menu {
            _ if cmd.verb == Verb::Put => self.put(cmd, out),
            Menu::Disk | Menu::File => self.storage(cmd, out),
            Menu::BtrfsSubvolume | Menu::BtrfsFilesystem => self.btrfs(cmd, out),
            _ => self.system(cmd, out),
        }
    }

    /// `:put <value>`.
    fn put(&mut self, cmd: &Command, out: &mut String) -> Result<Ret, String> {
        let v = match cmd.positional.first() {
            Some((v, _)) => self.text(v)?,
            None => String::new(),
        };
        out.push_str(&v);
        out.push_str("\r\n");
        Ok(Ret::Nothing)
    }

    /// A value as text; a substitution runs its command.
    pub(super) fn text(&mut self, v: &Value) -> Result<String, String> {
        match v {
            Value::Text(t) => Ok(t.clone()),
            Value::Subst(c) => {
                let mut sink = String::new();
                Ok(match self.exec(c, &mut sink)? {
                    Ret::Nothing => String::new(),
                    Ret::Text(t) => t,
                    Ret::Ids(ids) => ids
                        .iter()
                        .map(|i| format_id(*i, self.upper()))
                        .collect::<Vec<_>>()
                        .join(";"),
                })
            }
        }
    }

    /// Resolve an item reference (ids, names, print numbers, or `[find]`) in `menu`.
    pub(super) fn items(&mut self, menu: Menu, v: &Value) -> Result<Vec<u64>, String> {
        let text = match v {
            Value::Subst(c) => {
                let mut sink = String::new();
                match self.exec(c, &mut sink)? {
                    Ret::Ids(ids) => return Ok(ids),
                    Ret::Nothing => return Ok(Vec::new()),
                    Ret::Text(t) => t,
                }
            }
            Value::Text(t) => t.clone(),
        };
        let all = self.all_ids(menu);
        let mut out = Vec::new();
        for part in text.split([',', ';']).filter(|p| !p.is_empty()) {
            let id = if let Some(id) = parse_id(part) {
                all.iter().find(|(i, _)| *i == id).map(|(i, _)| *i)
            } else if part.bytes().all(|b| b.is_ascii_digit()) {
                part.parse::<usize>()
                    .ok()
                    .and_then(|n| all.get(n))
                    .map(|(i, _)| *i)
            } else {
                all.iter().find(|(_, name)| name == part).map(|(i, _)| *i)
            };
            out.push(id.ok_or_else(|| "no such item".to_owned())?);
        }
        if text.is_empty() && matches!(v, Value::Text(_)) {
            return Err("no such item".into());
        }
        Ok(out)
    }

    /// The items a `remove`/`set` names (its first unnamed argument).
    pub(super) fn target(&mut self, cmd: &Command) -> Result<Vec<u64>, String> {
        let Some((v, _)) = cmd.positional.first() else {
            return Err("no such item".into());
        };
        self.items(cmd.menu, v)
    }

    /// `(id, name)` of every item of a menu, in print order.
    pub(super) fn all_ids(&mut self, menu: Menu) -> Vec<(u64, String)> {
        match menu {
            Menu::File => {
                // Names and print numbers mean the whole listing, as it is now.
                self.dev.store.rescan();
                self.dev
                    .files()
                    .into_iter()
                    .map(|f| (f.id, f.info.name))
                    .collect()
            }
            Menu::BtrfsSubvolume => self
                .dev
                .state
                .btrfs
                .subvolumes
                .iter()
                .map(|s| (s.id, s.name.clone()))
                .collect(),
            Menu::BtrfsFilesystem => self
                .dev
                .btrfs_fs(None)
                .map(|fs| vec![(1, fs)])
                .unwrap_or_default(),
            _ => self
                .dev
                .state
                .disks
                .iter()
                .map(|d| (d.id, d.slot.clone()))
                .collect(),
        }
    }

    /// `remove`/`set` whose `[find]` matched nothing (docs/routeros.md §3.2).
    pub(super) fn empty_find(&self) -> Result<Ret, String> {
        match self.dev.behaviour.empty_find {
            EmptyFindMode::NoOp => Ok(Ret::Nothing),
            EmptyFindMode::NoSuchItem => Err("no such item".into()),
        }
    }

    /// `count-only` and `as-value` (bare `as-value` prints nothing, docs/routeros.md §4.13).
    pub(super) fn print_shortcut(&self, cmd: &Command, n: usize, out: &mut String) -> bool {
        if cmd.words.iter().any(|w| w == "count-only") {
            out.push_str(&format!("{n}\r\n"));
            return true;
        }
        cmd.words.iter().any(|w| w == "as-value")
    }

    /// `get <item> <property>` in any menu with items.
    pub(super) fn get(&mut self, cmd: &Command) -> Result<Ret, String> {
        let (Some((item, _)), Some((prop, _))) = (cmd.positional.first(), cmd.positional.get(1))
        else {
            return Err("no such item".into());
        };
        let ids = self.items(cmd.menu, item)?;
        let prop = self.text(prop)?;
        let Some(id) = ids.first() else {
            return Err("no such item".into());
        };
        let props = self
            .props_of(cmd.menu, *id)
            .ok_or_else(|| "no such item".to_owned())?;
        props
            .0
            .iter()
            .find(|(k, _)| *k == prop)
            .map(|(_, v)| Ret::Text(v.clone()))
            .ok_or_else(|| "input does not match any value of value-name".to_owned())
    }

    /// `find` in any menu with items.
    pub(super) fn find(&mut self, cmd: &Command) -> Result<Ret, String> {
        Ok(Ret::Ids(
            self.matching(cmd)?.into_iter().map(|(id, _)| id).collect(),
        ))
    }
}
