//! `/disk/btrfs/subvolume` and `/disk/btrfs/filesystem` `print detail`: typed records, parsers
//! and renderers, plus the validated subvolume name the commands take.
//!
//! The print layouts are ASSUMED (no capture from a real RDS yet; docs/decisions.md §13 and the
//! runbook there say how to check them): the general `print detail` rules of docs/routeros.md
//! §4.1 with the legend [`SUBVOLUME_LEGEND`] and the property order [`SUBVOLUME_ORDER`]. The
//! parser is the generic one, so a different column or wrapping still parses.

use std::fmt;

use crate::detail::{Prop, RawRecord, parse_print_detail, render_records};
use crate::error::{RouterOsError, invalid, shorten};
use crate::legend::Legend;
use crate::quote::quote_output;
use crate::time::LastModified;
use crate::wrap::RenderOptions;

/// Legend of `/disk/btrfs/subvolume print detail` (assumed).
pub const SUBVOLUME_LEGEND: &str = "Flags: D - DEAD; S - SNAPSHOT; r - READ-ONLY; M - MOUNTED";

/// Width of the subvolume flags block (4 columns + 1 space: property column 8).
pub const SUBVOLUME_FLAGS_WIDTH: usize = 5;

/// Property order of a subvolume record (assumed).
pub const SUBVOLUME_ORDER: &[&str] = &[
    "name",
    "fs",
    "parent",
    "read-only",
    "uuid",
    "subvolume-id",
    "generation",
    "creation-time",
    "path",
];

/// Property order of a filesystem record (assumed).
pub const FILESYSTEM_ORDER: &[&str] = &["label", "uuid", "devs", "default-subvolume"];

/// A subvolume name as RouterOS takes it: relative to the filesystem's mount
/// (`metal-csi/pvc-x`, `metal-csi/snap-y.from-pvc-x`). Same characters as a
/// [`crate::DiskPath`] (`[A-Za-z0-9._/-]`), no leading or trailing `/`, no empty,
/// `.` or `..` component, at most 255 bytes: a legal bare token, nothing to escape.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubvolumeName(String);

