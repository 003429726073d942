//! Console line parser (docs/routeros.md §3.1, §5).
//!
//! The whole line is parsed before anything runs, so a syntax error anywhere rejects every
//! command of the line (docs/routeros.md §2.3). Positions are 1-based columns of characters, as RouterOS
//! prints them (`/system/resource/print bogus=1` → column 24).
//!
//! Position choices where the reference is silent (README): a bad escape or an unquoted
//! `$`/`\` reports the column of that character; an unterminated quote reports the column of
//! the opening quote; an unknown `where` property reports `expected end of command` at it.

use std::fmt;

use super::expr::{Expr, Op};

/// A position in the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: u32,
    pub col: u32,
}

/// A parse error, printed exactly as RouterOS prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ParseError {
    BadCommandName(String, Pos),
    ExpectedEndOfCommand(Pos),
    SyntaxError(Pos),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (text, pos) = match self {
            Self::BadCommandName(w, p) => (format!("bad command name {w}"), p),
            Self::ExpectedEndOfCommand(p) => ("expected end of command".to_owned(), p),
            Self::SyntaxError(p) => ("syntax error".to_owned(), p),
        };
        write!(f, "{text} (line {} column {})", pos.line, pos.col)
    }
}

/// Console menus the simulator knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Menu {
    Root,
    Disk,
    File,
    System,
    SystemResource,
    SystemIdentity,
    SystemPackage,
    Ip,
    IpService,
    User,
    UserActive,
    /// `/disk/btrfs`.
    DiskBtrfs,
    /// `/disk/btrfs/subvolume`.
    BtrfsSubvolume,
    /// `/disk/btrfs/filesystem`.
    BtrfsFilesystem,
}

/// Commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verb {
    Add,
    Set,
    Remove,
    Print,
    Find,
    Get,
    MonitorTraffic,
    Reboot,
    /// `:put <value>`.
    Put,
}

fn submenu(menu: Menu, word: &str) -> Option<Menu> {
    Some(match (menu, word) {
        (Menu::Root, "disk") => Menu::Disk,
        (Menu::Root, "file") => Menu::File,
        (Menu::Root, "system") => Menu::System,
        (Menu::System, "resource") => Menu::SystemResource,
        (Menu::System, "identity") => Menu::SystemIdentity,
        (Menu::System, "package") => Menu::SystemPackage,
        (Menu::Root, "ip") => Menu::Ip,
        (Menu::Ip, "service") => Menu::IpService,
        (Menu::Root, "user") => Menu::User,
        (Menu::User, "active") => Menu::UserActive,
        (Menu::Disk, "btrfs") => Menu::DiskBtrfs,
        (Menu::DiskBtrfs, "subvolume") => Menu::BtrfsSubvolume,
        (Menu::DiskBtrfs, "filesystem") => Menu::BtrfsFilesystem,
        _ => return None,
    })
}

fn verb(menu: Menu, word: &str) -> Option<Verb> {
    use Verb::*;
    Some(match (menu, word) {
        (Menu::Disk, "add") | (Menu::File, "add") => Add,
        (Menu::Disk | Menu::File | Menu::SystemIdentity, "set") => Set,
        (Menu::Disk | Menu::File, "remove") => Remove,
        (Menu::Disk | Menu::File | Menu::SystemResource | Menu::SystemIdentity, "print") => Print,
        (Menu::Disk | Menu::File, "find") => Find,
        (Menu::Disk | Menu::File | Menu::SystemResource | Menu::SystemIdentity, "get") => Get,
        (Menu::Disk, "monitor-traffic") => MonitorTraffic,
        (Menu::System, "reboot") => Reboot,
        (Menu::SystemPackage | Menu::IpService | Menu::UserActive, "print") => Print,
        (Menu::BtrfsSubvolume, "add") => Add,
        (Menu::BtrfsSubvolume, "set") => Set,
        (Menu::BtrfsSubvolume, "remove") => Remove,
        (Menu::BtrfsSubvolume | Menu::BtrfsFilesystem, "print") => Print,
        (Menu::BtrfsSubvolume | Menu::BtrfsFilesystem, "find") => Find,
        (Menu::BtrfsSubvolume | Menu::BtrfsFilesystem, "get") => Get,
        _ => return None,
    })
}

