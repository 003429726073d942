//! Builders for the objects the project's tests seed (as the JSON the API
//! server holds, checked against k8s-openapi's types when stored), and the
//! API server's create validation of events.k8s.io/v1 Events.

use serde_json::{Map, Value, json};

use super::store::{Refusal, refuse};

pub const DRIVER: &str = "rds.csi.srvlab.io";

/// A Ready node.
pub fn node(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
           "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
}

/// A CSINode listing `drivers` as (driver name, node id).
pub fn csinode(name: &str, drivers: &[(&str, &str)]) -> Value {
    let drivers: Vec<Value> = drivers
        .iter()
        .map(|(d, id)| json!({"name": d, "nodeID": id}))
        .collect();
    json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSINode", "metadata": {"name": name},
           "spec": {"drivers": drivers}})
}

/// A CSI PersistentVolume of `driver`; `pvc` (namespace, name) goes into
/// the volume attributes the external-provisioner passes.
pub fn pv(
    name: &str,
    handle: &str,
    modes: &[&str],
    block: bool,
    pvc: Option<(&str, &str)>,
    driver: &str,
) -> Value {
    let mut attrs = Map::new();
    attrs.insert(
        "volumePath".into(),
        json!(format!("/storage-pool/metal-csi/{handle}.img")),
    );
    if let Some((ns, n)) = pvc {
        attrs.insert("csi.storage.k8s.io/pvc/namespace".into(), json!(ns));
        attrs.insert("csi.storage.k8s.io/pvc/name".into(), json!(n));
    }
    json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
           "spec": {"accessModes": modes, "volumeMode": if block {"Block"} else {"Filesystem"},
                    "capacity": {"storage": "1Gi"},
                    "csi": {"driver": driver, "volumeHandle": handle, "volumeAttributes": attrs}}})
}

/// A VolumeAttachment as the external-attacher leaves it.
pub fn va(name: &str, pv: &str, node: &str, attached: bool, driver: &str, created: &str) -> Value {
    json!({"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
           "metadata": {"name": name, "creationTimestamp": created},
           "spec": {"attacher": driver, "nodeName": node, "source": {"persistentVolumeName": pv}},
           "status": {"attached": attached}})
}

/// events.k8s.io/v1 create validation as the API server does it for
/// events with eventTime set: namespace rules, required fields, lengths.
pub fn validate_event(ns: &str, ev: &Value) -> Result<(), Refusal> {
    let s = |p: &str| ev.pointer(p).and_then(Value::as_str).unwrap_or("");
    let invalid = |m: String| Err(refuse(422, "Invalid", m));
    if s("/apiVersion") != "events.k8s.io/v1" || s("/kind") != "Event" {
        return Err(refuse(400, "BadRequest", "expected events.k8s.io/v1 Event"));
    }
    let body_ns = s("/metadata/namespace");
    if !body_ns.is_empty() && body_ns != ns {
        return Err(refuse(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let regarding_ns = s("/regarding/namespace");
    let ns_ok = if regarding_ns.is_empty() {
        ns == "default" || ns == "kube-system"
    } else {
        regarding_ns == ns
    };
    if !ns_ok {
        return invalid("involvedObject.namespace: does not match event.namespace".into());
    }
    if s("/metadata/name").is_empty() {
        return invalid("metadata.name: Required value".into());
    }
    if s("/eventTime").is_empty() {
        return invalid("eventTime: Required value".into());
    }
    for (field, limit) in [
        ("reportingController", 253),
        ("reportingInstance", 128),
        ("action", 128),
        ("reason", 128),
    ] {
        let v = s(&format!("/{field}"));
        if v.is_empty() || v.len() > limit {
            return invalid(format!("{field}: Required value or too long"));
        }
    }
    if s("/note").len() > 1024 {
        return invalid("note: Too long: may not be more than 1024 bytes".into());
    }
    if !matches!(s("/type"), "Normal" | "Warning") {
        return invalid("type: Unsupported value".into());
    }
    Ok(())
}
