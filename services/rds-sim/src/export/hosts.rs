//! Host access control of an export: a disk's `nvme-tcp-server-allow-host-name` mirrored into
//! the subsystem's `allowed_hosts` (links to `nvmet/hosts/<host NQN>`) with
//! `attr_allow_any_host=0`; an empty value keeps `attr_allow_any_host=1` (RouterOS: any host).
//! The driver's storage fencing never leaves a list empty, so with fencing on every export is
//! closed to all but the listed hosts.
//!
//! How RouterOS reads the value is UNVERIFIED; the switches ([`AllowListSwitches`]) choose:
//! a list split on a separator (default `,`) or one value taken whole, and whether a change
//! drops the controllers already connected (the kernel itself keeps them; dropping is done by
//! unlinking the subsystem from its ports for a moment).

use std::collections::BTreeSet;
use std::fs;

use super::Exporter;
use super::desired::{WantedSubsystem, valid_nqn};
use crate::error::SimError;

/// How the sim interprets the allow-list property (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AllowListSwitches {
    /// The whole value is one host name (no list).
    pub single_value: bool,
    /// Separator between host names when it is a list.
    pub separator: char,
    /// A change of the list disconnects the controllers already connected.
    pub drop_on_change: bool,
}

impl Default for AllowListSwitches {
    fn default() -> Self {
        Self {
            single_value: false,
            separator: ',',
            drop_on_change: false,
        }
    }
}

