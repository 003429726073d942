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

/// A RouterOS disk `slot` and an NVMe qualified name are the project's one id
/// vocabulary (`rds-ids`: one grammar, validated once at the edge); commands
/// take them as they are, so a volume id is never checked a second time here.
pub use rds_ids::{Nqn, Slot};

/// The name of a storage pool as used in `where mount-point="<pool>"` (e.g. `storage-pool`).
/// Same rule as [`Slot`] (checked by it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolName(String);

impl PoolName {
    /// Validate a pool (mount-point) name.
    pub fn new(s: &str) -> Result<Self, RouterOsError> {
        Slot::parse(s).map_err(|e| invalid("pool name", format!("{}: {}", e.why, shorten(s))))?;
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
