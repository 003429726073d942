//! Runs parsed commands against the device model and produces RouterOS output.
//!
//! A parse error rejects the whole line; a runtime error prints its text and stops at the
//! failing command (docs/routeros.md §2.3). `add`/`set`/`remove` print nothing on success
//! (docs/routeros.md §3.5).

use rds_routeros::{Legend, format_human_size};

use super::expr::{Props, eq_alternatives, eval, mentions_any, parse_number, values_eq};
use super::parse::{Command, Menu, Value, Verb, parse_line};
use crate::config::EmptyFindMode;
use crate::model::{Device, Disk, DiskArgs, DiskKind, FileItem, POOL, format_id, parse_id};
use crate::render::{self, Layout};
use crate::store::FileKind;

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

/// What `where` evaluation needs, computed once per command.
/// Each variant carries an id → position index, so evaluating a filter over
/// n items is O(n), not O(n²).
enum View {
    None,
    Files(Vec<FileItem>, std::collections::HashMap<u64, usize>),
    /// Pool usage walks every file: computed only if the pool record's
    /// properties are needed.
    Usage(
        std::cell::OnceCell<crate::model::PoolUsage>,
        std::collections::HashMap<u64, usize>,
    ),
}

enum Ret {
    Nothing,
    Ids(Vec<u64>),
    Text(String),
}

struct Ctx<'d, 'a> {
    dev: &'d mut Device<'a>,
    sess: &'d Session,
    reboot: bool,
    hang: bool,
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
        match ctx.exec(cmd, &mut out) {
            Ok(_) => {}
            Err(text) => {
                out.push_str(&text);
                out.push_str("\r\n");
                error = true;
                break;
            }
        }
        if ctx.hang || ctx.reboot {
            break;
        }
    }
    Outcome {
        output: out,
        error,
        reboot: ctx.reboot,
        hang: ctx.hang,
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes".into() } else { "no".into() }
}

fn parse_bool(arg: &str, v: &str) -> Result<bool, String> {
    match v {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("input does not match any value of {arg}")),
    }
}