/// Settable `/disk` properties of a file disk (docs/routeros.md §4.12).
pub(crate) const DISK_SETTABLE: &[&str] = &[
    "slot",
    "disabled",
    "comment",
    "file-path",
    "file-size",
    "file-offset",
    "mount-filesystem",
    "mount-read-only",
    "compress",
    "swap",
    "nvme-tcp-export",
    "nvme-tcp-server-port",
    "nvme-tcp-server-nqn",
    "nvme-tcp-server-allow-host-name",
    "nvme-tcp-server-password",
    "iscsi-export",
    "nfs-sharing",
    "smb-sharing",
    "media-sharing",
    "media-interface",
    "parent",
];

/// Properties a `/disk` `where` may name besides the printed ones
/// (`rds_routeros::DISK_ORDER`, one list shared with the renderer): the id
/// and the flag properties.
const DISK_EXTRA_PROPS: &[&str] = &[".id", "disabled", "block-device", "mounted", "comment"];

/// `where` on the Btrfs menus: the printed properties (`rds_routeros::SUBVOLUME_ORDER` /
/// `FILESYSTEM_ORDER`, docs/routeros.md §6.15: one list shared with the renderer) plus the id.
fn is_btrfs_prop(order: &[&str], prop: &str) -> bool {
    prop == ".id" || order.contains(&prop)
}

pub(crate) const FILE_PROPS: &[&str] = &[".id", "name", "type", "size", "last-modified"];

const PRINT_WORDS: &[&str] = &[
    "detail",
    "count-only",
    "terse",
    "brief",
    "as-value",
    "without-paging",
];

/// An argument value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    Text(String),
    Subst(Box<Command>),
}

/// `name=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Arg {
    pub name: String,
    pub pos: Pos,
    pub value: Value,
}

/// One parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Command {
    pub menu: Menu,
    pub verb: Verb,
    pub args: Vec<Arg>,
    pub positional: Vec<(Value, Pos)>,
    pub words: Vec<String>,
    pub filter: Option<Expr>,
}

impl Command {
    pub(crate) fn arg(&self, name: &str) -> Option<&Value> {
        self.args
            .iter()
            .rev()
            .find(|a| a.name == name)
            .map(|a| &a.value)
    }
}

struct Cursor<'a> {
    chars: Vec<char>,
    i: usize,
    line: u32,
    line_start: usize,
    _src: &'a str,
}

type PResult<T> = Result<T, ParseError>;

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Characters that end a bare value.
fn ends_bare(c: char) -> bool {
    c.is_whitespace() || matches!(c, ';' | ']' | '=')
}

/// Characters that may not appear in a bare value (docs/routeros.md §3.1; `?` only escaped).
fn illegal_bare(c: char) -> bool {
    matches!(
        c,
        '\'' | '(' | ')' | '$' | '[' | '{' | '}' | '`' | '\\' | '"' | '?'
    )
}