/// The hosts a value admits; `None` = any host (empty value).
pub(crate) fn parse_hosts(value: &str, sw: &AllowListSwitches) -> Option<BTreeSet<String>> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if sw.single_value {
        return Some(BTreeSet::from([value.to_owned()]));
    }
    Some(
        value
            .split(sw.separator)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

impl Exporter {
    /// Brings the subsystem's host access to what its disk asks for. Returns whether anything
    /// changed. Closing happens before opening: `attr_allow_any_host=0` first, then the links
    /// (the kernel refuses host links while any host is allowed); a host name that cannot be
    /// an NQN is left out (fewer hosts, never more).
    pub(crate) fn ensure_hosts(&self, nqn: &str, want: &WantedSubsystem) -> Result<bool, SimError> {
        let dir = self.tree.subsystem(nqn);
        let allowed = dir.join("allowed_hosts");
        let io = |what: &'static str, p: std::path::PathBuf| {
            move |e: std::io::Error| SimError::io(what, p, e)
        };
        let have: BTreeSet<String> = fs::read_dir(&allowed)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let any_now = self.tree.read_attr(&dir, "attr_allow_any_host").as_deref() != Some("0");
        match parse_hosts(&want.allow_value, &self.cfg.allow_list) {
            None => {
                if have.is_empty() && any_now {
                    return Ok(false);
                }
                for h in &have {
                    let l = allowed.join(h);
                    fs::remove_file(&l).map_err(io("removing allowed host", l.clone()))?;
                }
                self.tree
                    .write_attr(&dir, "attr_allow_any_host", "1")
                    .map_err(io("opening subsystem", dir.clone()))?;
                tracing::info!(%nqn, "nvmet subsystem admits any host");
                Ok(true)
            }
            Some(wanted) => {
                let wanted: BTreeSet<String> = wanted
                    .into_iter()
                    .filter(|h| {
                        let ok = valid_nqn(h);
                        if !ok {
                            tracing::warn!(%nqn, host = %h, "allow-list entry is not an NQN; not admitted");
                        }
                        ok
                    })
                    .collect();
                if have == wanted && !any_now {
                    return Ok(false);
                }
                self.tree
                    .write_attr(&dir, "attr_allow_any_host", "0")
                    .map_err(io("closing subsystem", dir.clone()))?;
                for h in have.difference(&wanted) {
                    let l = allowed.join(h);
                    fs::remove_file(&l).map_err(io("removing allowed host", l.clone()))?;
                }
                for h in wanted.difference(&have) {
                    let host = self.tree.host(h);
                    if !self.tree.exists(&host) {
                        if let Some(parent) = host.parent().filter(|_| self.tree.is_plain()) {
                            fs::create_dir_all(parent)
                                .map_err(io("creating hosts", parent.to_owned()))?;
                        }
                        self.tree
                            .make_group(&host, &[])
                            .map_err(io("creating host", host.clone()))?;
                    }
                    let l = allowed.join(h);
                    std::os::unix::fs::symlink(&host, &l)
                        .map_err(io("adding allowed host", l.clone()))?;
                }
                tracing::info!(%nqn, hosts = ?wanted, "nvmet subsystem admits only listed hosts");
                Ok(true)
            }
        }
    }

    /// Removes every allowed-host link (before the subsystem group is dropped).
    pub(crate) fn clear_hosts(&self, nqn: &str) {
        let allowed = self.tree.subsystem(nqn).join("allowed_hosts");
        if let Ok(rd) = fs::read_dir(&allowed) {
            for e in rd.flatten() {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::NvmetExportConfig;
    use super::super::tree::SUBSYSTEM_DEFAULT_GROUPS;
    use super::*;

    const HA: &str = "nqn.2014-08.org.nvmexpress:uuid:a";
    const HB: &str = "nqn.2014-08.org.nvmexpress:uuid:b";
    const SUB: &str = "nqn.2000-02.com.mikrotik:pvc-a";

    fn exporter(sw: AllowListSwitches) -> (tempfile::TempDir, Exporter) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("config");
        fs::create_dir_all(root.join("nvmet/subsystems")).unwrap();
        fs::create_dir_all(root.join("nvmet/ports")).unwrap();
        let cfg = NvmetExportConfig {
            enabled: true,
            configfs_root: root,
            allow_list: sw,
            ..NvmetExportConfig::default()
        };
        let ex = Exporter::open(&cfg, dir.path()).unwrap();
        let sub = ex.tree.subsystem(SUB);
        ex.tree.make_group(&sub, SUBSYSTEM_DEFAULT_GROUPS).unwrap();
        ex.tree
            .write_attr(&sub, "attr_allow_any_host", "1")
            .unwrap();
        (dir, ex)
    }

    fn want(value: &str) -> WantedSubsystem {
        WantedSubsystem {
            device_path: "/x".into(),
            size: 1,
            ports: BTreeSet::from([4420]),
            allow_value: value.into(),
        }
    }

    fn state(ex: &Exporter) -> (String, Vec<String>) {
        let sub = ex.tree.subsystem(SUB);
        let mut links: Vec<String> = fs::read_dir(sub.join("allowed_hosts"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        links.sort();
        (
            ex.tree.read_attr(&sub, "attr_allow_any_host").unwrap(),
            links,
        )
    }

    #[test]
    fn list_closes_the_subsystem_to_listed_hosts_and_empty_opens_it() {
        let (_d, ex) = exporter(AllowListSwitches::default());
        assert!(ex.ensure_hosts(SUB, &want(&format!("{HA},{HB}"))).unwrap());
        assert_eq!(state(&ex), ("0".into(), vec![HA.into(), HB.into()]));
        assert!(!ex.ensure_hosts(SUB, &want(&format!("{HB},{HA}"))).unwrap());
        assert!(ex.ensure_hosts(SUB, &want(HB)).unwrap());
        assert_eq!(state(&ex), ("0".into(), vec![HB.into()]));
        // A value that is no NQN admits nobody (never more hosts).
        assert!(ex.ensure_hosts(SUB, &want("not a host")).unwrap());
        assert_eq!(state(&ex), ("0".into(), vec![]));
        assert!(ex.ensure_hosts(SUB, &want("")).unwrap());
        assert_eq!(state(&ex), ("1".into(), vec![]));
    }

    #[test]
    fn single_value_switch_takes_a_joined_list_as_one_name() {
        let sw = AllowListSwitches {
            single_value: true,
            ..AllowListSwitches::default()
        };
        let (_d, ex) = exporter(sw);
        ex.ensure_hosts(SUB, &want(&format!("{HA},{HB}"))).unwrap();
        // "a,b" is no NQN as one name: nobody is admitted.
        assert_eq!(state(&ex), ("0".into(), vec![]));
        ex.ensure_hosts(SUB, &want(HA)).unwrap();
        assert_eq!(state(&ex), ("0".into(), vec![HA.into()]));
    }

    #[test]
    fn values_parse_per_switch() {
        let list = AllowListSwitches::default();
        assert_eq!(parse_hosts("", &list), None);
        assert_eq!(
            parse_hosts("nqn.a:x, nqn.b:y", &list),
            Some(BTreeSet::from(["nqn.a:x".to_owned(), "nqn.b:y".to_owned()]))
        );
        let single = AllowListSwitches {
            single_value: true,
            ..AllowListSwitches::default()
        };
        assert_eq!(
            parse_hosts("nqn.a:x,nqn.b:y", &single),
            Some(BTreeSet::from(["nqn.a:x,nqn.b:y".to_owned()]))
        );
    }
}
