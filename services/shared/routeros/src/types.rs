//! Validated input newtypes. A [`crate::Command`] can only be built from these, so nothing
//! unchecked is ever interpolated into a RouterOS command line (docs/safety.md §4.2).
//!
//! Every constructor returns `Result<_, RouterOsError>`; the character sets are chosen so that
//! every accepted value is a legal *bare* RouterOS token (no quoting needed, nothing to escape),
//! which makes injection (`"`, `;`, `$`, `\`, `[`, newline, spaces) impossible by construction.

use std::fmt;
use std::str::FromStr;

use crate::error::{RouterOsError, invalid, shorten};

macro_rules! string_newtype_common {
    ($t:ident) => {
        impl $t {
            /// The validated value.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl FromStr for $t {
            type Err = RouterOsError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }
        impl TryFrom<&str> for $t {
            type Error = RouterOsError;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }
        impl TryFrom<String> for $t {
            type Error = RouterOsError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(&s)
            }
        }
    };
}

fn check_name(what: &'static str, s: &str) -> Result<(), RouterOsError> {
    if s.is_empty() {
        return Err(invalid(what, "empty"));
    }
    if s.len() > 128 {
        return Err(invalid(
            what,
            format!("longer than 128 bytes: {}", shorten(s)),
        ));
    }
    let mut chars = s.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphanumeric()) {
        return Err(invalid(
            what,
            format!("must start with [A-Za-z0-9]: {}", shorten(s)),
        ));
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(invalid(
            what,
            format!("only [A-Za-z0-9-] allowed: {}", shorten(s)),
        ));
    }
    Ok(())
}

/// A RouterOS disk `slot` (the item name; also the CSI volume id):
/// `^[A-Za-z0-9][A-Za-z0-9-]{0,127}$` (docs/csi.md §2.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot(String);

impl Slot {
    /// Validate a slot name.
    pub fn new(s: &str) -> Result<Self, RouterOsError> {
        check_name("slot", s)?;
        Ok(Self(s.to_owned()))
    }
}
string_newtype_common!(Slot);

/// The name of a storage pool as used in `where mount-point="<pool>"` (e.g. `storage-pool`).
/// Same rule as [`Slot`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolName(String);

impl PoolName {
    /// Validate a pool (mount-point) name.
    pub fn new(s: &str) -> Result<Self, RouterOsError> {
        check_name("pool name", s)?;
        Ok(Self(s.to_owned()))
    }
}
string_newtype_common!(PoolName);

impl Default for PoolName {
    fn default() -> Self {
        Self("storage-pool".to_owned())
    }
}

/// An absolute path on the RDS as `/disk` shows it (`/storage-pool/metal-csi/pvc-x.img`).
///
/// Rules: starts with `/`; only `[A-Za-z0-9._/-]`; no `//`; no `.` or `..` component; no
/// trailing `/`; at most 255 bytes; not `/` alone. `/file` names the same file without the
/// leading slash ([`DiskPath::file_name`], docs/routeros.md §4.9 and §8.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DiskPath(String);

