//! Our `csi/v1/csi.proto` against an independent statement of the same wire.
//!
//! A wrong field number or type breaks every real kubelet and sidecar, and
//! our own tests would not notice (both ends use our generated code). So this
//! test compares the descriptor our Rust code is generated from with the
//! descriptor of a `csi.proto` that a registry package carries: crates.io
//! `cfgd-csi` 0.8.0 ships CSI spec v1.9.0's proto. The package is fetched by
//! `tools/registry_fetch.py` (sha256-pinned, cached outside the repo, never a
//! Cargo dependency) and compiled with the same vendored protoc as ours.
//!
//! Everything v1.9 states must be identical in ours: message, field, enum,
//! service and method names; field numbers, types, labels, oneofs; method
//! streaming; and the csi.v1 secret/alpha options. What ours adds must be
//! exactly the v1.10–v1.12 changes listed in [`ADDED`] and [`PROMOTED`],
//! which were checked by hand against the spec's release notes and PRs
//! (proto/README.md has the table and the sources).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use prost::Message;

/// Declarations v1.10–v1.12 added; each covers its own fields, values, methods.
const ADDED: &[(&str, &str)] = &[
    // v1.10.0: the alpha SnapshotMetadata service (changed block tracking).
    ("v1.10", "csi.v1.SnapshotMetadata"),
    (
        "v1.10",
        "csi.v1.PluginCapability.Service.Type.SNAPSHOT_METADATA_SERVICE",
    ),
    ("v1.10", "csi.v1.BlockMetadata"),
    ("v1.10", "csi.v1.BlockMetadataType"),
    ("v1.10", "csi.v1.GetMetadataAllocatedRequest"),
    ("v1.10", "csi.v1.GetMetadataAllocatedResponse"),
    ("v1.10", "csi.v1.GetMetadataDeltaRequest"),
    ("v1.10", "csi.v1.GetMetadataDeltaResponse"),
    // v1.12.0: the alpha GetSnapshot RPC.
    ("v1.12", "csi.v1.Controller.GetSnapshot"),
    (
        "v1.12",
        "csi.v1.ControllerServiceCapability.RPC.Type.GET_SNAPSHOT",
    ),
    ("v1.12", "csi.v1.GetSnapshotRequest"),
    ("v1.12", "csi.v1.GetSnapshotResponse"),
];

/// Declarations that were alpha in v1.9 and are GA (alpha option dropped) by v1.12.
const PROMOTED: &[(&str, &str)] = &[
    // v1.11.0: volume group snapshots GA.
    ("v1.11", "csi.v1.GroupController"),
    ("v1.11", "csi.v1.GroupController.CreateVolumeGroupSnapshot"),
    ("v1.11", "csi.v1.GroupController.DeleteVolumeGroupSnapshot"),
    ("v1.11", "csi.v1.GroupController.GetVolumeGroupSnapshot"),
    ("v1.11", "csi.v1.GroupControllerGetCapabilitiesRequest"),
    ("v1.11", "csi.v1.GroupControllerGetCapabilitiesResponse"),
    ("v1.11", "csi.v1.GroupControllerServiceCapability"),
    (
        "v1.11",
        "csi.v1.PluginCapability.Service.Type.GROUP_CONTROLLER_SERVICE",
    ),
    (
        "v1.11",
        "csi.v1.GroupControllerServiceCapability.RPC.Type.CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT",
    ),
    ("v1.11", "csi.v1.Snapshot.group_snapshot_id"),
    ("v1.11", "csi.v1.VolumeGroupSnapshot"),
    ("v1.11", "csi.v1.CreateVolumeGroupSnapshotRequest"),
    ("v1.11", "csi.v1.CreateVolumeGroupSnapshotResponse"),
    ("v1.11", "csi.v1.DeleteVolumeGroupSnapshotRequest"),
    ("v1.11", "csi.v1.DeleteVolumeGroupSnapshotResponse"),
    ("v1.11", "csi.v1.GetVolumeGroupSnapshotRequest"),
    ("v1.11", "csi.v1.GetVolumeGroupSnapshotResponse"),
    // v1.12.0: ControllerModifyVolume / mutable parameters GA.
    ("v1.12", "csi.v1.Controller.ControllerModifyVolume"),
    (
        "v1.12",
        "csi.v1.ControllerServiceCapability.RPC.Type.MODIFY_VOLUME",
    ),
    ("v1.12", "csi.v1.ControllerModifyVolumeRequest"),
    ("v1.12", "csi.v1.ControllerModifyVolumeResponse"),
    ("v1.12", "csi.v1.CreateVolumeRequest.mutable_parameters"),
    (
        "v1.12",
        "csi.v1.ValidateVolumeCapabilitiesRequest.mutable_parameters",
    ),
    (
        "v1.12",
        "csi.v1.ValidateVolumeCapabilitiesResponse.Confirmed.mutable_parameters",
    ),
];

