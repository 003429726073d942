//! Storage fencing on the RDS: the NVMe/TCP host allow list of a volume's
//! export (`nvme-tcp-server-allow-host-name`). attachment-service decides
//! who may connect; this module applies it with one `/disk set` and proves
//! it by a re-read (docs/safety.md). The value format is assumed in
//! `rds_routeros::allow`.

use std::sync::Arc;

use rds_proto::agent::{AllowedHosts, ListAllowedHostsResponse, SetAllowedHostsRequest};
use rds_routeros::{AllowHosts, Command, DiskRecord, HostNqn, Slot, parse_allow_hosts};

use crate::error::AgentError;
use crate::layout::DiskKind;
use crate::rds::{Rds, decide_after};
use crate::volumes::parse_volume_id;

/// The hosts a disk's export admits, as printed (empty = any host).
fn hosts_of(d: &DiskRecord) -> Vec<String> {
    parse_allow_hosts(d.nvme_tcp_server_allow_host_name.as_deref().unwrap_or(""))
}

fn reply(slot: &Slot, hosts: Vec<String>) -> AllowedHosts {
    AllowedHosts {
        volume_id: slot.to_string(),
        host_nqns: hosts,
    }
}

/// Checks the request: every entry a host NQN; an empty list only with
/// `admit_any` (RouterOS reads an empty value as "any host", so opening an
/// export must be asked for by name, never fall out of an empty list).
pub fn desired(r: &SetAllowedHostsRequest) -> Result<(Slot, AllowHosts), AgentError> {
    let slot = parse_volume_id(&r.volume_id)?;
    let hosts = r
        .host_nqns
        .iter()
        .map(|h| HostNqn::new(h))
        .collect::<Result<Vec<_>, _>>()?;
    let list = match (hosts.is_empty(), r.admit_any) {
        (true, true) => AllowHosts::any(),
        (false, false) => AllowHosts::only(hosts)?,
        (true, false) => {
            return Err(AgentError::InvalidArgument(
                "host_nqns is empty: an empty allow list admits any host; set admit_any to open the export".into(),
            ));
        }
        (false, true) => {
            return Err(AgentError::InvalidArgument(
                "admit_any is only allowed with an empty host_nqns".into(),
            ));
        }
    };
    Ok((slot, list))
}

pub struct AllowList {
    rds: Arc<Rds>,
}

impl AllowList {
    pub fn new(rds: Arc<Rds>) -> Self {
        AllowList { rds }
    }

    async fn volume_disk(&self, slot: &Slot) -> Result<Option<DiskRecord>, AgentError> {
        Ok(self
            .rds
            .disk(slot)
            .await?
            .filter(|d| self.rds.kind(d) == DiskKind::Volume))
    }

    /// Sets the list (skipped when the RDS already reports it) and answers
    /// with the list re-read after the `set`. A re-read that differs is an
    /// error: the caller must not report the volume fenced (or released).
    pub async fn set(&self, r: SetAllowedHostsRequest) -> Result<AllowedHosts, AgentError> {
        let (slot, list) = desired(&r)?;
        let want: Vec<String> = list.hosts().iter().map(|h| h.to_string()).collect();
        let d = self
            .volume_disk(&slot)
            .await?
            .ok_or_else(|| AgentError::VolumeNotFound(slot.to_string()))?;
        if hosts_of(&d) == want {
            return Ok(reply(&slot, want));
        }
        let cmd = Command::DiskSetAllowHosts {
            slot: slot.clone(),
            hosts: list,
        };
        let sent = self.rds.exec().mutate(&cmd).await;
        decide_after(
            sent,
            |_| false,
            self.volume_disk(&slot),
            |now, err| match (now, err) {
                (Some(d), _) if hosts_of(&d) == want => Ok(reply(&slot, want)),
                (Some(d), None) => Err(AgentError::Internal(format!(
                    "the RDS accepted the allow list of {slot} but reports {:?} (want {:?}); \
                     is the property format different on this RouterOS?",
                    hosts_of(&d),
                    want
                ))),
                (None, None) => Err(AgentError::VolumeNotFound(slot.to_string())),
                (_, Some(e)) => Err(e),
            },
        )
        .await
    }

    /// The allow list of every volume of this driver (one unfiltered read).
    pub async fn list(&self) -> Result<ListAllowedHostsResponse, AgentError> {
        let mut volumes: Vec<AllowedHosts> = self
            .rds
            .file_disks()
            .await?
            .iter()
            .filter(|d| self.rds.kind(d) == DiskKind::Volume)
            .filter_map(|d| {
                let slot = Slot::new(d.slot.as_deref()?).ok()?;
                Some(reply(&slot, hosts_of(d)))
            })
            .collect();
        volumes.sort_by(|a, b| a.volume_id.cmp(&b.volume_id));
        Ok(ListAllowedHostsResponse { volumes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(hosts: &[&str], any: bool) -> SetAllowedHostsRequest {
        SetAllowedHostsRequest {
            volume_id: "pvc-a".into(),
            host_nqns: hosts.iter().map(|s| s.to_string()).collect(),
            admit_any: any,
        }
    }

    #[test]
    fn empty_list_needs_admit_any_and_bad_values_are_refused() {
        assert!(matches!(
            desired(&req(&[], false)),
            Err(AgentError::InvalidArgument(_))
        ));
        assert!(matches!(
            desired(&req(&["nqn.2014-08.org.nvmexpress:uuid:a"], true)),
            Err(AgentError::InvalidArgument(_))
        ));
        assert!(desired(&req(&["nqn.x\" ; /disk remove"], false)).is_err());
        assert!(
            desired(&req(
                &["nqn.2014-08.org.nvmexpress:a,nqn.2014-08.org.x:b"],
                false
            ))
            .is_err()
        );
        let (_, l) = desired(&req(&[], true)).unwrap();
        assert!(l.hosts().is_empty());
    }
}
