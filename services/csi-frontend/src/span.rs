//! The root span of each CSI call (`csi.<Method>`, docs/ARCHITECTURE.md §5.1) and the one
//! exit path of every handler: the error becomes its CSI status, the span is
//! marked failed, and the failure is logged once with its code.

use std::collections::HashMap;

use tonic::{Response, Status};
use tracing::Span;

use crate::error::FrontendError;
use crate::params::{PVC_NAME, PVC_NAMESPACE};

/// Opens `csi.<Method>` with the fields handlers fill in as they learn them.
macro_rules! csi_span {
    ($name:literal) => {
        tracing::info_span!(
            $name,
            volume_id = tracing::field::Empty,
            node_id = tracing::field::Empty,
            snapshot_id = tracing::field::Empty,
            pvc.namespace = tracing::field::Empty,
            pvc.name = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            rpc.grpc.status_code = tracing::field::Empty,
        )
    };
}
pub(crate) use csi_span;

/// Ids recorded on spans are request values: cut short (hostile input must
/// not flood logs); empty values are not recorded.
fn short(v: &str) -> String {
    v.chars().take(128).collect()
}

pub fn record(span: &Span, field: &'static str, value: &str) {
    if !value.is_empty() {
        span.record(field, short(value).as_str());
    }
}

/// Records the PVC named by parameters / volume_context, when present.
pub fn record_pvc(span: &Span, map: &HashMap<String, String>) {
    if let Some(ns) = map.get(PVC_NAMESPACE) {
        record(span, "pvc.namespace", ns);
    }
    if let Some(name) = map.get(PVC_NAME) {
        record(span, "pvc.name", name);
    }
}

/// Turns a handler result into the gRPC answer.
pub fn finish<T>(span: &Span, result: Result<T, FrontendError>) -> Result<Response<T>, Status> {
    match result {
        Ok(v) => Ok(Response::new(v)),
        Err(e) => {
            let status = e.to_status();
            span.record("rpc.grpc.status_code", status.code() as i32);
            rds_bus::trace::mark_error(span, status.message());
            span.in_scope(|| {
                tracing::warn!(code = ?status.code(), error = %status.message(), "CSI call failed");
            });
            Err(status)
        }
    }
}
