//! The NVMe/TCP host allow list of a disk export (`nvme-tcp-server-allow-host-name`), used by
//! storage fencing (docs/safety.md, docs/decisions.md).
//!
//! UNVERIFIED on a real RDS: the manual calls the property "Hostnames allowed to connect" and
//! types it as a string. This module ASSUMES it holds initiator host NQNs, several of them
//! joined by [`ALLOW_LIST_SEPARATOR`], and that an empty value admits any host. Both the
//! separator and the rendering live here only: if the RDS says otherwise, change
//! [`ALLOW_LIST_SEPARATOR`] / [`AllowHosts::value`] / [`parse_allow_hosts`] and nothing else.

use std::fmt;

use crate::error::{RouterOsError, invalid, shorten};

/// The property name on `/disk`.
pub const ALLOW_HOST_PROPERTY: &str = "nvme-tcp-server-allow-host-name";

/// ASSUMED separator between host NQNs in the property value (RouterOS list properties print
/// comma-separated). A host NQN can never contain it (see [`HostNqn::new`]).
pub const ALLOW_LIST_SEPARATOR: char = ',';

/// The "nobody" host of a fenced export, also what a fenced volume is created with; one
/// definition, in rds-ids, shared with attachment-service.
pub use rds_ids::NO_HOST_NQN;

/// An initiator's host NQN (`nqn.yyyy-mm.<domain>:<name>`, ≤ 223 bytes of `[a-z0-9.:_-]`,
/// e.g. `nqn.2014-08.org.nvmexpress:uuid:<uuid>`). The character set keeps every value a bare
/// RouterOS token and excludes the list separator.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostNqn(String);

impl HostNqn {
    /// Validates a host NQN.
    pub fn new(s: &str) -> Result<Self, RouterOsError> {
        const WHAT: &str = "host NQN";
        let bad = || {
            invalid(
                WHAT,
                format!(
                    "must match nqn.YYYY-MM.<domain>:<name> in [a-z0-9.:_-]: {}",
                    shorten(s)
                ),
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
        let date_ok = b.len() > 8
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'-'
            && b[5..7].iter().all(u8::is_ascii_digit)
            && b[7] == b'.';
        let (domain, name) = rest
            .get(8..)
            .and_then(|t| t.split_once(':'))
            .ok_or_else(bad)?;
        let chars_ok = rest.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | ':' | '_' | '-')
        });
        if !date_ok || domain.is_empty() || name.is_empty() || !chars_ok {
            return Err(bad());
        }
        Ok(HostNqn(s.to_owned()))
    }

    /// The validated value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostNqn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The value to set: a non-empty, sorted, de-duplicated list of host NQNs, or "any host"
/// (the empty value, i.e. no fencing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowHosts(Vec<HostNqn>);

impl AllowHosts {
    /// Exactly these hosts. Refuses an empty list: on RouterOS an empty value admits every
    /// host, which must be asked for explicitly with [`AllowHosts::any`].
    pub fn only(hosts: impl IntoIterator<Item = HostNqn>) -> Result<Self, RouterOsError> {
        let mut v: Vec<HostNqn> = hosts.into_iter().collect();
        v.sort();
        v.dedup();
        if v.is_empty() {
            return Err(invalid(
                "allow list",
                "empty (an empty list admits any host; use AllowHosts::any)",
            ));
        }
        Ok(AllowHosts(v))
    }

    /// Fenced with no holder: only [`NO_HOST_NQN`], which no node presents.
    pub fn nobody() -> Self {
        AllowHosts(vec![HostNqn(NO_HOST_NQN.to_owned())])
    }

    /// No fencing: any host may connect.
    pub fn any() -> Self {
        AllowHosts(Vec::new())
    }

    /// The hosts (empty = any host).
    pub fn hosts(&self) -> &[HostNqn] {
        &self.0
    }

    /// The property value as sent (without quotes): the NQNs joined by the separator.
    pub fn value(&self) -> String {
        let parts: Vec<&str> = self.0.iter().map(HostNqn::as_str).collect();
        parts.join(&ALLOW_LIST_SEPARATOR.to_string())
    }
}

/// Splits a printed property value (already unquoted) into host entries: trimmed, empty
/// entries dropped, sorted. Entries are returned verbatim (not validated): drift may have
/// put anything there and the caller must be able to see it.
pub fn parse_allow_hosts(value: &str) -> Vec<String> {
    let mut v: Vec<String> = value
        .split(ALLOW_LIST_SEPARATOR)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_nqn_accepts_uuid_form_and_refuses_separator_and_quotes() {
        assert!(
            HostNqn::new("nqn.2014-08.org.nvmexpress:uuid:0f923194-922a-5dd8-b376-c2c6ccb56dd8")
                .is_ok()
        );
        for bad in [
            "",
            "nqn.2014-08.org.nvmexpress:a,nqn.2014-08.org.nvmexpress:b",
            "nqn.2014-08.org.nvmexpress:a\"",
            "nqn.2014-08.org.nvmexpress:a b",
            "nqn.2014-08.org.nvmexpress:",
            "nqn.2014-08.:x",
            "nqn.14-08.org:x",
            "nqn.2014-08.org.nvmexpress:A",
        ] {
            assert!(HostNqn::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn allow_hosts_renders_sorted_joined_and_round_trips() {
        let a = HostNqn::new("nqn.2014-08.org.nvmexpress:uuid:b").unwrap();
        let b = HostNqn::new("nqn.2014-08.org.nvmexpress:uuid:a").unwrap();
        let l = AllowHosts::only([a.clone(), b.clone(), a]).unwrap();
        assert_eq!(
            l.value(),
            "nqn.2014-08.org.nvmexpress:uuid:a,nqn.2014-08.org.nvmexpress:uuid:b"
        );
        assert_eq!(
            parse_allow_hosts(&l.value()),
            vec![
                "nqn.2014-08.org.nvmexpress:uuid:a".to_owned(),
                "nqn.2014-08.org.nvmexpress:uuid:b".to_owned()
            ]
        );
        assert!(AllowHosts::only([]).is_err());
        assert_eq!(AllowHosts::any().value(), "");
        assert!(parse_allow_hosts("").is_empty());
    }

    #[test]
    fn nobody_is_the_valid_sentinel_alone() {
        assert!(HostNqn::new(NO_HOST_NQN).is_ok());
        assert_eq!(AllowHosts::nobody().value(), NO_HOST_NQN);
        assert_eq!(
            parse_allow_hosts(&AllowHosts::nobody().value()),
            vec![NO_HOST_NQN.to_owned()]
        );
    }
}