// ---- a descriptor mirror that keeps option bytes (prost-types drops the
// ---- csi.v1 custom options, which we want to compare too)

#[derive(Clone, PartialEq, Message)]
struct FileSet {
    #[prost(message, repeated, tag = "1")]
    file: Vec<File>,
}

#[derive(Clone, PartialEq, Message)]
struct File {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    package: String,
    #[prost(message, repeated, tag = "4")]
    message_type: Vec<Msg>,
    #[prost(message, repeated, tag = "5")]
    enum_type: Vec<Enum>,
    #[prost(message, repeated, tag = "6")]
    service: Vec<Service>,
    #[prost(message, repeated, tag = "7")]
    extension: Vec<Field>,
}

#[derive(Clone, PartialEq, Message)]
struct Msg {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, repeated, tag = "2")]
    field: Vec<Field>,
    #[prost(message, repeated, tag = "3")]
    nested_type: Vec<Msg>,
    #[prost(message, repeated, tag = "4")]
    enum_type: Vec<Enum>,
    #[prost(bytes = "vec", tag = "7")]
    options: Vec<u8>,
    #[prost(message, repeated, tag = "8")]
    oneof_decl: Vec<Oneof>,
}

#[derive(Clone, PartialEq, Message)]
struct Oneof {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, Message)]
struct Field {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    extendee: String,
    #[prost(int32, tag = "3")]
    number: i32,
    #[prost(int32, tag = "4")]
    label: i32,
    #[prost(int32, tag = "5")]
    r#type: i32,
    #[prost(string, tag = "6")]
    type_name: String,
    #[prost(bytes = "vec", tag = "8")]
    options: Vec<u8>,
    #[prost(int32, optional, tag = "9")]
    oneof_index: Option<i32>,
    #[prost(bool, tag = "17")]
    proto3_optional: bool,
}

#[derive(Clone, PartialEq, Message)]
struct Enum {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, repeated, tag = "2")]
    value: Vec<EnumValue>,
    #[prost(bytes = "vec", tag = "3")]
    options: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct EnumValue {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(int32, tag = "2")]
    number: i32,
    #[prost(bytes = "vec", tag = "3")]
    options: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct Service {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, repeated, tag = "2")]
    method: Vec<Method>,
    #[prost(bytes = "vec", tag = "3")]
    options: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct Method {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    input_type: String,
    #[prost(string, tag = "3")]
    output_type: String,
    #[prost(bytes = "vec", tag = "4")]
    options: Vec<u8>,
    #[prost(bool, tag = "5")]
    client_streaming: bool,
    #[prost(bool, tag = "6")]
    server_streaming: bool,
}

/// The csi.v1 custom options: 1059 marks secrets, 1060 marks alpha parts
/// (the same number on every options kind). Message options also carry
/// map_entry (tag 7), which tells a map from a repeated message.
#[derive(Clone, PartialEq, Message)]
struct CsiOptions {
    #[prost(bool, tag = "7")]
    map_entry: bool,
    #[prost(bool, tag = "1059")]
    secret: bool,
    #[prost(bool, tag = "1060")]
    alpha: bool,
}

fn opts(bytes: &[u8]) -> String {
    let o = CsiOptions::decode(bytes).expect("options decode");
    format!(
        "secret={} alpha={} map_entry={}",
        o.secret, o.alpha, o.map_entry
    )
}

/// One line of facts per declaration, keyed by "kind full.name".
type Facts = BTreeMap<String, String>;

