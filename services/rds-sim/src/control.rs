//! Out-of-band control endpoint (HTTP/JSON on a local address) so faults and reboots can be
//! driven from the command line, e.g. `curl -XPOST localhost:PORT/faults -d '{"action":"hang"}'`.
//!
//! Routes: `GET /health`, `GET /disks`, `GET /faults`, `POST /faults` (a [`FaultRuleJson`],
//! answers `{"id": n}`), `DELETE /faults`, `DELETE /faults/{id}`, `POST /reboot`
//! (`{"downtime_ms": n}`).

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::faults::{FaultAction, FaultRule, Garble};
use crate::{SimError, SimHandle};

/// JSON form of a [`FaultAction`]; durations in milliseconds. Externally tagged:
/// `"hang"`, `{"latency": {"ms": 500}}`, `{"exit-status": {"status": null}}`,
/// `{"garble": "lf-line-endings"}`, `{"garble": {"truncate": 10}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[allow(missing_docs)]
pub enum ActionJson {
    Latency { ms: u64 },
    Hang,
    DropBeforeEffect,
    DropAfterEffect,
    DiskFull,
    ExitStatus { status: Option<u32> },
    Garble(Garble),
    RejectAuth,
    HostKeyChange,
    SessionLimit { max: u32 },
    HandshakeDelay { ms: u64 },
    CloseAfterIdent,
    Reboot { ms: u64 },
    ErrorText { text: String },
}

/// JSON form of a [`FaultRule`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRuleJson {
    /// Regex on the command line (or user name for `reject-auth`).
    #[serde(default)]
    pub command: Option<String>,
    /// Skip the first N matches.
    #[serde(default)]
    pub after: u32,
    /// Fire N times; absent = sticky.
    #[serde(default)]
    pub times: Option<u32>,
    /// The action.
    pub action: ActionJson,
}

impl From<FaultRuleJson> for FaultRule {
    fn from(j: FaultRuleJson) -> Self {
        let ms = Duration::from_millis;
        let action = match j.action {
            ActionJson::Latency { ms: m } => FaultAction::Latency(ms(m)),
            ActionJson::Hang => FaultAction::Hang,
            ActionJson::DropBeforeEffect => FaultAction::DropBeforeEffect,
            ActionJson::DropAfterEffect => FaultAction::DropAfterEffect,
            ActionJson::DiskFull => FaultAction::DiskFull,
            ActionJson::ExitStatus { status } => FaultAction::ExitStatus(status),
            ActionJson::Garble(g) => FaultAction::Garble(g),
            ActionJson::RejectAuth => FaultAction::RejectAuth,
            ActionJson::HostKeyChange => FaultAction::HostKeyChange,
            ActionJson::SessionLimit { max } => FaultAction::SessionLimit(max),
            ActionJson::HandshakeDelay { ms: m } => FaultAction::HandshakeDelay(ms(m)),
            ActionJson::CloseAfterIdent => FaultAction::CloseAfterIdent,
            ActionJson::Reboot { ms: m } => FaultAction::Reboot(ms(m)),
            ActionJson::ErrorText { text } => FaultAction::ErrorText(text),
        };
        FaultRule {
            command: j.command,
            after: j.after,
            times: j.times,
            action,
        }
    }
}

impl From<&FaultRule> for FaultRuleJson {
    fn from(r: &FaultRule) -> Self {
        let ms = |d: &Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let action = match &r.action {
            FaultAction::Latency(d) => ActionJson::Latency { ms: ms(d) },
            FaultAction::Hang => ActionJson::Hang,
            FaultAction::DropBeforeEffect => ActionJson::DropBeforeEffect,
            FaultAction::DropAfterEffect => ActionJson::DropAfterEffect,
            FaultAction::DiskFull => ActionJson::DiskFull,
            FaultAction::ExitStatus(s) => ActionJson::ExitStatus { status: *s },
            FaultAction::Garble(g) => ActionJson::Garble(g.clone()),
            FaultAction::RejectAuth => ActionJson::RejectAuth,
            FaultAction::HostKeyChange => ActionJson::HostKeyChange,
            FaultAction::SessionLimit(n) => ActionJson::SessionLimit { max: *n },
            FaultAction::HandshakeDelay(d) => ActionJson::HandshakeDelay { ms: ms(d) },
            FaultAction::CloseAfterIdent => ActionJson::CloseAfterIdent,
            FaultAction::Reboot(d) => ActionJson::Reboot { ms: ms(d) },
            FaultAction::ErrorText(t) => ActionJson::ErrorText { text: t.clone() },
        };
        Self {
            command: r.command.clone(),
            after: r.after,
            times: r.times,
            action,
        }
    }
}