impl SubvolumeName {
    /// Validate a subvolume name.
    pub fn new(s: &str) -> Result<Self, RouterOsError> {
        const WHAT: &str = "subvolume name";
        if s.is_empty() || s.len() > 255 {
            return Err(invalid(
                WHAT,
                format!("must be 1..=255 bytes: {}", shorten(s)),
            ));
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
        if s.split('/').any(|c| matches!(c, "" | "." | "..")) {
            return Err(invalid(
                WHAT,
                format!("empty, '.' or '..' component: {}", shorten(s)),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The validated name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last component (`pvc-x` of `metal-csi/pvc-x`).
    pub fn leaf(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for SubvolumeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One `/disk/btrfs/subvolume` item.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubvolumeRecord {
    /// Print number.
    pub number: Option<u32>,
    /// Flags block as printed (`S` snapshot, `r` read-only, ...).
    pub flags: String,
    /// `name` (relative to the filesystem's mount).
    pub name: String,
    /// `fs`: the filesystem's label.
    pub fs: Option<String>,
    /// `parent`: the name given at creation (`None` or empty: not a snapshot).
    pub parent: Option<String>,
    /// `read-only` (yes/no).
    pub read_only: Option<bool>,
    /// `uuid`.
    pub uuid: Option<String>,
    /// `subvolume-id`.
    pub subvolume_id: Option<u64>,
    /// `generation`.
    pub generation: Option<u64>,
    /// `creation-time` (same form as `/file` `last-modified`).
    pub creation_time: Option<LastModified>,
    /// `path`: where its files are (`/storage-pool/metal-csi/pvc-x`).
    pub path: Option<String>,
    /// Every property as printed.
    pub raw: Vec<Prop>,
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "yes" | "true" => Some(true),
        "no" | "false" => Some(false),
        _ => None,
    }
}

impl SubvolumeRecord {
    /// Whether the flags block contains `flag`.
    pub fn has_flag(&self, flag: char) -> bool {
        flag != ' ' && self.flags.contains(flag)
    }

    /// Read-only, by the property or, when it is not printed, the `r` flag.
    pub fn is_read_only(&self) -> bool {
        self.read_only.unwrap_or_else(|| self.has_flag('r'))
    }

    /// The parent's name when one is recorded.
    pub fn parent_name(&self) -> Option<&str> {
        self.parent.as_deref().filter(|p| !p.is_empty())
    }

    /// Build the typed record from an untyped one.
    pub fn from_raw(rec: RawRecord) -> Self {
        let mut s = SubvolumeRecord {
            number: rec.number,
            flags: rec.flags,
            ..Self::default()
        };
        for p in &rec.props {
            let v = p.value.as_str();
            match p.key.as_ref() {
                "name" => s.name = v.to_owned(),
                "fs" => s.fs = Some(v.to_owned()),
                "parent" => s.parent = Some(v.to_owned()),
                "read-only" => s.read_only = parse_bool(v),
                "uuid" => s.uuid = Some(v.to_owned()),
                "subvolume-id" => s.subvolume_id = v.trim().parse().ok(),
                "generation" => s.generation = v.trim().parse().ok(),
                "creation-time" => s.creation_time = Some(LastModified::parse(v)),
                "path" => s.path = Some(v.to_owned()),
                _ => {}
            }
        }
        s.raw = rec.props;
        s
    }

    /// Property tokens in print order (unknown raw keys last).
    pub fn tokens(&self) -> Vec<String> {
        let mut out = vec![format!("name={}", quote_output(&self.name))];
        if let Some(fs) = &self.fs {
            out.push(format!("fs={fs}"));
        }
        if let Some(p) = &self.parent {
            out.push(format!("parent={}", quote_output(p)));
        }
        if let Some(r) = self.read_only {
            out.push(format!("read-only={}", if r { "yes" } else { "no" }));
        }
        if let Some(u) = &self.uuid {
            out.push(format!("uuid={u}"));
        }
        if let Some(i) = self.subvolume_id {
            out.push(format!("subvolume-id={i}"));
        }
        if let Some(g) = self.generation {
            out.push(format!("generation={g}"));
        }
        if let Some(t) = &self.creation_time {
            out.push(format!("creation-time={}", t.text));
        }
        if let Some(p) = &self.path {
            out.push(format!("path={p}"));
        }
        out.extend(
            self.raw
                .iter()
                .filter(|p| !SUBVOLUME_ORDER.contains(&p.key.as_ref()))
                .map(Prop::render),
        );
        out
    }
}

/// Parse `/disk/btrfs/subvolume print detail`. Records without a `name` are refused as
/// damaged output (a cut reply must not read as a nameless subvolume).
pub fn parse_subvolume_print_detail(text: &str) -> Result<Vec<SubvolumeRecord>, RouterOsError> {
    let recs: Vec<SubvolumeRecord> = parse_print_detail(text)?
        .records
        .into_iter()
        .map(SubvolumeRecord::from_raw)
        .collect();
    if let Some(bad) = recs.iter().find(|r| r.name.is_empty()) {
        return Err(RouterOsError::Parse {
            line: 0,
            reason: format!("subvolume record {:?} without a name", bad.number),
        });
    }
    Ok(recs)
}

/// Render a `/disk/btrfs/subvolume print detail` output (legend, records, blank line after
/// each; with no records the legend and one blank line, as `/disk` does).
pub fn render_subvolume_print(records: &[SubvolumeRecord], opts: &RenderOptions) -> String {
    let legend = Legend::new(SUBVOLUME_LEGEND);
    let legend_lines = legend.render_lines(opts);
    let recs: Vec<(Option<u32>, &str, Vec<String>)> = records
        .iter()
        .map(|r| (r.number, r.flags.as_str(), r.tokens()))
        .collect();
    let mut out = render_records(&legend_lines, &recs, SUBVOLUME_FLAGS_WIDTH, opts);
    if records.is_empty() {
        out.push_str(opts.line_ending.as_str());
    }
    out
}

/// One `/disk/btrfs/filesystem` item.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilesystemRecord {
    /// Print number.
    pub number: Option<u32>,
    /// `label` (= the pool's fs-label).
    pub label: String,
    /// `uuid`.
    pub uuid: Option<String>,
    /// `devs`.
    pub devs: Option<String>,
    /// `default-subvolume`.
    pub default_subvolume: Option<u64>,
    /// Every property as printed.
    pub raw: Vec<Prop>,
}

impl FilesystemRecord {
    fn from_raw(rec: RawRecord) -> Self {
        let mut f = FilesystemRecord {
            number: rec.number,
            ..Self::default()
        };
        for p in &rec.props {
            let v = p.value.as_str();
            match p.key.as_ref() {
                "label" => f.label = v.to_owned(),
                "uuid" => f.uuid = Some(v.to_owned()),
                "devs" => f.devs = Some(v.to_owned()),
                "default-subvolume" => f.default_subvolume = v.trim().parse().ok(),
                _ => {}
            }
        }
        f.raw = rec.props;
        f
    }

    fn tokens(&self) -> Vec<String> {
        let mut out = vec![format!("label={}", quote_output(&self.label))];
        if let Some(u) = &self.uuid {
            out.push(format!("uuid={u}"));
        }
        if let Some(d) = &self.devs {
            out.push(format!("devs={}", quote_output(d)));
        }
        if let Some(d) = self.default_subvolume {
            out.push(format!("default-subvolume={d}"));
        }
        out.extend(
            self.raw
                .iter()
                .filter(|p| !FILESYSTEM_ORDER.contains(&p.key.as_ref()))
                .map(Prop::render),
        );
        out
    }
}

/// Parse `/disk/btrfs/filesystem print detail` (no legend; empty output = no Btrfs
/// filesystem).
pub fn parse_filesystem_print_detail(text: &str) -> Result<Vec<FilesystemRecord>, RouterOsError> {
    Ok(parse_print_detail(text)?
        .records
        .into_iter()
        .map(FilesystemRecord::from_raw)
        .collect())
}

/// Render a `/disk/btrfs/filesystem print detail` output (no legend).
pub fn render_filesystem_print(records: &[FilesystemRecord], opts: &RenderOptions) -> String {
    let recs: Vec<(Option<u32>, &str, Vec<String>)> =
        records.iter().map(|r| (r.number, "", r.tokens())).collect();
    render_records(&[], &recs, 1, opts)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::time::CivilDateTime;

    fn rec(n: u32, name: &str, parent: &str, ro: bool) -> SubvolumeRecord {
        let legend = Legend::new(SUBVOLUME_LEGEND);
        let mut flags = Vec::new();
        if !parent.is_empty() {
            flags.push('S');
        }
        if ro {
            flags.push('r');
        }
        SubvolumeRecord {
            number: Some(n),
            flags: legend.flag_block(&flags),
            name: name.into(),
            fs: Some("storage-pool".into()),
            parent: Some(parent.into()),
            read_only: Some(ro),
            uuid: Some("0f923194-922a-5dd8-b376-c2c6ccb56dd8".into()),
            subvolume_id: Some(258 + u64::from(n)),
            generation: Some(14),
            creation_time: Some(LastModified::from_civil(CivilDateTime {
                year: 2026,
                month: 12,
                day: 7,
                hour: 8,
                minute: 51,
                second: 35,
            })),
            path: Some(format!("/storage-pool/{name}")),
            raw: Vec::new(),
        }
    }

    fn strip(mut r: SubvolumeRecord) -> SubvolumeRecord {
        r.raw.clear();
        r
    }

    #[test]
    fn subvolume_print_round_trips_with_long_names() {
        let long = "metal-csi/snap-0f923194-922a-5dd8-b376-c2c6ccb56dd8-at-0f923194922.from-pvc-11111111-2222-3333-4444-555555555555";
        let recs = vec![
            rec(0, "metal-csi/pvc-x", "", false),
            rec(1, long, "metal-csi/pvc-x", true),
        ];
        for opts in [
            RenderOptions::default(),
            RenderOptions {
                width: 200,
                ..RenderOptions::default()
            },
        ] {
            let text = render_subvolume_print(&recs, &opts);
            let got: Vec<_> = parse_subvolume_print_detail(&text)
                .unwrap()
                .into_iter()
                .map(strip)
                .collect();
            assert_eq!(got, recs, "{text}");
            assert!(got[1].has_flag('S') && got[1].is_read_only());
            assert_eq!(
                got[0].creation_time.as_ref().unwrap().unix_seconds(),
                Some(1_796_633_495)
            );
        }
        let empty = render_subvolume_print(&[], &RenderOptions::default());
        assert!(empty.starts_with("Flags: D - DEAD"));
        assert!(parse_subvolume_print_detail(&empty).unwrap().is_empty());
    }

    #[test]
    fn contract_text_parses() {
        // Written from the Btrfs contract by hand (not by our renderer).
        let text = "Flags: D - DEAD; S - SNAPSHOT; r - READ-ONLY; M - MOUNTED\r\n 0  Sr  name=\"metal-csi/snap-y.from-pvc-x\" fs=storage-pool\r\n        parent=\"metal-csi/pvc-x\" read-only=yes\r\n        uuid=11111111-2222-3333-4444-555555555555 subvolume-id=259\r\n        generation=14 creation-time=2026-12-07 08:51:35\r\n        path=/storage-pool/metal-csi/snap-y.from-pvc-x\r\n\r\n";
        let r = parse_subvolume_print_detail(text).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].name, "metal-csi/snap-y.from-pvc-x");
        assert_eq!(r[0].parent_name(), Some("metal-csi/pvc-x"));
        assert!(r[0].is_read_only() && r[0].has_flag('S'));
        assert_eq!(
            r[0].creation_time.as_ref().unwrap().text,
            "2026-12-07 08:51:35"
        );
        assert_eq!(
            r[0].path.as_deref(),
            Some("/storage-pool/metal-csi/snap-y.from-pvc-x")
        );
        assert!(
            parse_subvolume_print_detail("failure: no btrfs filesystem storage-pool\r\n").is_err()
        );
        assert!(parse_subvolume_print_detail(" 0   fs=storage-pool\r\n").is_err());
    }

    #[test]
    fn filesystem_print_round_trips() {
        let f = FilesystemRecord {
            number: Some(0),
            label: "storage-pool".into(),
            uuid: Some("0f923194-922a-5dd8-b376-c2c6ccb56dd8".into()),
            devs: Some("raid1".into()),
            default_subvolume: Some(5),
            raw: Vec::new(),
        };
        let text = render_filesystem_print(std::slice::from_ref(&f), &RenderOptions::default());
        let mut got = parse_filesystem_print_detail(&text).unwrap();
        got[0].raw.clear();
        assert_eq!(got, vec![f]);
        assert!(parse_filesystem_print_detail("").unwrap().is_empty());
    }

    #[test]
    fn subvolume_names_are_bare_tokens() {
        SubvolumeName::new("metal-csi/pvc-x").unwrap();
        assert_eq!(
            SubvolumeName::new("metal-csi/snap-y.from-pvc-x")
                .unwrap()
                .leaf(),
            "snap-y.from-pvc-x"
        );
        for bad in [
            "", "/abs", "a/", "a//b", "a/../b", ".", "a b", "a\"b", "a;b", "a[b", "a$b",
        ] {
            assert!(SubvolumeName::new(bad).is_err(), "{bad:?}");
        }
        assert!(SubvolumeName::new(&"a".repeat(256)).is_err());
    }
}