fn facts_of(set: &FileSet) -> Facts {
    let mut f = Facts::new();
    for file in set.file.iter().filter(|f| f.package == "csi.v1") {
        let pkg = &file.package;
        for e in &file.extension {
            f.insert(
                format!("extension {pkg}.{}", e.name),
                format!(
                    "extends={} number={} type={}",
                    e.extendee, e.number, e.r#type
                ),
            );
        }
        for m in &file.message_type {
            message_facts(&mut f, pkg, m);
        }
        for e in &file.enum_type {
            enum_facts(&mut f, pkg, e);
        }
        for s in &file.service {
            let name = format!("{pkg}.{}", s.name);
            f.insert(format!("service {name}"), opts(&s.options));
            for m in &s.method {
                f.insert(
                    format!("method {name}.{}", m.name),
                    format!(
                        "in={} out={} client_stream={} server_stream={} {}",
                        m.input_type,
                        m.output_type,
                        m.client_streaming,
                        m.server_streaming,
                        opts(&m.options)
                    ),
                );
            }
        }
    }
    f
}

fn message_facts(f: &mut Facts, scope: &str, m: &Msg) {
    let name = format!("{scope}.{}", m.name);
    f.insert(format!("message {name}"), opts(&m.options));
    for fd in &m.field {
        let oneof = fd
            .oneof_index
            .and_then(|i| m.oneof_decl.get(usize::try_from(i).ok()?))
            .map_or("-", |o| o.name.as_str());
        f.insert(
            format!("field {name}.{}", fd.name),
            format!(
                "number={} label={} type={} type_name={} oneof={} proto3_optional={} {}",
                fd.number,
                fd.label,
                fd.r#type,
                fd.type_name,
                oneof,
                fd.proto3_optional,
                opts(&fd.options)
            ),
        );
    }
    for n in &m.nested_type {
        message_facts(f, &name, n);
    }
    for e in &m.enum_type {
        enum_facts(f, &name, e);
    }
}

fn enum_facts(f: &mut Facts, scope: &str, e: &Enum) {
    let name = format!("{scope}.{}", e.name);
    f.insert(format!("enum {name}"), opts(&e.options));
    for v in &e.value {
        f.insert(
            format!("value {name}.{}", v.name),
            format!("number={} {}", v.number, opts(&v.options)),
        );
    }
}

/// The declaration's full name from a facts key ("field csi.v1.X.y" -> "csi.v1.X.y").
fn full_name(key: &str) -> &str {
    key.split_once(' ').map_or(key, |(_, n)| n)
}

fn covered_by(key: &str, list: &[(&str, &str)]) -> bool {
    let n = full_name(key);
    list.iter()
        .any(|(_, d)| n == *d || n.strip_prefix(d).is_some_and(|r| r.starts_with('.')))
}

/// Every difference between the older statement and ours that the lists do
/// not explain (empty = compatible).
fn compare(
    old: &Facts,
    ours: &Facts,
    added: &[(&str, &str)],
    promoted: &[(&str, &str)],
) -> Vec<String> {
    let mut bad = Vec::new();
    for (k, v) in old {
        match ours.get(k) {
            None => bad.push(format!("{k}: missing in ours (v1.9 has {v})")),
            Some(o) if o == v => {
                if promoted.iter().any(|(_, d)| full_name(k) == *d) {
                    bad.push(format!("{k}: listed as promoted but unchanged ({o})"));
                }
            }
            Some(o) => {
                let listed = promoted.iter().any(|(_, d)| full_name(k) == *d);
                let expected = v.replace("alpha=true", "alpha=false");
                if !(listed && v.contains("alpha=true") && *o == expected) {
                    bad.push(format!("{k}: ours {o} / v1.9 {v}"));
                }
            }
        }
    }
    for k in ours.keys().filter(|k| !old.contains_key(*k)) {
        if !covered_by(k, added) {
            bad.push(format!(
                "{k}: in ours, not in v1.9 and not listed as a v1.10-v1.12 addition"
            ));
        }
    }
    for (_, d) in promoted {
        if !old.keys().any(|k| full_name(k) == *d) {
            bad.push(format!("{d}: listed as promoted but not in v1.9"));
        }
    }
    for (_, d) in added {
        if !ours.keys().any(|k| full_name(k) == *d) {
            bad.push(format!("{d}: listed as added but not in ours"));
        }
        if old.keys().any(|k| full_name(k) == *d) {
            bad.push(format!("{d}: listed as added but already in v1.9"));
        }
    }
    bad
}