impl FaultRule {
    /// Parse the JSON form ([`FaultRuleJson`]).
    pub fn from_json(text: &str) -> Result<Self, SimError> {
        let j: FaultRuleJson = serde_json::from_str(text)
            .map_err(|e| SimError::Invalid(format!("fault rule: {e}")))?;
        Ok(j.into())
    }
}

#[derive(Serialize)]
struct ListedRule {
    id: u64,
    seen: u32,
    fired: u32,
    #[serde(flatten)]
    rule: FaultRuleJson,
}

#[derive(Deserialize)]
struct RebootReq {
    downtime_ms: u64,
}

type ApiResult<T> = Result<Json<T>, (StatusCode, String)>;

async fn list_faults(State(sim): State<SimHandle>) -> Json<Vec<ListedRule>> {
    Json(
        sim.faults()
            .list()
            .iter()
            .map(|s| ListedRule {
                id: s.id,
                seen: s.seen,
                fired: s.fired,
                rule: (&s.rule).into(),
            })
            .collect(),
    )
}

async fn add_fault(
    State(sim): State<SimHandle>,
    Json(rule): Json<FaultRuleJson>,
) -> ApiResult<serde_json::Value> {
    let id = sim
        .faults()
        .try_add(rule.into())
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(Json(serde_json::json!({ "id": id })))
}

async fn clear_faults(State(sim): State<SimHandle>) -> StatusCode {
    sim.faults().clear();
    StatusCode::NO_CONTENT
}

async fn remove_fault(State(sim): State<SimHandle>, Path(id): Path<u64>) -> StatusCode {
    sim.faults().remove(id);
    StatusCode::NO_CONTENT
}

async fn reboot(State(sim): State<SimHandle>, Json(req): Json<RebootReq>) -> StatusCode {
    sim.reboot(Duration::from_millis(req.downtime_ms)).await;
    StatusCode::ACCEPTED
}

async fn disks(State(sim): State<SimHandle>) -> Json<Vec<crate::DiskSummary>> {
    Json(sim.disks())
}

/// Serve the control endpoint on `listen` (use a loopback address); returns the bound
/// address. Runs until the process ends.
pub async fn serve_control(sim: SimHandle, listen: SocketAddr) -> Result<SocketAddr, SimError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| SimError::Bind {
            addr: listen,
            source: e,
        })?;
    let addr = listener.local_addr().map_err(|e| SimError::Bind {
        addr: listen,
        source: e,
    })?;
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/disks", get(disks))
        .route(
            "/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/faults/{id}", delete(remove_fault))
        .route("/reboot", post(reboot))
        .with_state(sim);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "control endpoint failed");
        }
    });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn json_round_trip() {
        let r = FaultRule::from_json(
            r#"{"command":"^/disk add","after":1,"times":2,"action":{"latency":{"ms":250}}}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            FaultRule::new(FaultAction::Latency(Duration::from_millis(250)))
                .on("^/disk add")
                .after(1)
                .times(2)
        );
        let g = FaultRule::from_json(r#"{"action":{"garble":{"truncate":5}}}"#).unwrap();
        assert_eq!(g.action, FaultAction::Garble(Garble::Truncate(5)));
        let h = FaultRule::from_json(r#"{"action":"hang"}"#).unwrap();
        assert_eq!(FaultRuleJson::from(&h).action, ActionJson::Hang);
        assert!(FaultRule::from_json(r#"{"action":"nope"}"#).is_err());
    }
}
