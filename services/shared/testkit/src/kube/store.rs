//! The object store behind the fake: one resourceVersion counter for
//! everything (as etcd's revision), a change history that watches replay
//! from, and the API server's write rules (409 on a stale resourceVersion,
//! AlreadyExists, finalizers keep a deleted object until they are gone).

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::resources::ResourceType;

/// How many changes a watch can resume from; older ones answer 410.
const HISTORY: usize = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    pub api_version: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub rv: u64,
    pub api_version: String,
    pub plural: String,
    pub namespace: String,
    /// ADDED, MODIFIED or DELETED.
    pub kind: &'static str,
    pub object: Value,
}

/// A refusal the HTTP layer turns into a Status answer.
#[derive(Clone, Debug)]
pub struct Refusal {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

pub(crate) fn refuse(code: u16, reason: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        reason,
        message: message.into(),
    }
}

pub(crate) struct Db {
    pub rv: u64,
    pub objects: BTreeMap<Key, Value>,
    pub history: VecDeque<Change>,
    /// Watches from a resourceVersion below this answer 410 Gone.
    pub compacted: u64,
    uid: u64,
}

/// How a write treats an existing object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteMode {
    /// POST: refuses an existing name (409 AlreadyExists).
    Create,
    /// PUT: the object must exist; a resourceVersion in the body must match
    /// (409 Conflict).
    Update,
    /// PUT .../status: like Update, but only `status` changes.
    UpdateStatus,
    /// A test seeding or changing objects as another controller would:
    /// create or replace, no resourceVersion check.
    Upsert,
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

impl Db {
    pub fn new() -> Db {
        Db {
            rv: 0,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            compacted: 0,
            uid: 0,
        }
    }

    fn record(
        &mut self,
        tx: &broadcast::Sender<Change>,
        rt: &ResourceType,
        namespace: &str,
        kind: &'static str,
        object: &Value,
    ) {
        let change = Change {
            rv: self.rv,
            api_version: rt.api_version.clone(),
            plural: rt.plural.clone(),
            namespace: namespace.to_owned(),
            kind,
            object: object.clone(),
        };
        self.history.push_back(change.clone());
        while self.history.len() > HISTORY {
            if let Some(old) = self.history.pop_front() {
                self.compacted = self.compacted.max(old.rv + 1);
            }
        }
        let _ = tx.send(change);
    }

    pub fn key(rt: &ResourceType, namespace: &str, name: &str) -> Key {
        Key {
            api_version: rt.api_version.clone(),
            plural: rt.plural.clone(),
            namespace: if rt.namespaced {
                namespace.to_owned()
            } else {
                String::new()
            },
            name: name.to_owned(),
        }
    }

    /// Creates or changes an object as the API server would.
    pub fn write(
        &mut self,
        tx: &broadcast::Sender<Change>,
        rt: &ResourceType,
        namespace: &str,
        mut obj: Value,
        mode: WriteMode,
    ) -> Result<Value, Refusal> {
        let namespace = if rt.namespaced { namespace } else { "" };
        check_shape(rt, namespace, &mut obj)?;
        let mut name = obj["metadata"]["name"].as_str().unwrap_or("").to_owned();
        if name.is_empty()
            && mode == WriteMode::Create
            && let Some(prefix) = obj["metadata"]["generateName"].as_str()
        {
            name = format!("{prefix}{:05x}", self.rv + 1);
        }
        if name.is_empty() {
            return Err(refuse(422, "Invalid", "metadata.name: Required value"));
        }
        let key = Db::key(rt, namespace, &name);
        let old = self.objects.get(&key).cloned();
        check_mode(rt, &name, mode, old.as_ref(), &obj)?;
        match &old {
            Some(old) => obj = carried_over(old, obj, mode, rt),
            None => {
                self.uid += 1;
                obj["metadata"]["uid"] =
                    json!(format!("00000000-0000-4000-8000-{:012x}", self.uid));
                if obj["metadata"]["creationTimestamp"].is_null() {
                    obj["metadata"]["creationTimestamp"] = json!(now_rfc3339());
                }
            }
        }
        obj["metadata"]["name"] = json!(name);
        if rt.namespaced {
            obj["metadata"]["namespace"] = json!(namespace);
        }
        // A deleting object whose last finalizer was removed goes away.
        let deleting = mode != WriteMode::Upsert && !obj["metadata"]["deletionTimestamp"].is_null();
        let finalizers = obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        if deleting && !finalizers {
            self.objects.remove(&key);
            self.record(tx, rt, namespace, "DELETED", &obj);
            return Ok(obj);
        }
        self.objects.insert(key, obj.clone());
        let kind = if old.is_some() { "MODIFIED" } else { "ADDED" };
        self.record(tx, rt, namespace, kind, &obj);
        Ok(obj)
    }