fn ours() -> FileSet {
    FileSet::decode(rds_proto::FILE_DESCRIPTOR_SET).expect("our descriptor set decodes")
}

/// Fetches (or finds cached) the v1.9 csi.proto through the registry helper.
/// No network means a failing test with the reason, never a silent skip.
fn independent_proto() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/registry_fetch.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg("csi-proto-v1.9")
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "cannot obtain cfgd-csi 0.8.0's csi.proto from crates.io (needed once, then cached; \
         set RDS_CSI_CACHE to a directory holding it for offline runs): {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn compile(proto: &Path) -> FileSet {
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc");
    let include = protoc_bin_vendored::include_path().expect("vendored protoc includes");
    let dir = proto.parent().expect("proto has a directory");
    let out =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("csi-v1.9-{}.pb", std::process::id()));
    let status = Command::new(protoc)
        .arg(format!("-I{}", dir.display()))
        .arg(format!("-I{}", include.display()))
        .arg(format!("--descriptor_set_out={}", out.display()))
        .arg(proto.file_name().expect("file name"))
        .current_dir(dir)
        .status()
        .expect("run protoc");
    assert!(status.success(), "protoc failed on {}", proto.display());
    let bytes = std::fs::read(&out).expect("read descriptor set");
    let _ = std::fs::remove_file(&out);
    FileSet::decode(bytes.as_slice()).expect("descriptor set decodes")
}

#[test]
fn ours_matches_csi_v1_9_field_by_field_plus_listed_changes() {
    let theirs = facts_of(&compile(&independent_proto()));
    let ours = facts_of(&ours());
    // Guard against comparing nothing (e.g. a package name mix-up).
    assert!(
        theirs.len() > 400,
        "v1.9 statement has only {} facts",
        theirs.len()
    );
    assert!(theirs.contains_key("field csi.v1.NodeStageVolumeRequest.staging_target_path"));
    let bad = compare(&theirs, &ours, ADDED, PROMOTED);
    assert!(
        bad.is_empty(),
        "csi.proto differs from CSI v1.9 beyond the listed changes:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_comparison_catches_a_changed_field_number() {
    let set = ours();
    let good = facts_of(&set);
    let mut broken = set.clone();
    let file = broken
        .file
        .iter_mut()
        .find(|f| f.package == "csi.v1")
        .expect("csi.v1 file");
    let msg = file
        .message_type
        .iter_mut()
        .find(|m| m.name == "NodeStageVolumeRequest")
        .expect("NodeStageVolumeRequest");
    let field = msg
        .field
        .iter_mut()
        .find(|f| f.name == "staging_target_path")
        .expect("field");
    field.number += 10;
    let bad = compare(&good, &facts_of(&broken), &[], &[]);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].starts_with("field csi.v1.NodeStageVolumeRequest.staging_target_path"),
        "{bad:?}"
    );
}

#[test]
fn the_comparison_catches_a_dropped_secret_marker_and_an_unlisted_addition() {
    let set = ours();
    let good = facts_of(&set);
    let mut broken = set.clone();
    let file = broken
        .file
        .iter_mut()
        .find(|f| f.package == "csi.v1")
        .expect("csi.v1 file");
    let msg = file
        .message_type
        .iter_mut()
        .find(|m| m.name == "CreateVolumeRequest")
        .expect("msg");
    let secrets = msg
        .field
        .iter_mut()
        .find(|f| f.name == "secrets")
        .expect("secrets");
    secrets.options.clear();
    let mut extra = msg.field[0].clone();
    extra.name = "surprise".into();
    extra.number = 99;
    msg.field.push(extra);
    let bad = compare(&good, &facts_of(&broken), &[], &[]);
    assert!(
        bad.iter()
            .any(|b| b.starts_with("field csi.v1.CreateVolumeRequest.secrets:")),
        "{bad:?}"
    );
    assert!(
        bad.iter()
            .any(|b| b.starts_with("field csi.v1.CreateVolumeRequest.surprise:")),
        "{bad:?}"
    );
}
