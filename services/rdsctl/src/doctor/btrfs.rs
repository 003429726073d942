//! `rdsctl doctor --btrfs`: the read-only checks an operator runs once on a
//! real RDS before using `volumeLayout: subvolume` (docs/btrfs.md). The
//! RouterOS Btrfs menus' print layouts are ASSUMED (docs/routeros.md §6.15);
//! these checks send exactly the prints rds-agent sends and parse the answers
//! with rds-agent's own parsers, so a pass means the agent will read this box.
//! What a print cannot show (snapshot, adoption of a file by `/disk add`,
//! slot length) is confirmed by hand with the runbook's commands.

use rds_agent::inspect::Inspector;
use rds_routeros::SubvolumeRecord;

use super::Check;
use super::rds::describe_err;

/// Where the manual part lives.
const RUNBOOK: &str = "docs/btrfs.md";

pub async fn checks(i: &Inspector) -> Vec<Check> {
    let pool = i.settings().pool.as_str().to_owned();
    let mut out = Vec::new();
    let label = match i.pool().await {
        Ok(Some(d)) => match d.fs.as_deref() {
            Some("btrfs") => {
                out.push(Check::pass(
                    "btrfs-pool",
                    format!(
                        "{pool} is btrfs (fs-label {})",
                        d.fs_label.as_deref().unwrap_or("-")
                    ),
                ));
                d.fs_label.clone().unwrap_or_else(|| pool.clone())
            }
            other => {
                out.push(Check::fail(
                    "btrfs-pool",
                    format!(
                        "{pool} is {}, not btrfs: volumeLayout: subvolume is refused on it",
                        other.unwrap_or("of an unknown filesystem")
                    ),
                    "keep volumeLayout: flat (the default); subvolume volumes need a Btrfs pool",
                ));
                for name in ["btrfs-filesystem", "btrfs-subvolumes"] {
                    out.push(Check::skip(name, "the pool is not btrfs"));
                }
                return out;
            }
        },
        Ok(None) => {
            out.push(Check::fail(
                "btrfs-pool",
                format!("no disk is mounted at {pool:?}"),
                "set --pool (RDS_POOL) to the pool's mount-point, or mount the pool",
            ));
            return out;
        }
        Err(e) => {
            out.push(Check::fail(
                "btrfs-pool",
                format!("cannot read the pool: {}", describe_err(&e)),
                "check `/disk print detail where mount-point=…` on the RDS",
            ));
            return out;
        }
    };
    out.push(filesystem_check(i, &label).await);
    out.push(subvolumes_check(i).await);
    out
}

async fn filesystem_check(i: &Inspector, label: &str) -> Check {
    match i.btrfs_filesystems().await {
        Ok(fss) => match fss.iter().find(|f| f.label == label) {
            Some(f) => Check::pass(
                "btrfs-filesystem",
                format!(
                    "`/disk/btrfs/filesystem print detail` lists {label} (uuid {}, devs {})",
                    f.uuid.as_deref().unwrap_or("-"),
                    f.devs.as_deref().unwrap_or("-")
                ),
            ),
            None => Check::fail(
                "btrfs-filesystem",
                format!(
                    "`/disk/btrfs/filesystem print detail` answered but lists no filesystem labelled {label} \
                     (labels: {})",
                    labels(fss.iter().map(|f| f.label.as_str()))
                ),
                format!(
                    "compare the output on the RDS with the assumed layout ({RUNBOOK}, step 1); keep flat until it matches"
                ),
            ),
        },
        Err(e) => Check::fail(
            "btrfs-filesystem",
            format!(
                "`/disk/btrfs/filesystem print detail`: {}",
                describe_err(&e)
            ),
            format!(
                "run it by hand on the RDS ({RUNBOOK}, step 1): an unknown command means no Btrfs menu on \
                 this RouterOS; a parse failure means the print differs from the assumed layout; keep flat"
            ),
        ),
    }
}

fn labels<'a>(it: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = it.collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Properties the agent relies on; each record must carry them.
fn missing_properties(s: &SubvolumeRecord) -> Vec<&'static str> {
    let mut m = Vec::new();
    if s.name.is_empty() {
        m.push("name");
    }
    if s.read_only.is_none() {
        m.push("read-only");
    }
    if s.creation_time.is_none() {
        m.push("creation-time");
    }
    if s.parent.is_none() && s.has_flag('S') {
        m.push("parent");
    }
    m
}

async fn subvolumes_check(i: &Inspector) -> Check {
    let bases: Vec<String> = i.bases().paths().iter().map(ToString::to_string).collect();
    match i.subvolumes_under_bases().await {
        Ok(subs) if subs.is_empty() => Check::warn(
            "btrfs-subvolumes",
            format!(
                "`/disk/btrfs/subvolume print detail` parses (legend seen) but no subvolume lies under {}: \
                 its properties are not confirmed yet",
                bases.join(", ")
            ),
            format!(
                "create a test subvolume and run this again ({RUNBOOK}, step 2), then remove it"
            ),
        ),
        Ok(subs) => {
            let bad: Vec<String> = subs
                .iter()
                .filter_map(|s| {
                    let m = missing_properties(s);
                    (!m.is_empty()).then(|| format!("{} lacks {}", s.name, m.join(", ")))
                })
                .collect();
            let snaps = subs.iter().filter(|s| s.is_read_only()).count();
            if bad.is_empty() {
                Check::pass(
                    "btrfs-subvolumes",
                    format!(
                        "`/disk/btrfs/subvolume print detail` parses: {} subvolume(s) under {} ({snaps} read-only), \
                         name, read-only and creation-time read",
                        subs.len(),
                        bases.join(", ")
                    ),
                )
            } else {
                Check::fail(
                    "btrfs-subvolumes",
                    format!(
                        "the print differs from the assumed layout: {}",
                        bad.join("; ")
                    ),
                    format!("keep flat; report the raw `print detail` output ({RUNBOOK}, step 2)"),
                )
            }
        }
        Err(e) => Check::fail(
            "btrfs-subvolumes",
            format!("`/disk/btrfs/subvolume print detail`: {}", describe_err(&e)),
            format!(
                "run it by hand ({RUNBOOK}, step 2) and compare with the assumed layout; keep flat"
            ),
        ),
    }
}
