//! Rendering an overlay with `kubectl kustomize` and reading what kubelet
//! would read from it: pod templates, ConfigMaps, Secrets, env and args.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use serde_json::Value;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `kubectl kustomize deploy/<overlay>`, every document as JSON; an
/// `overlay` ending in .yaml is an already rendered stream (the Helm chart's).
pub fn render(overlay: &str) -> Vec<Value> {
    if overlay.ends_with(".yaml") {
        let text = std::fs::read_to_string(overlay).unwrap_or_else(|e| panic!("{overlay}: {e}"));
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("rendered YAML");
        return docs.into_iter().filter(|d| !d.is_null()).collect();
    }
    let dir = repo_root().join("deploy").join(overlay);
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run kubectl (with built-in kustomize) for {}: {e}\n\
                 install: apt-get install kubectl (or the kubectl release binary)",
                dir.display()
            )
        });
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("kustomize output is UTF-8");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("kustomize output is YAML");
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

pub fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

pub fn str_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// A Secret's keys and bytes (`data` base64, `stringData` plain).
pub fn secret_data(secret: &Value) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (k, v) in str_map(&secret["data"]) {
        let compact: String = v.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .expect("Secret data is base64");
        out.insert(k, bytes);
    }
    for (k, v) in str_map(&secret["stringData"]) {
        out.insert(k, v.into_bytes());
    }
    out
}

/// What kubelet knows about the pod when it resolves `fieldRef`s.
pub struct PodMeta {
    pub name: String,
    pub namespace: String,
    pub node_name: String,
    pub service_account: String,
}

impl PodMeta {
    fn field(&self, path: &str) -> String {
        match path {
            "metadata.name" => self.name.clone(),
            "metadata.namespace" => self.namespace.clone(),
            "spec.nodeName" => self.node_name.clone(),
            "spec.serviceAccountName" => self.service_account.clone(),
            "status.podIP" | "status.hostIP" => "127.0.0.1".into(),
            other => panic!("fieldRef {other} is not one the test resolves: add it"),
        }
    }
}

/// `$(VAR)` expansion as kubelet does it (unknown references stay as they
/// are; `$$` escapes).
pub fn expand(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("$$") {
            out.push('$');
            rest = t;
        } else if let Some(t) = tail.strip_prefix("$(")
            && let Some(end) = t.find(')')
            && let Some((_, v)) = env.iter().rev().find(|(k, _)| k == &t[..end])
        {
            out.push_str(v);
            rest = &t[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// The container's env, resolved in order (later entries may refer to
/// earlier ones), after `base` (what the runtime and kubelet add).
pub fn resolve_env(
    container: &Value,
    objs: &[Value],
    meta: &PodMeta,
    base: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = base.to_vec();
    for e in container["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().expect("env name").to_owned();
        let value = if let Some(v) = e["value"].as_str() {
            expand(v, &env)
        } else if let Some(r) = e["valueFrom"]["configMapKeyRef"].as_object() {
            let cm_name = r["name"].as_str().expect("configMapKeyRef.name");
            let cm = find(objs, "ConfigMap", cm_name)
                .unwrap_or_else(|| panic!("env {name}: ConfigMap {cm_name} is not rendered"));
            let key = r["key"].as_str().expect("configMapKeyRef.key");
            str_map(&cm["data"])
                .get(key)
                .cloned()
                .unwrap_or_else(|| panic!("env {name}: ConfigMap {cm_name} has no key {key}"))
        } else if let Some(p) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            meta.field(p)
        } else if let Some(r) = e["valueFrom"]["secretKeyRef"].as_object() {
            let s_name = r["name"].as_str().expect("secretKeyRef.name");
            let s = find(objs, "Secret", s_name)
                .unwrap_or_else(|| panic!("env {name}: Secret {s_name} missing"));
            let key = r["key"].as_str().expect("secretKeyRef.key");
            String::from_utf8(secret_data(s)[key].clone()).expect("secret env is UTF-8")
        } else {
            panic!("env {name}: a source the test does not resolve: {e}");
        };
        env.push((name, value));
    }
    env
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|s| s.as_str().expect("a string").to_owned())
        .collect()
}
