//! Lookups of `/disk` items by slot, exported NQN and file path (issue 16): a filtered print,
//! the duplicate-slot and NQN-clash checks of `/disk add` then cost the same at 2,000 disks as
//! at none. Not persisted: built from the disks when the state is loaded, kept by every
//! change the model makes ([`crate::model::Device`]).

use std::collections::HashMap;

use crate::model::Disk;

#[derive(Clone, Debug, Default)]
pub(crate) struct DiskIndex {
    by_slot: HashMap<String, Vec<u64>>,
    /// Raw `nvme-tcp-server-nqn` of disks with the export on (what `where` compares).
    by_nqn: HashMap<String, Vec<u64>>,
    by_path: HashMap<String, Vec<u64>>,
    /// Disks indexed: differs from the disk count when someone changed the list behind
    /// the model's back (then it is rebuilt).
    count: usize,
}

fn add(map: &mut HashMap<String, Vec<u64>>, key: &str, id: u64) {
    map.entry(key.to_owned()).or_default().push(id);
}

fn del(map: &mut HashMap<String, Vec<u64>>, key: &str, id: u64) {
    if let Some(v) = map.get_mut(key) {
        v.retain(|i| *i != id);
        if v.is_empty() {
            map.remove(key);
        }
    }
}

impl DiskIndex {
    pub(crate) fn build(disks: &[Disk]) -> Self {
        let mut ix = Self::default();
        for d in disks {
            ix.insert(d);
        }
        ix
    }

    pub(crate) fn is_for(&self, disks: &[Disk]) -> bool {
        self.count == disks.len()
    }

    pub(crate) fn insert(&mut self, d: &Disk) {
        add(&mut self.by_slot, &d.slot, d.id);
        if let Some(f) = d.file() {
            if f.nvme_tcp_export {
                add(&mut self.by_nqn, &f.nvme_tcp_server_nqn, d.id);
            }
            add(&mut self.by_path, &f.file_path, d.id);
        }
        self.count += 1;
    }

    pub(crate) fn remove(&mut self, d: &Disk) {
        del(&mut self.by_slot, &d.slot, d.id);
        if let Some(f) = d.file() {
            if f.nvme_tcp_export {
                del(&mut self.by_nqn, &f.nvme_tcp_server_nqn, d.id);
            }
            del(&mut self.by_path, &f.file_path, d.id);
        }
        self.count = self.count.saturating_sub(1);
    }

    /// Ids of the disks whose `prop` is exactly `value`; `None` when `prop` is not indexed.
    pub(crate) fn ids(&self, prop: &str, value: &str) -> Option<&[u64]> {
        let map = match prop {
            "slot" => &self.by_slot,
            "nvme-tcp-server-nqn" => &self.by_nqn,
            "file-path" => &self.by_path,
            _ => return None,
        };
        Some(map.get(value).map_or(&[][..], Vec::as_slice))
    }
}