impl<'a> Cursor<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            chars: src.chars().collect(),
            i: 0,
            line: 1,
            line_start: 0,
            _src: src,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.i + n).copied()
    }

    fn pos(&self) -> Pos {
        let col = u32::try_from(self.i - self.line_start + 1).unwrap_or(u32::MAX);
        Pos {
            line: self.line,
            col,
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.line_start = self.i;
        }
        Some(c)
    }

    /// Skip spaces and tabs (and a CR), not newlines (they end a command).
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\r')) {
            self.bump();
        }
    }

    fn at_end_of_command(&self, in_subst: bool) -> bool {
        match self.peek() {
            None | Some(';' | '\n') => true,
            Some(']') => in_subst,
            _ => false,
        }
    }

    fn read_word(&mut self) -> String {
        let mut w = String::new();
        while let Some(c) = self.peek() {
            if !is_word_char(c) {
                break;
            }
            w.push(c);
            self.bump();
        }
        w
    }

    /// A double-quoted string; the cursor is on the opening quote.
    fn read_quoted(&mut self) -> PResult<String> {
        let open = self.pos();
        self.bump();
        let mut out = String::new();
        loop {
            let here = self.pos();
            let Some(c) = self.bump() else {
                return Err(ParseError::SyntaxError(open));
            };
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let Some(e) = self.bump() else {
                        return Err(ParseError::SyntaxError(here));
                    };
                    let ch = match e {
                        '"' => '"',
                        '\\' => '\\',
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        '$' => '$',
                        '?' => '?',
                        '_' => ' ',
                        'a' => '\x07',
                        'b' => '\x08',
                        'f' => '\x0c',
                        'v' => '\x0b',
                        h if is_upper_hex(h) => {
                            let Some(l) = self.peek().filter(|c| is_upper_hex(*c)) else {
                                return Err(ParseError::SyntaxError(here));
                            };
                            self.bump();
                            let v = hex_val(h) * 16 + hex_val(l);
                            char::from(v)
                        }
                        _ => return Err(ParseError::SyntaxError(here)),
                    };
                    out.push(ch);
                }
                '$' => {
                    // Variable substitution: no variables exist, so it expands to nothing.
                    let name = self.read_var_name();
                    if name.is_empty() {
                        return Err(ParseError::SyntaxError(here));
                    }
                }
                c => out.push(c),
            }
        }
    }

    fn read_var_name(&mut self) -> String {
        let mut w = String::new();
        while let Some(c) = self.peek() {
            if !(c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                break;
            }
            w.push(c);
            self.bump();
        }
        w
    }

    /// A bare value: runs to whitespace, `;`, `]` or `=`.
    fn read_bare(&mut self) -> PResult<String> {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if ends_bare(c) {
                break;
            }
            if illegal_bare(c) {
                return Err(ParseError::SyntaxError(self.pos()));
            }
            out.push(c);
            self.bump();
        }
        Ok(out)
    }
}

fn is_upper_hex(c: char) -> bool {
    c.is_ascii_digit() || ('A'..='F').contains(&c)
}

fn hex_val(c: char) -> u8 {
    c.to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
        .unwrap_or(0)
}

/// Parse a whole exec line into commands (empty commands dropped).
pub(crate) fn parse_line(src: &str) -> Result<Vec<Command>, ParseError> {
    let mut cur = Cursor::new(src);
    let mut out = Vec::new();
    loop {
        if let Some(cmd) = parse_command(&mut cur, Menu::Root, false)? {
            out.push(cmd);
        }
        cur.skip_ws();
        match cur.peek() {
            None => return Ok(out),
            Some(';' | '\n') => {
                cur.bump();
            }
            Some(_) => return Err(ParseError::ExpectedEndOfCommand(cur.pos())),
        }
    }
}

