//! Storage fencing: the RDS itself admits only the nodes a volume is
//! attached to (docs/safety.md). This service stays the decider; rds-agent
//! applies each decision with one `/disk set` of the export's host allow
//! list and answers with the list re-read from the RDS.
//!
//! - A node's host NQN is computed, not asked for: nodes derive their NVMe
//!   host identity from the cluster id and their node name
//!   (`rds_bus::HostIdentity::derive`), and so does this service.
//! - A volume held by nobody admits [`NO_HOST_NQN`] only: an empty RouterOS
//!   list means "any host", and turning the export off would change a
//!   second property (and tear the export down on the RDS) for what is
//!   only an access decision.
//! - Order: Attach = durable decision, then the list (verified), then OK.
//!   Detach = the node removed from the list (verified), then the release.
//!   A failure leaves the stricter state: an attached node not yet
//!   admitted, or a released node still recorded as holding the volume.

use std::collections::BTreeMap;
use std::time::Duration;

use rds_bus::{BusChannel, ClientOptions, ClusterId, HostIdentity, NodeId, Reason, VolumeId};
use rds_proto::agent::agent_client::AgentClient;
use rds_proto::agent::{ListAllowedHostsRequest, SetAllowedHostsRequest};

use crate::config::Config;
use crate::error::Error;

/// The one host NQN a volume held by nobody admits (one definition, shared
/// with rds-agent's create path).
pub use rds_bus::ids::NO_HOST_NQN;

/// The host NQN form nodes derive (what "a list this driver set" contains,
/// besides [`NO_HOST_NQN`]).
const DERIVED_PREFIX: &str = "nqn.2014-08.org.nvmexpress:uuid:";

/// Whether every entry of `hosts` is one this driver writes (turning
/// fencing off opens only such lists; an operator's own list is left).
pub fn set_by_us(hosts: &[String]) -> bool {
    !hosts.is_empty()
        && hosts
            .iter()
            .all(|h| h == NO_HOST_NQN || h.starts_with(DERIVED_PREFIX))
}

pub struct StorageFence {
    client: AgentClient<BusChannel>,
    /// None when fencing is off (only clearing is possible then).
    cluster: Option<ClusterId>,
    enabled: bool,
}

impl StorageFence {
    /// `None` without `--agent-endpoint` (nothing to talk to).
    pub fn from_config(cfg: &Config) -> Result<Option<StorageFence>, Error> {
        let Some(ep) = cfg.agent_endpoint.as_deref() else {
            return Ok(None);
        };
        let channel = rds_bus::connect(
            ep,
            ClientOptions {
                connect_timeout: cfg.agent_deadline.min(Duration::from_secs(3)),
                request_timeout: cfg.agent_deadline,
            },
        )
        .map_err(|e| Error::Config(format!("--agent-endpoint: {e}")))?;
        let cluster = cfg
            .cluster_id
            .as_deref()
            .map(ClusterId::parse)
            .transpose()
            .map_err(|e| Error::Config(format!("--cluster-id: {e}")))?;
        Ok(Some(StorageFence {
            client: AgentClient::new(channel),
            enabled: cfg.storage_fencing && cluster.is_some(),
            cluster,
        }))
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The allow list for these holders: their derived host NQNs, sorted,
    /// or [`NO_HOST_NQN`] alone when there are none.
    pub fn desired<'a>(&self, holders: impl IntoIterator<Item = &'a NodeId>) -> Vec<String> {
        let mut v: Vec<String> = match &self.cluster {
            Some(c) => holders
                .into_iter()
                .map(|n| HostIdentity::derive(c, n).host_nqn().to_owned())
                .collect(),
            None => Vec::new(),
        };
        v.sort();
        v.dedup();
        if v.is_empty() {
            v.push(NO_HOST_NQN.to_owned());
        }
        v
    }

    /// Sets the list and checks the list rds-agent re-read from the RDS.
    /// `doing` names the step for the error ("attach to worker-a").
    pub async fn apply(
        &self,
        volume: &VolumeId,
        hosts: Vec<String>,
        doing: &str,
    ) -> Result<(), Error> {
        self.set(volume, hosts, false, doing).await
    }

    /// Opens the export to any host (fencing turned off).
    pub async fn open(&self, volume: &VolumeId) -> Result<(), Error> {
        self.set(volume, Vec::new(), true, "turn storage fencing off")
            .await
    }

    async fn set(
        &self,
        volume: &VolumeId,
        hosts: Vec<String>,
        admit_any: bool,
        doing: &str,
    ) -> Result<(), Error> {
        let mut c = self.client.clone();
        let want = hosts.clone();
        let res = c
            .set_allowed_hosts(SetAllowedHostsRequest {
                volume_id: volume.to_string(),
                host_nqns: hosts,
                admit_any,
            })
            .await;
        match res {
            Ok(r) => {
                let mut got = r.into_inner().host_nqns;
                got.sort();
                if got == want {
                    Ok(())
                } else {
                    Err(Error::StorageFence {
                        reason: Reason::Internal,
                        message: format!(
                            "storage fencing: {doing}: the RDS reports allow list {got:?} for {volume}, \
                             expected {want:?}"
                        ),
                    })
                }
            }
            Err(status) => Err(fence_error(volume, doing, &status)),
        }
    }

    /// Every volume's list as the RDS reports it.
    pub async fn list(&self) -> Result<BTreeMap<VolumeId, Vec<String>>, Error> {
        let mut c = self.client.clone();
        let r = c
            .list_allowed_hosts(ListAllowedHostsRequest {})
            .await
            .map_err(|s| fence_error_plain("list the allow lists", &s))?;
        Ok(r.into_inner()
            .volumes
            .into_iter()
            .filter_map(|a| {
                let v = VolumeId::parse(&a.volume_id).ok()?;
                let mut h = a.host_nqns;
                h.sort();
                Some((v, h))
            })
            .collect())
    }
}

/// The agent's status as this service's error: its reason is kept (an
/// unreachable RDS stays UNAVAILABLE, so callers retry) and the message says
/// what did not happen.
fn fence_error(volume: &VolumeId, doing: &str, s: &tonic::Status) -> Error {
    let reason = rds_bus::reason_of(s).unwrap_or(match s.code() {
        tonic::Code::DeadlineExceeded => Reason::RdsTimeout,
        _ => Reason::ServiceUnavailable,
    });
    Error::StorageFence {
        reason,
        message: format!(
            "storage fencing is on and the RDS allow list of {volume} could not be set ({doing}): \
             {}; retry when the RDS is reachable",
            s.message()
        ),
    }
}

fn fence_error_plain(doing: &str, s: &tonic::Status) -> Error {
    let reason = rds_bus::reason_of(s).unwrap_or(Reason::ServiceUnavailable);
    Error::StorageFence {
        reason,
        message: format!("storage fencing: {doing}: {}", s.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_is_a_valid_host_nqn_nobody_derives() {
        assert!(
            rds_bus::HostIdentity::explicit(NO_HOST_NQN, "00000000-0000-0000-0000-000000000000")
                .is_ok()
        );
        assert!(set_by_us(&[NO_HOST_NQN.to_owned()]));
        assert!(set_by_us(&[format!("{DERIVED_PREFIX}x")]));
        assert!(!set_by_us(&[]));
        assert!(!set_by_us(&["nqn.2014-08.com.example:operator".to_owned()]));
    }
}
