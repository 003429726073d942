//! The `Flags:` legend of `print detail` and the flag-column layout it implies
//! (docs/routeros.md §4.1).
//!
//! v7 legend: uppercase names; `;` separates flag **columns**, `,` separates flags sharing a
//! column. It wraps at the same width as records, **at column boundaries** (the hAP ax3 line 1
//! breaks after `BLOCK-DEVICE;` although `M - MOUNTED,` would still fit), and continuation lines
//! are not indented. A column group longer than a whole line is broken after its `, ` (INF).

use crate::wrap::{CutRule, RenderOptions, pack_tokens};

/// Flags legend text (unwrapped, one line) for `/disk print detail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Legend {
    text: String,
}

/// The hAP ax3 legend exactly as captured (docs/routeros.md §4.1; probably trimmed after `;`).
pub const HAP_AX3_LEGEND: &str = "Flags: X - DISABLED; A - ACQUIRED, E - EMPTY, B - BLOCK-DEVICE; M - MOUNTED, F - FORMATTING, S - SWAP-ENABLED;";

/// Our choice of a full rose-storage `/disk` legend (the real one is unknown, docs/routeros.md §11,
/// question 8). Flags and names are MikroTik's documented ones; the first three columns are the captured ones;
/// the remaining grouping is [INF], limited to 11 columns so the flags block fits the 12
/// characters before property column 15 seen on a real RDS.
pub const ROSE_STORAGE_LEGEND: &str = "Flags: X - DISABLED; A - ACQUIRED, E - EMPTY, B - BLOCK-DEVICE; M - MOUNTED, F - FORMATTING, S - SWAP-ENABLED; f - RAID-MEMBER-FAILED, r - RAID-MEMBER; c - ENCRYPTED, L - SELF-ENCRYPTED-AND-LOCKED, O - SELF-ENCRYPTION-ENABLED, o - SELF-ENCRYPTION-SUPPORTED; g - GUID-PARTITION-TABLE, p - PARTITION; t - NVME-TCP-EXPORT; i - ISCSI-EXPORT; s - SMB-SHARING; n - NFS-SHARING; m - MEDIA-SHARING";

/// Width of the `/disk` flags block: number (2) + space + 12 = property column 15.
pub const DISK_FLAGS_WIDTH: usize = 12;

impl Default for Legend {
    fn default() -> Self {
        Self::rose_storage()
    }
}

impl Legend {
    /// Any legend text (one line; it is wrapped when rendered). Should start with `Flags: `.
    pub fn new(text: impl Into<String>) -> Self {
        Self { text: text.into() }
    }

    /// [`ROSE_STORAGE_LEGEND`].
    pub fn rose_storage() -> Self {
        Self::new(ROSE_STORAGE_LEGEND)
    }

    /// [`HAP_AX3_LEGEND`].
    pub fn hap_ax3() -> Self {
        Self::new(HAP_AX3_LEGEND)
    }

    /// The unwrapped text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Wrapped lines (without terminators).
    pub fn render_lines(&self, opts: &RenderOptions) -> Vec<String> {
        let mut tokens: Vec<String> = Vec::new();
        let mut rest = self.text.trim();
        while !rest.is_empty() {
            let (unit, tail) = match rest.find(';') {
                Some(i) => rest.split_at(i + 1),
                None => (rest, ""),
            };
            let unit = unit.trim();
            if unit.len() > opts.width {
                tokens.extend(split_keep(unit, ", ").into_iter().map(str::to_owned));
            } else if !unit.is_empty() {
                tokens.push(unit.to_owned());
            }
            rest = tail.trim_start();
        }
        let o = RenderOptions {
            cut_rule: CutRule::AtLimit,
            trailing_space: false,
            ..opts.clone()
        };
        pack_tokens("", 0, &tokens, &o)
    }

    /// Flag columns in order: `[['X'], ['A','E','B'], ['M','F','S'], ...]`.
    pub fn columns(&self) -> Vec<Vec<char>> {
        let body = self
            .text
            .trim()
            .strip_prefix("Flags:")
            .unwrap_or(&self.text);
        body.split(';')
            .map(|col| {
                col.split(',')
                    .filter_map(|item| {
                        let item = item.trim();
                        let mut chars = item.chars();
                        let c = chars.next()?;
                        chars.as_str().trim_start().starts_with('-').then_some(c)
                    })
                    .collect::<Vec<char>>()
            })
            .filter(|c| !c.is_empty())
            .collect()
    }

    /// The flags block for a record with the given flags set: each flag in its column's
    /// position, spaces elsewhere, trailing spaces removed (`['B','M']` → `" BM"` with the
    /// ax3 legend). Flags not in the legend are ignored; if several flags of one column are set,
    /// the first in legend order wins.
    pub fn flag_block(&self, set: &[char]) -> String {
        let block: String = self
            .columns()
            .iter()
            .map(|col| col.iter().copied().find(|c| set.contains(c)).unwrap_or(' '))
            .collect();
        block.trim_end().to_owned()
    }
}

/// Split after every occurrence of `sep` (separator kept on the left piece, minus the space).
fn split_keep<'a>(s: &'a str, sep: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find(sep) {
        let cut = i + sep.trim_end().len();
        out.push(&rest[..cut]);
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}