fn parse_command(cur: &mut Cursor<'_>, base: Menu, in_subst: bool) -> PResult<Option<Command>> {
    cur.skip_ws();
    if cur.at_end_of_command(in_subst) {
        return Ok(None);
    }
    if cur.peek() == Some(':') {
        cur.bump();
        let pos = cur.pos();
        let w = cur.read_word();
        if w != "put" {
            return Err(if w.is_empty() {
                ParseError::SyntaxError(pos)
            } else {
                ParseError::BadCommandName(w, pos)
            });
        }
        cur.skip_ws();
        let value = if cur.at_end_of_command(in_subst) {
            Value::Text(String::new())
        } else {
            parse_value(cur, base, in_subst)?
        };
        return Ok(Some(Command {
            menu: base,
            verb: Verb::Put,
            args: Vec::new(),
            positional: vec![(value, pos)],
            words: Vec::new(),
            filter: None,
        }));
    }
    let mut menu = base;
    if cur.peek() == Some('/') {
        menu = Menu::Root;
        cur.bump();
    }
    let verb = loop {
        cur.skip_ws();
        if cur.at_end_of_command(in_subst) {
            // A bare menu path (`/disk`) just changes the console's menu: no output.
            return Ok(None);
        }
        let pos = cur.pos();
        let word = cur.read_word();
        if word.is_empty() {
            return Err(ParseError::SyntaxError(pos));
        }
        if let Some(m) = submenu(menu, &word) {
            menu = m;
            if cur.peek() == Some('/') {
                cur.bump();
                if matches!(cur.peek(), Some(' ' | '\t') | None) {
                    return Err(ParseError::SyntaxError(cur.pos()));
                }
            }
            continue;
        }
        if let Some(v) = verb(menu, &word) {
            if cur.peek() == Some('/') {
                return Err(ParseError::SyntaxError(cur.pos()));
            }
            break v;
        }
        if cur.peek() == Some('/') {
            return Err(ParseError::SyntaxError(cur.pos()));
        }
        return Err(ParseError::BadCommandName(word, pos));
    };
    let mut cmd = Command {
        menu,
        verb,
        args: Vec::new(),
        positional: Vec::new(),
        words: Vec::new(),
        filter: None,
    };
    parse_args(cur, &mut cmd, in_subst)?;
    Ok(Some(cmd))
}

fn allowed_named(menu: Menu, verb: Verb) -> &'static [&'static str] {
    match (menu, verb) {
        (Menu::Disk, Verb::Add) => &[
            "type",
            "copy-from",
            "slot",
            "disabled",
            "comment",
            "file-path",
            "file-size",
            "file-offset",
            "mount-filesystem",
            "mount-read-only",
            "compress",
            "swap",
            "nvme-tcp-export",
            "nvme-tcp-server-port",
            "nvme-tcp-server-nqn",
            "nvme-tcp-server-allow-host-name",
            "nvme-tcp-server-password",
            "iscsi-export",
            "nfs-sharing",
            "smb-sharing",
            "media-sharing",
            "media-interface",
            "parent",
        ],
        (Menu::Disk, Verb::Set) => DISK_SETTABLE,
        (Menu::File, Verb::Add) => &["name", "type", "contents"],
        (Menu::SystemIdentity, Verb::Set) => &["name"],
        (Menu::BtrfsSubvolume, Verb::Add) => &["fs", "name", "parent", "read-only"],
        (Menu::BtrfsSubvolume, Verb::Set) => &["read-only"],
        _ => &[],
    }
}

/// How many unnamed arguments a command takes.
fn max_positional(verb: Verb) -> usize {
    match verb {
        Verb::Set | Verb::Remove | Verb::MonitorTraffic => 1,
        Verb::Get => 2,
        _ => 0,
    }
}

fn is_where_prop(menu: Menu, prop: &str) -> bool {
    match menu {
        Menu::File => FILE_PROPS.contains(&prop),
        Menu::SystemPackage | Menu::IpService | Menu::UserActive => {
            super::setup_menus::WHERE_PROPS.contains(&prop)
        }
        Menu::BtrfsSubvolume => is_btrfs_prop(rds_routeros::btrfs::SUBVOLUME_ORDER, prop),
        Menu::BtrfsFilesystem => is_btrfs_prop(rds_routeros::btrfs::FILESYSTEM_ORDER, prop),
        _ => rds_routeros::DISK_ORDER.contains(&prop) || DISK_EXTRA_PROPS.contains(&prop),
    }
}

