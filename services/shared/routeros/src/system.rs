//! Read-only prints of the box's setup that `rdsctl doctor` reads through rds-agent:
//! `/system package print detail`, `/ip service print detail where name=<svc>` and
//! `/user active print detail`.
//!
//! **Assumed layouts.** No capture of these three menus on an RDS exists (docs/routeros.md
//! has none); they follow the general `print detail` rules (docs/routeros.md §4.1): a flags
//! legend, numbered records, `key=value` tokens packed to the width. The parsers read only
//! the keys doctor needs, by name, so another property order or extra properties do not
//! matter; a missing key reads as `None`. Legends assumed: packages `X - DISABLED`, services
//! `X - DISABLED, I - INVALID`, active users `R - RADIUS, M - BY-ROMON`.

use crate::detail::{Prop, RawRecord, parse_print_detail, render_records};
use crate::error::RouterOsError;
use crate::wrap::RenderOptions;

/// One `/system package` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRecord {
    /// `name` (e.g. `routeros`, `rose-storage`).
    pub name: String,
    /// `version` (e.g. `7.16`).
    pub version: Option<String>,
    /// Flag `X`.
    pub disabled: bool,
}

/// One `/ip service` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    /// `name` (`ssh`, `api`, `www`, ...).
    pub name: String,
    /// `port`.
    pub port: Option<u16>,
    /// `max-sessions` (RouterOS default 20 per service).
    pub max_sessions: Option<u32>,
    /// Flag `X`.
    pub disabled: bool,
}

/// One `/user active` entry: a logged-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveUserRecord {
    /// `name`: the user.
    pub name: String,
    /// `via`: `ssh`, `api`, `winbox`, `console`, ...
    pub via: Option<String>,
    /// `address`: the client's address.
    pub address: Option<String>,
    /// `when`: login time as printed.
    pub when: Option<String>,
}

fn prop<'a>(r: &'a RawRecord, key: &str) -> Option<&'a str> {
    r.props
        .iter()
        .find(|p| p.key == key)
        .map(|p| p.value.as_str())
}

fn records(text: &str, what: &str) -> Result<Vec<RawRecord>, RouterOsError> {
    let parsed = parse_print_detail(text)?;
    for r in &parsed.records {
        if prop(r, "name").is_none() {
            return Err(RouterOsError::Parse {
                line: 0,
                reason: format!("{what} record without name= (truncated output?)"),
            });
        }
    }
    Ok(parsed.records)
}

/// `/system package print detail`.
pub fn parse_package_print(text: &str) -> Result<Vec<PackageRecord>, RouterOsError> {
    Ok(records(text, "package")?
        .iter()
        .map(|r| PackageRecord {
            name: prop(r, "name").unwrap_or_default().to_owned(),
            version: prop(r, "version").map(str::to_owned),
            disabled: r.flags.contains('X'),
        })
        .collect())
}

/// `/ip service print detail [where ...]`.
pub fn parse_service_print(text: &str) -> Result<Vec<ServiceRecord>, RouterOsError> {
    Ok(records(text, "service")?
        .iter()
        .map(|r| ServiceRecord {
            name: prop(r, "name").unwrap_or_default().to_owned(),
            port: prop(r, "port").and_then(|p| p.parse().ok()),
            max_sessions: prop(r, "max-sessions").and_then(|p| p.replace(' ', "").parse().ok()),
            disabled: r.flags.contains('X'),
        })
        .collect())
}

/// `/user active print detail`.
pub fn parse_active_user_print(text: &str) -> Result<Vec<ActiveUserRecord>, RouterOsError> {
    Ok(records(text, "active user")?
        .iter()
        .map(|r| ActiveUserRecord {
            name: prop(r, "name").unwrap_or_default().to_owned(),
            via: prop(r, "via").map(str::to_owned),
            address: prop(r, "address").map(str::to_owned),
            when: prop(r, "when").map(str::to_owned),
        })
        .collect())
}

/// Flags legend of `/system package`.
pub const PACKAGE_LEGEND: &str = "Flags: X - DISABLED";
/// Flags legend of `/ip service`.
pub const SERVICE_LEGEND: &str = "Flags: X - DISABLED, I - INVALID";
/// Flags legend of `/user active`.
pub const ACTIVE_USER_LEGEND: &str = "Flags: R - RADIUS, M - BY-ROMON";

fn render(legend: &str, recs: Vec<(u32, String, Vec<String>)>, opts: &RenderOptions) -> String {
    let borrowed: Vec<(Option<u32>, &str, Vec<String>)> = recs
        .iter()
        .map(|(n, f, t)| (Some(*n), f.as_str(), t.clone()))
        .collect();
    render_records(&[legend.to_owned()], &borrowed, 2, opts)
}