impl DiskPath {
    /// Validate an absolute disk path.
    pub fn new(s: &str) -> Result<Self, RouterOsError> {
        const WHAT: &str = "disk path";
        if s.len() > 255 {
            return Err(invalid(
                WHAT,
                format!("longer than 255 bytes: {}", shorten(s)),
            ));
        }
        let Some(rest) = s.strip_prefix('/') else {
            return Err(invalid(WHAT, format!("must be absolute: {}", shorten(s))));
        };
        if rest.is_empty() {
            return Err(invalid(WHAT, "must not be the root"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
        {
            return Err(invalid(
                WHAT,
                format!("only [A-Za-z0-9._/-] allowed: {}", shorten(s)),
            ));
        }
        if rest.ends_with('/') {
            return Err(invalid(WHAT, format!("trailing slash: {}", shorten(s))));
        }
        for comp in rest.split('/') {
            match comp {
                "" => {
                    return Err(invalid(
                        WHAT,
                        format!("empty component (//): {}", shorten(s)),
                    ));
                }
                "." | ".." => {
                    return Err(invalid(
                        WHAT,
                        format!("'.' or '..' component: {}", shorten(s)),
                    ));
                }
                _ => {}
            }
        }
        Ok(Self(s.to_owned()))
    }

    /// Build from a `/file` name (relative, no leading slash), e.g. `storage-pool/x.img`.
    pub fn from_file_name(name: &str) -> Result<Self, RouterOsError> {
        Self::new(&format!("/{name}"))
    }

    /// The `/file` form: the same path without the leading slash.
    pub fn file_name(&self) -> &str {
        self.0.get(1..).unwrap_or("")
    }

    /// True when `self` is `dir` or lies below it (component-wise, not a string prefix).
    pub fn is_under(&self, dir: &DiskPath) -> bool {
        self.0 == dir.0
            || (self.0.starts_with(dir.as_str())
                && self.0.as_bytes().get(dir.0.len()) == Some(&b'/'))
    }
}
string_newtype_common!(DiskPath);

/// An NVMe Qualified Name: `^nqn\.[0-9]{4}-[0-9]{2}\.[a-z0-9.-]+:[a-z0-9._-]+$`, ≤ 223 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nqn(String);

/// The NQN prefix the Go driver used (docs/csi.md §2.3).
pub const MIKROTIK_NQN_PREFIX: &str = "nqn.2000-02.com.mikrotik:";

impl Nqn {
    /// Validate an NQN.
    pub fn new(s: &str) -> Result<Self, RouterOsError> {
        const WHAT: &str = "NQN";
        let bad = || {
            invalid(
                WHAT,
                format!("must match nqn.YYYY-MM.<domain>:<name>: {}", shorten(s)),
            )
        };
        if s.len() > 223 {
            return Err(invalid(
                WHAT,
                format!("longer than 223 bytes: {}", shorten(s)),
            ));
        }
        let rest = s.strip_prefix("nqn.").ok_or_else(bad)?;
        let b = rest.as_bytes();
        if b.len() < 8
            || !b[0..4].iter().all(u8::is_ascii_digit)
            || b[4] != b'-'
            || !b[5..7].iter().all(u8::is_ascii_digit)
            || b[7] != b'.'
        {
            return Err(bad());
        }
        let tail = rest.get(8..).ok_or_else(bad)?;
        let (domain, name) = tail.split_once(':').ok_or_else(bad)?;
        let dom_ok = !domain.is_empty()
            && domain
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-'));
        let name_ok = !name.is_empty()
            && name.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            });
        if !dom_ok || !name_ok {
            return Err(bad());
        }
        Ok(Self(s.to_owned()))
    }

    /// `nqn.2000-02.com.mikrotik:<slot lowercased>` — the Go driver's NQN for a volume.
    pub fn for_volume(slot: &Slot) -> Self {
        Self(format!(
            "{MIKROTIK_NQN_PREFIX}{}",
            slot.as_str().to_ascii_lowercase()
        ))
    }
}
string_newtype_common!(Nqn);

/// A TCP port, 1..=65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port(u16);

impl Port {
    /// The default NVMe/TCP port.
    pub const NVME_TCP_DEFAULT: Port = Port(4420);

    /// Validate a port number.
    pub fn new(p: u32) -> Result<Self, RouterOsError> {
        match u16::try_from(p) {
            Ok(v) if v != 0 => Ok(Self(v)),
            _ => Err(invalid("port", format!("{p} is not in 1..=65535"))),
        }
    }

    /// The port number.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Port {
    type Err = RouterOsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let n: u32 = s
            .parse()
            .map_err(|_| invalid("port", format!("not a number: {}", shorten(s))))?;
        Self::new(n)
    }
}

/// A file size in bytes for `file-size=`, sent as plain digits (= bytes, docs/csi.md §5).
/// Must be non-zero. Callers round up with [`crate::round_up_mib`] first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileSize(u64);

impl FileSize {
    /// Validate a byte count (must be > 0).
    pub fn new(bytes: u64) -> Result<Self, RouterOsError> {
        if bytes == 0 {
            return Err(invalid("file size", "must be greater than zero"));
        }
        Ok(Self(bytes))
    }

    /// The byte count.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for FileSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A RouterOS (POSIX ERE) pattern for `~` comparisons, built only from literal text so that it
/// is both a valid regex and a legal RouterOS quoted string.
///
/// Literal characters are limited to `[A-Za-z0-9_/:-]` plus `.`, which is written as the bracket
/// class `[.]` — *not* `\.`, which is an illegal string escape and a syntax error on RouterOS
/// (docs/routeros.md §3.4 and §8.5). Brackets are literal inside a quoted string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegexPattern(String);

impl RegexPattern {
    fn escape_literal(s: &str) -> Result<String, RouterOsError> {
        const WHAT: &str = "regex literal";
        if s.is_empty() {
            return Err(invalid(WHAT, "empty"));
        }
        if s.len() > 255 {
            return Err(invalid(
                WHAT,
                format!("longer than 255 bytes: {}", shorten(s)),
            ));
        }
        let mut out = String::with_capacity(s.len() + 8);
        for c in s.chars() {
            match c {
                '.' => out.push_str("[.]"),
                c if c.is_ascii_alphanumeric() || matches!(c, '_' | '/' | ':' | '-') => out.push(c),
                _ => {
                    return Err(invalid(
                        WHAT,
                        format!("only [A-Za-z0-9._/:-] allowed: {}", shorten(s)),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Matches `s` anywhere (unanchored, like RouterOS `~`).
    pub fn contains(s: &str) -> Result<Self, RouterOsError> {
        Ok(Self(Self::escape_literal(s)?))
    }

    /// Matches values starting with `s` (`^` + literal).
    pub fn starts_with(s: &str) -> Result<Self, RouterOsError> {
        Ok(Self(format!("^{}", Self::escape_literal(s)?)))
    }

    /// The regex text (before RouterOS quoting), e.g. `^pvc-` or `metal-csi/x[.]img`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RegexPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