fn parse_args(cur: &mut Cursor<'_>, cmd: &mut Command, in_subst: bool) -> PResult<()> {
    if cmd.verb == Verb::Find {
        cur.skip_ws();
        if !cur.at_end_of_command(in_subst) {
            let save = (cur.i, cur.line, cur.line_start);
            let w = cur.read_word();
            if w != "where" || !matches!(cur.peek(), Some(' ' | '\t') | None) {
                (cur.i, cur.line, cur.line_start) = save;
            }
            cmd.filter = Some(parse_where(cur, cmd.menu, in_subst)?);
        }
        return expect_end(cur, in_subst);
    }
    loop {
        cur.skip_ws();
        if cur.at_end_of_command(in_subst) {
            return Ok(());
        }
        let pos = cur.pos();
        match cur.peek() {
            Some('[') | Some('"') => {
                let v = parse_value(cur, cmd.menu, in_subst)?;
                if cmd.positional.len() >= max_positional(cmd.verb) {
                    return Err(ParseError::ExpectedEndOfCommand(pos));
                }
                cmd.positional.push((v, pos));
                continue;
            }
            _ => {}
        }
        let word = cur.read_bare()?;
        if word.is_empty() {
            // `=` (or another delimiter) where an argument should start.
            return Err(ParseError::ExpectedEndOfCommand(pos));
        }
        if cur.peek() == Some('=') {
            if !allowed_named(cmd.menu, cmd.verb).contains(&word.as_str()) {
                return Err(ParseError::ExpectedEndOfCommand(pos));
            }
            cur.bump();
            let value = match cur.peek() {
                Some(' ' | '\t') => {
                    // `name= next`: RouterOS takes the next token as the value (docs/routeros.md §3.1).
                    cur.skip_ws();
                    if cur.at_end_of_command(in_subst) {
                        Value::Text(String::new())
                    } else {
                        parse_value(cur, cmd.menu, in_subst)?
                    }
                }
                _ if cur.at_end_of_command(in_subst) => Value::Text(String::new()),
                _ => parse_value(cur, cmd.menu, in_subst)?,
            };
            cmd.args.push(Arg {
                name: word,
                pos,
                value,
            });
            continue;
        }
        if word == "where" && cmd.verb == Verb::Print {
            cmd.filter = Some(parse_where(cur, cmd.menu, in_subst)?);
            return expect_end(cur, in_subst);
        }
        if cmd.verb == Verb::Print && PRINT_WORDS.contains(&word.as_str()) {
            cmd.words.push(word);
            continue;
        }
        if cmd.verb == Verb::MonitorTraffic && word == "once" {
            cmd.words.push(word);
            continue;
        }
        if cmd.positional.len() >= max_positional(cmd.verb) {
            return Err(ParseError::ExpectedEndOfCommand(pos));
        }
        cmd.positional.push((Value::Text(word), pos));
    }
}

fn expect_end(cur: &mut Cursor<'_>, in_subst: bool) -> PResult<()> {
    cur.skip_ws();
    if cur.at_end_of_command(in_subst) {
        Ok(())
    } else {
        Err(ParseError::ExpectedEndOfCommand(cur.pos()))
    }
}

/// A value: quoted string, `[command]` or bare run.
fn parse_value(cur: &mut Cursor<'_>, menu: Menu, in_subst: bool) -> PResult<Value> {
    match cur.peek() {
        Some('"') => Ok(Value::Text(cur.read_quoted()?)),
        Some('[') => {
            cur.bump();
            let inner = parse_command(cur, menu, true)?;
            cur.skip_ws();
            if cur.peek() != Some(']') {
                return Err(if cur.peek().is_none() {
                    ParseError::SyntaxError(cur.pos())
                } else {
                    ParseError::ExpectedEndOfCommand(cur.pos())
                });
            }
            cur.bump();
            // Something glued to `]` (e.g. `[find]x`) is an error.
            if let Some(c) = cur.peek()
                && !(c.is_whitespace() || c == ';' || (in_subst && c == ']'))
            {
                return Err(ParseError::ExpectedEndOfCommand(cur.pos()));
            }
            Ok(match inner {
                Some(c) => Value::Subst(Box::new(c)),
                None => Value::Text(String::new()),
            })
        }
        _ => Ok(Value::Text(cur.read_bare()?)),
    }
}

// ---- where expressions ----

fn parse_where(cur: &mut Cursor<'_>, menu: Menu, in_subst: bool) -> PResult<Expr> {
    cur.skip_ws();
    if cur.at_end_of_command(in_subst) {
        return Err(ParseError::SyntaxError(cur.pos()));
    }
    parse_or(cur, menu, in_subst)
}

