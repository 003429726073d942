//! Leader election with a coordination.k8s.io/v1 Lease, done by hand: get;
//! create when missing; renew (replace with our resourceVersion) while we
//! hold it; take it over (replace) once the holder stopped renewing for a
//! full lease duration. Expiry is judged by *our* clock — how long the
//! record has been seen unchanged — never by comparing the holder's
//! renewTime with our clock, so skew between machines does not matter. A
//! conflict (409) means someone else won the race. The leader steps down
//! by a timer 2/3 of the duration after it *sent* its last successful
//! renewal (see [`spawn`]), and releases the Lease on shutdown so a standby
//! takes over at once.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};
use rds_bus::Shutdown;
use tokio::sync::watch;

use super::deadline;
use crate::error::Error;

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub duration: Duration,
}

/// What identifies one version of the record: (holder, renewTime).
type RecordKey = (Option<String>, Option<MicroTime>);

struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    /// The record last seen, and when it was first seen.
    observed: Option<(RecordKey, Instant)>,
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl Elector {
    fn duration_secs(&self) -> i32 {
        i32::try_from(self.cfg.duration.as_secs()).unwrap_or(i32::MAX)
    }

    /// One round: Ok(true) = we hold the Lease now.
    async fn round(&mut self) -> Result<bool, Error> {
        let name = self.cfg.name.clone();
        let now = MicroTime(jiff::Timestamp::now());
        let current = deadline("get Lease", self.api.get_opt(&name)).await?;
        let Some(mut lease) = current else {
            let fresh = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(self.cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.cfg.identity.clone()),
                    lease_duration_seconds: Some(self.duration_secs()),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match tokio::time::timeout(
                super::CALL_DEADLINE,
                self.api.create(&PostParams::default(), &fresh),
            )
            .await
            {
                Ok(Ok(_)) => Ok(true),
                Ok(Err(e)) if is_conflict(&e) => Ok(false),
                Ok(Err(e)) => Err(Error::Kube(format!("create Lease: {e}"))),
                Err(_) => Err(Error::Kube("create Lease: no answer".into())),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let key = (holder.clone(), spec.renew_time.clone());
        let seen_at = match &self.observed {
            Some((k, at)) if *k == key => *at,
            _ => Instant::now(),
        };
        self.observed = Some((key, seen_at));
        let mine = holder.as_deref() == Some(self.cfg.identity.as_str());
        let their_duration = Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(self.duration_secs())).unwrap_or(0),
        );
        let expired = holder.is_none() || seen_at.elapsed() >= their_duration;
        if !mine && !expired {
            return Ok(false);
        }
        let mut next = spec;
        if !mine {
            next.holder_identity = Some(self.cfg.identity.clone());
            next.acquire_time = Some(now.clone());
            next.lease_transitions = Some(next.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        next.renew_time = Some(now);
        next.lease_duration_seconds = Some(self.duration_secs());
        lease.spec = Some(next);
        // replace carries metadata.resourceVersion: a concurrent writer wins
        // and we get 409.
        match tokio::time::timeout(
            super::CALL_DEADLINE,
            self.api.replace(&name, &PostParams::default(), &lease),
        )
        .await
        {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(e)) if is_conflict(&e) => Ok(false),
            Ok(Err(e)) => Err(Error::Kube(format!("update Lease: {e}"))),
            Err(_) => Err(Error::Kube("update Lease: no answer".into())),
        }
    }

    async fn release(&self) {
        let Ok(Some(mut lease)) = deadline("get Lease", self.api.get_opt(&self.cfg.name)).await
        else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        match deadline(
            "release Lease",
            self.api
                .replace(&self.cfg.name, &PostParams::default(), &lease),
        )
        .await
        {
            Ok(_) => tracing::info!(lease = %self.cfg.name, "released leadership"),
            Err(e) => tracing::warn!(error = %e, "cannot release Lease"),
        }
    }
}

/// Starts the election loop; the receiver says whether we lead right now.
///
/// Leadership ends by a timer, never by waiting for an answer: a renewal
/// sent at `t` keeps us leading until `t + 2/3 · duration` (`valid_until`).
/// Another replica takes over no earlier than a full duration after it saw
/// that renewal, which it cannot have seen before `t`; so the two never
/// both lead. While leading, each round runs in a `select!` against
/// `valid_until` (the round is bounded by the remaining validity; a round
/// still in flight then is abandoned) and the pause between rounds wakes
/// at `valid_until` too.
pub fn spawn(
    client: Client,
    cfg: LeaseConfig,
    shutdown: Shutdown,
) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let api = Api::namespaced(client, &cfg.namespace);
    let mut elector = Elector {
        api,
        cfg,
        observed: None,
    };
    let task = tokio::spawn(async move {
        let retry = (elector.cfg.duration / 3).max(Duration::from_millis(100));
        let valid_for = elector.cfg.duration * 2 / 3;
        // Some(deadline) while we lead.
        let mut valid_until: Option<Instant> = None;
        loop {
            let sent = Instant::now();
            let outcome = {
                let round = elector.round();
                tokio::pin!(round);
                tokio::select! {
                    r = &mut round => Some(r),
                    _ = sleep_until_opt(valid_until) => None,
                    _ = shutdown.wait() => break,
                }
            };
            match outcome {
                None => {
                    tracing::warn!(
                        "Lease renewal still unanswered when our leadership expired; stepping down"
                    );
                    valid_until = None;
                    set(&tx, false);
                }
                Some(Ok(true)) => {
                    if valid_until.is_none() {
                        tracing::info!(identity = %elector.cfg.identity, lease = %elector.cfg.name, "became leader");
                    }
                    valid_until = Some(sent + valid_for);
                    set(&tx, true);
                }
                Some(Ok(false)) => {
                    if valid_until.take().is_some() {
                        tracing::warn!("lost the Lease to another holder");
                    }
                    set(&tx, false);
                }
                Some(Err(e)) => {
                    // Still leading until valid_until (the select above and
                    // below enforce it).
                    tracing::warn!(error = %e, "lease round failed");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(retry) => {}
                _ = sleep_until_opt(valid_until) => {
                    tracing::warn!("could not renew the Lease in time; stepping down");
                    valid_until = None;
                    set(&tx, false);
                }
                _ = shutdown.wait() => break,
            }
        }
        if *tx.borrow() {
            set(&tx, false);
            elector.release().await;
        }
    });
    (rx, task)
}

/// Sleeps until `at`; never resolves for None.
async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Publishes only changes: receivers wake on a leadership change, not on
/// every renewal.
fn set(tx: &watch::Sender<bool>, leading: bool) {
    tx.send_if_modified(|v| std::mem::replace(v, leading) != leading);
}