/// Renders `/system package print detail` (for rds-sim). `(number, record)` pairs.
pub fn render_package_print(recs: &[(u32, PackageRecord)], opts: &RenderOptions) -> String {
    let rows = recs
        .iter()
        .map(|(n, p)| {
            let mut t = vec![Prop::quoted("name", &p.name).render()];
            if let Some(v) = &p.version {
                t.push(Prop::quoted("version", v).render());
            }
            let flags = if p.disabled { "X" } else { "" };
            (*n, flags.to_owned(), t)
        })
        .collect();
    render(PACKAGE_LEGEND, rows, opts)
}

/// Renders `/ip service print detail` (for rds-sim).
pub fn render_service_print(recs: &[(u32, ServiceRecord)], opts: &RenderOptions) -> String {
    let rows = recs
        .iter()
        .map(|(n, s)| {
            let mut t = vec![Prop::quoted("name", &s.name).render()];
            if let Some(p) = s.port {
                t.push(Prop::bare("port", p.to_string()).render());
            }
            t.push(Prop::quoted("address", "").render());
            t.push(Prop::bare("vrf", "main").render());
            if let Some(m) = s.max_sessions {
                t.push(Prop::bare("max-sessions", m.to_string()).render());
            }
            let flags = if s.disabled { "X" } else { "" };
            (*n, flags.to_owned(), t)
        })
        .collect();
    render(SERVICE_LEGEND, rows, opts)
}

/// Renders `/user active print detail` (for rds-sim).
pub fn render_active_user_print(recs: &[(u32, ActiveUserRecord)], opts: &RenderOptions) -> String {
    let rows = recs
        .iter()
        .map(|(n, u)| {
            let mut t = Vec::new();
            if let Some(w) = &u.when {
                t.push(Prop::bare("when", w).render());
            }
            t.push(Prop::quoted("name", &u.name).render());
            if let Some(a) = &u.address {
                t.push(Prop::bare("address", a).render());
            }
            if let Some(v) = &u.via {
                t.push(Prop::bare("via", v).render());
            }
            t.push(Prop::bare("group", "full").render());
            (*n, String::new(), t)
        })
        .collect();
    render(ACTIVE_USER_LEGEND, rows, opts)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn info_prints_are_fixed_read_only_lines() {
        use crate::{Command, InfoPrint};
        for (p, text, verb) in [
            (
                InfoPrint::Packages,
                "/system package print detail",
                "system package print",
            ),
            (
                InfoPrint::SshService,
                "/ip service print detail where name=ssh",
                "ip service print",
            ),
            (
                InfoPrint::ActiveUsers,
                "/user active print detail",
                "user active print",
            ),
        ] {
            let cmd = Command::InfoPrint(p);
            assert_eq!(cmd.to_string(), text);
            assert_eq!(cmd.verb(), verb);
            assert!(!cmd.is_mutating() && cmd.slot().is_none());
        }
    }

    #[test]
    fn rendered_prints_parse_back() {
        let opts = RenderOptions::default();
        let pkgs = vec![
            (
                0,
                PackageRecord {
                    name: "routeros".into(),
                    version: Some("7.16".into()),
                    disabled: false,
                },
            ),
            (
                1,
                PackageRecord {
                    name: "rose-storage".into(),
                    version: Some("7.16".into()),
                    disabled: true,
                },
            ),
        ];
        let text = render_package_print(&pkgs, &opts);
        assert!(text.starts_with("Flags: X - DISABLED\r\n"), "{text}");
        let back = parse_package_print(&text).unwrap();
        assert_eq!(back, pkgs.into_iter().map(|p| p.1).collect::<Vec<_>>());

        let svc = ServiceRecord {
            name: "ssh".into(),
            port: Some(22),
            max_sessions: Some(20),
            disabled: false,
        };
        let text = render_service_print(&[(3, svc.clone())], &opts);
        assert_eq!(parse_service_print(&text).unwrap(), vec![svc]);

        let u = ActiveUserRecord {
            name: "admin".into(),
            via: Some("ssh".into()),
            address: Some("10.0.0.5".into()),
            when: Some("2025-11-11 14:32:41".into()),
        };
        let text = render_active_user_print(&[(0, u.clone())], &opts);
        assert_eq!(parse_active_user_print(&text).unwrap(), vec![u]);
        assert!(
            parse_active_user_print(ACTIVE_USER_LEGEND)
                .unwrap()
                .is_empty()
        );
    }
}