fn keyword(cur: &mut Cursor<'_>, sym: &str, word: &str) -> bool {
    cur.skip_ws();
    let s: String = cur.chars[cur.i..].iter().take(sym.len()).collect();
    if s == sym {
        for _ in 0..sym.len() {
            cur.bump();
        }
        return true;
    }
    let w: String = cur.chars[cur.i..].iter().take(word.len()).collect();
    let after = cur.chars.get(cur.i + word.len()).copied();
    if w == word && !after.is_some_and(is_word_char) {
        for _ in 0..word.len() {
            cur.bump();
        }
        return true;
    }
    false
}

fn parse_or(cur: &mut Cursor<'_>, menu: Menu, in_subst: bool) -> PResult<Expr> {
    let mut left = parse_and(cur, menu, in_subst)?;
    while keyword(cur, "||", "or") {
        let right = parse_and(cur, menu, in_subst)?;
        left = Expr::Or(Box::new(left), Box::new(right));
    }
    Ok(left)
}

fn parse_and(cur: &mut Cursor<'_>, menu: Menu, in_subst: bool) -> PResult<Expr> {
    let mut left = parse_unary(cur, menu, in_subst)?;
    while keyword(cur, "&&", "and") {
        let right = parse_unary(cur, menu, in_subst)?;
        left = Expr::And(Box::new(left), Box::new(right));
    }
    Ok(left)
}

fn parse_unary(cur: &mut Cursor<'_>, menu: Menu, in_subst: bool) -> PResult<Expr> {
    cur.skip_ws();
    if cur.peek() == Some('!') && cur.peek_at(1) != Some('=') {
        cur.bump();
        return Ok(Expr::Not(Box::new(parse_unary(cur, menu, in_subst)?)));
    }
    if keyword(cur, "\u{0}", "not") {
        return Ok(Expr::Not(Box::new(parse_unary(cur, menu, in_subst)?)));
    }
    parse_primary(cur, menu, in_subst)
}