    /// Deletes (or, with finalizers, marks deleting) an object.
    pub fn delete(
        &mut self,
        tx: &broadcast::Sender<Change>,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<Value, Refusal> {
        let key = Db::key(rt, namespace, name);
        let Some(mut obj) = self.objects.get(&key).cloned() else {
            return Err(refuse(
                404,
                "NotFound",
                format!("{} {name:?} not found", rt.plural),
            ));
        };
        let has_finalizers = obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        if has_finalizers {
            if obj["metadata"]["deletionTimestamp"].is_null() {
                obj["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            }
            self.objects.insert(key.clone(), obj.clone());
            self.record(tx, rt, &key.namespace, "MODIFIED", &obj);
        } else {
            self.objects.remove(&key);
            self.record(tx, rt, &key.namespace, "DELETED", &obj);
        }
        Ok(obj)
    }

    /// The objects of one type (in one namespace, or all when empty).
    pub fn list(&self, rt: &ResourceType, namespace: &str) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|(k, _)| {
                k.api_version == rt.api_version
                    && k.plural == rt.plural
                    && (namespace.is_empty() || k.namespace == namespace)
            })
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Changes after `rv` (for a resuming watch); Err when compacted away.
    pub fn since(&self, rv: u64) -> Result<Vec<Change>, ()> {
        if rv + 1 < self.compacted {
            return Err(());
        }
        Ok(self.history.iter().filter(|c| c.rv > rv).cloned().collect())
    }

    /// Forgets the history: watches resuming from before now get 410.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv + 1;
    }
}

/// RFC 7386 JSON merge patch.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Some(t) = target.as_object_mut() {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// The body is a JSON object of this resource: namespace, apiVersion and
/// kind agree with the request (the latter two are filled in when absent).
fn check_shape(rt: &ResourceType, namespace: &str, obj: &mut Value) -> Result<(), Refusal> {
    if !obj.is_object() {
        return Err(refuse(400, "BadRequest", "the body is not a JSON object"));
    }
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    if rt.namespaced && namespace.is_empty() {
        return Err(refuse(
            400,
            "BadRequest",
            format!("{} is namespaced: a namespace is required", rt.plural),
        ));
    }
    let body_ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
    if rt.namespaced && !body_ns.is_empty() && body_ns != namespace {
        return Err(refuse(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    for (field, want) in [("apiVersion", &rt.api_version), ("kind", &rt.kind)] {
        match obj[field].as_str() {
            None => obj[field] = json!(want),
            Some(got) if got == want => {}
            Some(got) => {
                return Err(refuse(
                    400,
                    "BadRequest",
                    format!("{field} {got:?} does not match {want:?} of {}", rt.plural),
                ));
            }
        }
    }
    Ok(())
}

/// Create needs the object absent; update needs it present and, when the
/// body names a resourceVersion, that version.
fn check_mode(
    rt: &ResourceType,
    name: &str,
    mode: WriteMode,
    old: Option<&Value>,
    obj: &Value,
) -> Result<(), Refusal> {
    match (mode, old) {
        (WriteMode::Create, Some(_)) => {
            return Err(refuse(
                409,
                "AlreadyExists",
                format!("{} {name:?} already exists", rt.plural),
            ));
        }
        (WriteMode::Update | WriteMode::UpdateStatus, None) => {
            return Err(refuse(
                404,
                "NotFound",
                format!("{} {name:?} not found", rt.plural),
            ));
        }
        (WriteMode::Update | WriteMode::UpdateStatus, Some(old)) => {
            let want = obj["metadata"]["resourceVersion"].as_str().unwrap_or("");
            if !want.is_empty() && old["metadata"]["resourceVersion"] != json!(want) {
                return Err(refuse(
                    409,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again",
                        rt.plural
                    ),
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// A write over an existing object: a status write changes only the status,
/// a main write keeps the status of a resource with a status subresource, and
/// the fields the server owns survive.
fn carried_over(old: &Value, mut obj: Value, mode: WriteMode, rt: &ResourceType) -> Value {
    if mode == WriteMode::UpdateStatus {
        let status = obj["status"].clone();
        obj = old.clone();
        obj["status"] = status;
    } else if mode == WriteMode::Update && rt.status_subresource {
        obj["status"] = old["status"].clone();
    }
    // Fields the server owns survive every write (a test seeding with
    // Upsert may mark an object deleting, as the server would have).
    for field in ["uid", "creationTimestamp", "deletionTimestamp"] {
        if mode == WriteMode::Upsert
            && field == "deletionTimestamp"
            && !obj["metadata"][field].is_null()
        {
            continue;
        }
        let v = old["metadata"][field].clone();
        if v.is_null() {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove(field);
            }
        } else {
            obj["metadata"][field] = v;
        }
    }
    obj
}