fn parse_num(arg: &str, v: &str) -> Result<u64, String> {
    parse_number(v).ok_or_else(|| {
        if v.starts_with(|c: char| c.is_ascii_digit()) {
            format!("value of {arg} contains invalid trailing characters")
        } else {
            format!("invalid value for argument {arg}")
        }
    })
}

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
    fn upper(&self) -> bool {
        self.dev.behaviour.uppercase_ids()
    }

    fn text(&mut self, v: &Value) -> Result<String, String> {
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
    fn items(&mut self, menu: Menu, v: &Value) -> Result<Vec<u64>, String> {
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

    /// `(id, name)` of every item of a menu, in print order.
    fn all_ids(&mut self, menu: Menu) -> Vec<(u64, String)> {
        match menu {
            Menu::File => self
                .dev
                .files()
                .into_iter()
                .map(|f| (f.id, f.info.name))
                .collect(),
            _ => self
                .dev
                .state
                .disks
                .iter()
                .map(|d| (d.id, d.slot.clone()))
                .collect(),
        }
    }

    fn empty_find(&self) -> Result<(), String> {
        match self.dev.behaviour.empty_find {
            EmptyFindMode::NoOp => Ok(()),
            EmptyFindMode::NoSuchItem => Err("no such item".into()),
        }
    }

    fn exec(&mut self, cmd: &Command, out: &mut String) -> Result<Ret, String> {
        match (cmd.menu, cmd.verb) {
            (_, Verb::Put) => {
                let v = match cmd.positional.first() {
                    Some((v, _)) => self.text(v)?,
                    None => String::new(),
                };
                out.push_str(&v);
                out.push_str("\r\n");
                Ok(Ret::Nothing)
            }
            (Menu::Disk, Verb::Add) => self.disk_add(cmd),
            (Menu::Disk, Verb::Set) => self.disk_set(cmd),
            (Menu::Disk | Menu::File, Verb::Remove) => {
                let Some((v, _)) = cmd.positional.first() else {
                    return Err("no such item".into());
                };
                let ids = self.items(cmd.menu, v)?;
                if ids.is_empty() {
                    return self.empty_find().map(|()| Ret::Nothing);
                }
                if cmd.menu == Menu::Disk {
                    self.dev.disk_remove(&ids)?;
                } else {
                    self.dev.file_remove(&ids)?;
                }
                self.dev.dirty = true;
                Ok(Ret::Nothing)
            }
            (Menu::Disk | Menu::File, Verb::Find) => Ok(Ret::Ids(
                self.matching(cmd)?.into_iter().map(|(id, _)| id).collect(),
            )),
            (Menu::Disk, Verb::Print) => {
                let matched = self.matching(cmd)?;
                if self.print_shortcut(cmd, matched.len(), out) {
                    return Ok(Ret::Nothing);
                }
                let legend = Legend::rose_storage();
                let usage = self.dev.usage();
                let flag_layout = self.dev.behaviour.flag_layout;
                let records: Vec<_> = matched
                    .iter()
                    .filter_map(|(id, n)| {
                        let d = self.dev.state.disks.iter().find(|d| d.id == *id)?;
                        Some(render::disk_record(&legend, flag_layout, d, usage, *n))
                    })
                    .collect();
                out.push_str(&render::disk_print(&legend, &records, &self.sess.layout));
                Ok(Ret::Nothing)
            }
            (Menu::File, Verb::Print) => {
                let matched = self.matching(cmd)?;
                if self.print_shortcut(cmd, matched.len(), out) {
                    return Ok(Ret::Nothing);
                }
                let files = self.dev.files();
                let records: Vec<_> = matched
                    .iter()
                    .filter_map(|(id, n)| {
                        files
                            .iter()
                            .find(|f| f.id == *id)
                            .map(|f| render::file_record(f, *n))
                    })
                    .collect();
                out.push_str(&render::file_print(&records, &self.sess.layout));
                Ok(Ret::Nothing)
            }
            (Menu::File, Verb::Add) => {
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
            (Menu::Disk | Menu::File, Verb::Get) => {
                let (Some((item, _)), Some((prop, _))) =
                    (cmd.positional.first(), cmd.positional.get(1))
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
            (Menu::Disk, Verb::MonitorTraffic) => {
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
            (Menu::SystemResource, Verb::Print) => {
                out.push_str(&render::singleton(&self.resource(), 25));
                Ok(Ret::Nothing)
            }
            (Menu::SystemIdentity, Verb::Print) => {
                out.push_str(&render::singleton(&[("name".into(), self.identity())], 6));
                Ok(Ret::Nothing)
            }
            (Menu::SystemResource, Verb::Get) | (Menu::SystemIdentity, Verb::Get) => {
                let Some((p, _)) = cmd.positional.first() else {
                    return Err("input does not match any value of value-name".into());
                };
                let p = self.text(p)?;
                let pairs = if cmd.menu == Menu::SystemResource {
                    self.resource()
                } else {
                    vec![("name".into(), self.identity())]
                };
                pairs
                    .into_iter()
                    .find(|(k, _)| *k == p)
                    .map(|(_, v)| Ret::Text(v))
                    .ok_or_else(|| "input does not match any value of value-name".into())
            }
            (Menu::SystemIdentity, Verb::Set) => {
                if let Some(v) = cmd.arg("name") {
                    let n = self.text(v)?;
                    self.dev.state.identity = Some(n);
                    self.dev.dirty = true;
                }
                Ok(Ret::Nothing)
            }
            (Menu::SystemPackage | Menu::IpService | Menu::UserActive, Verb::Print) => {
                let (behaviour, sess) = (self.dev.behaviour, self.sess);
                let mut text = String::new();
                super::setup_menus::print(
                    cmd,
                    behaviour,
                    &sess.logins,
                    &sess.layout,
                    &mut |v| self.text(v),
                    &mut text,
                )?;
                out.push_str(&text);
                Ok(Ret::Nothing)
            }
            (Menu::System, Verb::Reboot) => {
                self.reboot = true;
                Ok(Ret::Nothing)
            }
            _ => Err("bad command name".into()),
        }
    }

    fn identity(&self) -> String {
        self.dev
            .state
            .identity
            .clone()
            .unwrap_or_else(|| self.dev.behaviour.identity.clone())
    }

    fn resource(&self) -> Vec<(String, String)> {
        let b = self.dev.behaviour;
        let p = |k: &str, v: String| (k.to_owned(), v);
        vec![
            p("uptime", render::uptime(self.sess.uptime_secs)),
            p("version", b.version.clone()),
            p("free-memory", format_human_size(30 << 30)),
            p("total-memory", format_human_size(32 << 30)),
            p("cpu-count", "16".into()),
            p("cpu-load", "1%".into()),
            p("free-hdd-space", format_human_size(1167 << 20)),
            p("total-hdd-space", format_human_size(1280 << 20)),
            p("architecture-name", "arm64".into()),
            p("board-name", b.board_name.clone()),
        ]
    }

    /// `count-only` and `as-value` (bare `as-value` prints nothing, docs/routeros.md §4.13).
    fn print_shortcut(&self, cmd: &Command, n: usize, out: &mut String) -> bool {
        if cmd.words.iter().any(|w| w == "count-only") {
            out.push_str(&format!("{n}\r\n"));
            return true;
        }
        cmd.words.iter().any(|w| w == "as-value")
    }

    /// Items matching the command's filter, with their print numbers.
    fn matching(&mut self, cmd: &Command) -> Result<Vec<(u64, u32)>, String> {
        let all = self.all_ids(cmd.menu);
        // Computed once per command: both walk the pool's files.
        let view = match (&cmd.filter, cmd.menu) {
            (None, _) => View::None,
            (Some(_), Menu::File) => self.files_view(),
            (Some(f), _) => {
                let view = self.usage_view();
                // Membership only: a filter that reads no usage property
                // does not need the pool's usage (a walk over every file).
                if !mentions_any(f, &["size", "free", "use"])
                    && let View::Usage(cell, _) = &view
                {
                    let _ = cell.set(crate::model::PoolUsage { total: 0, used: 0 });
                }
                view
            }
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
        if self.dev.behaviour.numbering == crate::config::NumberingMode::Filtered {
            for (i, item) in out.iter_mut().enumerate() {
                item.1 = u32::try_from(i).unwrap_or(u32::MAX);
            }
        }
        Ok(out)
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
                View::Usage(_, at) => {
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
                View::None => None,
            }
        };
        alts.iter().any(|(prop, want)| match cheap(prop) {
            None => true,
            Some(None) => false,
            Some(Some(have)) => values_eq(have, want),
        })
    }

    fn props_in(&self, view: &View, id: u64) -> Option<Props> {
        let upper = self.upper();
        match view {
            View::Files(files, at) => at
                .get(&id)
                .and_then(|&i| files.get(i))
                .map(|f| file_props(f, upper)),
            View::Usage(u, at) => at
                .get(&id)
                .and_then(|&i| self.dev.state.disks.get(i))
                .map(|d| disk_props(d, upper, &|| *u.get_or_init(|| self.dev.usage()))),
            View::None => None,
        }
    }

    fn props_of(&mut self, menu: Menu, id: u64) -> Option<Props> {
        let view = match menu {
            Menu::File => self.files_view(),
            _ => self.usage_view(),
        };
        self.props_in(&view, id)
    }

    fn files_view(&mut self) -> View {
        let files = self.dev.files();
        let at = files.iter().enumerate().map(|(i, f)| (f.id, i)).collect();
        View::Files(files, at)
    }

    fn usage_view(&mut self) -> View {
        let at = self
            .dev
            .state
            .disks
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id, i))
            .collect();
        View::Usage(std::cell::OnceCell::new(), at)
    }

    fn disk_args(&mut self, cmd: &Command) -> Result<DiskArgs, String> {
        let mut a = DiskArgs::default();
        for arg in &cmd.args {
            let v = self.text(&arg.value)?;
            let n = arg.name.as_str();
            match n {
                "slot" => {
                    if v.is_empty() {
                        return Err("invalid value for argument slot".into());
                    }
                    a.slot = Some(v);
                }
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
                "comment" | "parent" | "type" | "copy-from" => {}
                _ => return Err(format!("invalid value for argument {n}")),
            }
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
        let Some((v, _)) = cmd.positional.first() else {
            return Err("no such item".into());
        };
        let ids = self.items(Menu::Disk, v)?;
        let args = self.disk_args(cmd)?;
        if ids.is_empty() {
            return self.empty_find().map(|()| Ret::Nothing);
        }
        self.dev.disk_set(&ids, &args)?;
        self.dev.dirty = true;
        Ok(Ret::Nothing)
    }
}

fn disk_props(d: &Disk, upper: bool, usage: &dyn Fn() -> crate::model::PoolUsage) -> Props {
    let mut p: Vec<(&'static str, String)> =
        vec![(".id", format_id(d.id, upper)), ("slot", d.slot.clone())];
    p.push(("disabled", yes_no(d.disabled)));
    p.push(("block-device", "yes".into()));
    p.push(("slot-default", String::new()));
    match &d.kind {
        DiskKind::Pool => {
            let usage = usage();
            p.extend([
                ("type", "raid".to_owned()),
                ("parent", "none".into()),
                ("fs", "btrfs".into()),
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

fn file_props(f: &FileItem, upper: bool) -> Props {
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
