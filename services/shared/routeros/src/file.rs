//! `/file print detail` (docs/routeros.md §4.9): no legend, property column 3, `name` unquoted and
//! relative, `type=.img file` and `last-modified=2025-11-11 14:32:41` contain spaces.
//!
//! Rendering choices: the synthesized output of docs/routeros.md §4.9 (78 columns, no trailing spaces) is the
//! reference. MikroTik's documentation example was captured on a wide terminal and shows a space after
//! the last token of every line and a blank line after every record; that is reproduced with
//! `RenderOptions { trailing_space: true, blank_line_after_record: true, width: 200, .. }`
//! (tested byte for byte). Default options print a blank line after every record (docs/routeros.md §4.4)
//! but no trailing space; the synthesized block of docs/routeros.md §4.9 has neither.

use crate::detail::{Prop, RawRecord, parse_print_detail, render_records};
use crate::error::RouterOsError;
use crate::size::HumanSize;
use crate::time::LastModified;
use crate::wrap::RenderOptions;

const KNOWN: &[&str] = &["name", "type", "size", "last-modified"];

/// One `/file` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileRecord {
    /// Print number.
    pub number: Option<u32>,
    /// `name`: relative path, no leading slash (`storage-pool/metal-csi/x.img`).
    pub name: String,
    /// `type`: `disk` (mount root), `directory`, `.img file`, `package`, ...
    pub file_type: Option<String>,
    /// `size` (human; absent for directories).
    pub size: Option<HumanSize>,
    /// `last-modified`.
    pub last_modified: Option<LastModified>,
    /// Every property as printed, in order (unknown keys are rendered from here).
    pub raw: Vec<Prop>,
}

impl FileRecord {
    /// A regular file: `type=<.ext> file` (extension of the last component, or `file`).
    pub fn regular(name: &str, size_bytes: u64, last_modified: LastModified) -> Self {
        let base = name.rsplit('/').next().unwrap_or(name);
        let file_type = match base.rfind('.') {
            Some(i) if i > 0 => format!("{} file", &base[i..]),
            _ => "file".to_owned(),
        };
        Self {
            name: name.to_owned(),
            file_type: Some(file_type),
            size: Some(HumanSize::from_bytes(size_bytes)),
            last_modified: Some(last_modified),
            ..Self::default()
        }
    }

    /// A directory (`type=directory`, no size).
    pub fn directory(name: &str, last_modified: LastModified) -> Self {
        Self {
            name: name.to_owned(),
            file_type: Some("directory".to_owned()),
            last_modified: Some(last_modified),
            ..Self::default()
        }
    }

    /// Typed record from an untyped one.
    pub fn from_raw(rec: RawRecord) -> Self {
        let mut f = FileRecord {
            number: rec.number,
            ..Self::default()
        };
        for p in &rec.props {
            match p.key.as_ref() {
                "name" => f.name = p.value.clone(),
                "type" => f.file_type = Some(p.value.clone()),
                "size" => f.size = HumanSize::parse(&p.value),
                "last-modified" => f.last_modified = Some(LastModified::parse(&p.value)),
                _ => {}
            }
        }
        f.raw = rec.props;
        f
    }

    /// Tokens in print order: name, type, size, last-modified, then unknown keys from `raw`.
    pub fn tokens(&self) -> Vec<String> {
        let mut out = vec![format!("name={}", self.name)];
        if let Some(t) = &self.file_type {
            out.push(format!("type={t}"));
        }
        if let Some(s) = &self.size {
            out.push(format!("size={}", s.text));
        }
        if let Some(m) = &self.last_modified {
            out.push(format!("last-modified={}", m.text));
        }
        out.extend(
            self.raw
                .iter()
                .filter(|p| !KNOWN.contains(&p.key.as_ref()))
                .map(Prop::render),
        );
        out
    }
}

/// Parse `/file print detail` output.
pub fn parse_file_print_detail(text: &str) -> Result<Vec<FileRecord>, RouterOsError> {
    Ok(parse_print_detail(text)?
        .records
        .into_iter()
        .map(FileRecord::from_raw)
        .collect())
}

/// Render a `/file print detail` output (number width 2, property column 3). No records →
/// empty output (INF).
pub fn render_file_print(records: &[FileRecord], opts: &RenderOptions) -> String {
    let recs: Vec<(Option<u32>, &str, Vec<String>)> =
        records.iter().map(|r| (r.number, "", r.tokens())).collect();
    render_records(&[], &recs, 0, opts)
}