fn parse_primary(cur: &mut Cursor<'_>, menu: Menu, in_subst: bool) -> PResult<Expr> {
    cur.skip_ws();
    let pos = cur.pos();
    if cur.peek() == Some('(') {
        cur.bump();
        let e = parse_or(cur, menu, in_subst)?;
        cur.skip_ws();
        if cur.peek() != Some(')') {
            return Err(ParseError::SyntaxError(cur.pos()));
        }
        cur.bump();
        return Ok(e);
    }
    let prop = cur.read_word();
    if prop.is_empty() {
        return Err(if cur.at_end_of_command(in_subst) {
            ParseError::SyntaxError(pos)
        } else {
            ParseError::ExpectedEndOfCommand(pos)
        });
    }
    if !is_where_prop(menu, prop.as_str()) {
        return Err(ParseError::ExpectedEndOfCommand(pos));
    }
    cur.skip_ws();
    let op = match (cur.peek(), cur.peek_at(1)) {
        (Some('!'), Some('=')) => Some((Op::Ne, 2)),
        (Some('<'), Some('=')) => Some((Op::Le, 2)),
        (Some('>'), Some('=')) => Some((Op::Ge, 2)),
        (Some('='), _) => Some((Op::Eq, 1)),
        (Some('~'), _) => Some((Op::Match, 1)),
        (Some('<'), _) => Some((Op::Lt, 1)),
        (Some('>'), _) => Some((Op::Gt, 1)),
        _ => None,
    };
    let Some((op, n)) = op else {
        return Ok(Expr::IsSet(prop));
    };
    for _ in 0..n {
        cur.bump();
    }
    cur.skip_ws();
    let vpos = cur.pos();
    let value = match cur.peek() {
        Some('"') | Some('[') => parse_value(cur, menu, in_subst)?,
        _ => {
            let mut s = String::new();
            while let Some(c) = cur.peek() {
                if c.is_ascii_alphanumeric()
                    || matches!(c, '-' | '_' | '.' | ':' | '*' | '+' | '@' | ',')
                {
                    s.push(c);
                    cur.bump();
                } else {
                    break;
                }
            }
            if s.is_empty() {
                return Err(match cur.peek() {
                    Some(c) if illegal_bare(c) => ParseError::SyntaxError(vpos),
                    _ if cur.at_end_of_command(in_subst) => ParseError::SyntaxError(vpos),
                    _ => ParseError::ExpectedEndOfCommand(vpos),
                });
            }
            if let Some(c) = cur.peek()
                && matches!(c, '$' | '\\' | '\'' | '?' | '"')
            {
                return Err(ParseError::SyntaxError(cur.pos()));
            }
            Value::Text(s)
        }
    };
    Ok(Expr::Cmp { prop, op, value })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn err(line: &str) -> String {
        parse_line(line).unwrap_err().to_string()
    }

    #[test]
    fn catalogue_positions() {
        assert_eq!(
            err("/system/resource/print bogus=1"),
            "expected end of command (line 1 column 24)"
        );
        assert_eq!(err("/nonsense/command"), "syntax error (line 1 column 10)");
        assert_eq!(err("/foo"), "bad command name foo (line 1 column 2)");
        assert_eq!(
            err("/disk frob x=1"),
            "bad command name frob (line 1 column 7)"
        );
        assert_eq!(
            err("/disk add slot=x note= show-at-login=yes"),
            "expected end of command (line 1 column 18)"
        );
        assert_eq!(
            err("/disk add slot= comment=yes"),
            "expected end of command (line 1 column 24)"
        );
        assert_eq!(
            err("/disk add slot=\"x\\y z\""),
            "syntax error (line 1 column 18)"
        );
        assert_eq!(err("/disk add slot=x$y"), "syntax error (line 1 column 17)");
        assert_eq!(
            err("/disk add slot=x\\y"),
            "syntax error (line 1 column 17)"
        );
        assert_eq!(err("/disk add slot='a'"), "syntax error (line 1 column 16)");
        assert_eq!(
            err("/disk add slot=\"abc"),
            "syntax error (line 1 column 16)"
        );
        assert_eq!(
            err("/disk print\n/disk frob"),
            "bad command name frob (line 2 column 7)"
        );
    }

    #[test]
    fn quoted_escapes() {
        let c = parse_line(r#"/disk add slot="\48\45\4C\4C\4F" comment="x\$y z" parent="x$y z" file-path="a\\b\_c""#).unwrap();
        let texts: Vec<_> = c[0]
            .args
            .iter()
            .map(|a| match &a.value {
                Value::Text(t) => t.clone(),
                Value::Subst(_) => panic!(),
            })
            .collect();
        assert_eq!(texts, vec!["HELLO", "x$y z", "x z", "a\\b c"]);
        assert!(parse_line(r#"/disk add slot="\4c""#).is_err());
    }

    #[test]
    fn paths_and_substitution() {
        let a = parse_line("/disk add type=file slot=x").unwrap();
        let b = parse_line("/disk/add type=file slot=x").unwrap();
        let c = parse_line("disk add type=file slot=x").unwrap();
        assert_eq!(a, b);
        assert_eq!(
            (c[0].menu, c[0].verb, c[0].args.len()),
            (Menu::Disk, Verb::Add, 2)
        );
        let r = parse_line("/disk remove [find slot=pvc-1]").unwrap();
        match &r[0].positional[0].0 {
            Value::Subst(inner) => {
                assert_eq!(inner.verb, Verb::Find);
                assert_eq!(inner.menu, Menu::Disk);
                assert!(inner.filter.is_some());
            }
            other => panic!("{other:?}"),
        }
        let p =
            parse_line(r#"/disk print detail where slot~"pvc" && nvme-tcp-export=yes"#).unwrap();
        assert_eq!(p[0].words, vec!["detail"]);
        assert!(p[0].filter.is_some());
        assert_eq!(parse_line("/disk print; /file print").unwrap().len(), 2);
        assert!(parse_line("/disk").unwrap().is_empty());
        assert_eq!(
            err("/disk print where bogus=1"),
            "expected end of command (line 1 column 19)"
        );
    }
}
