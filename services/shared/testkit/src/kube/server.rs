//! The HTTP side: URL paths and verbs as the API server has them, the
//! request log, injected faults, and the handlers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::faults::{Failure, Verb};
use super::resources::ResourceType;
use super::store::{Db, Refusal, WriteMode, merge_patch, refuse};
use super::watch;
use super::{Call, Inner};

/// A parsed resource URL.
pub(crate) struct Target {
    pub api_version: String,
    pub plural: String,
    pub namespace: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

pub(crate) fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (api_version, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("v1".to_owned(), rest),
        ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => ((*ns).to_owned(), rest),
        _ => (String::new(), rest),
    };
    let plural = (*rest.first()?).to_owned();
    if rest.len() > 3 {
        return None;
    }
    Some(Target {
        api_version,
        plural,
        namespace,
        name: rest.get(1).map(|s| (*s).to_owned()),
        subresource: rest.get(2).map(|s| (*s).to_owned()),
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn query(q: Option<&str>) -> BTreeMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(kv), String::new()),
        })
        .collect()
}

pub(crate) fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    })
}

pub(crate) fn status(code: u16, reason: &str, message: &str) -> Response {
    json_response(code, &status_body(code, reason, message))
}

pub(crate) fn json_response(code: u16, v: &Value) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

impl From<Refusal> for Response {
    fn from(r: Refusal) -> Response {
        status(r.code, r.reason, &r.message)
    }
}

/// Metadata-only clients (`as=PartialObjectMetadata` in Accept) get
/// PartialObjectMetadata, like the real server.
pub(crate) fn shape(obj: &Value, meta_only: bool) -> Value {
    if meta_only {
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": obj["metadata"]})
    } else {
        obj.clone()
    }
}

/// A label requirement: key, optional (equal?, value), and whether the key
/// must exist.
type LabelTerm = (String, Option<(bool, String)>, bool);

/// `labelSelector` (k=v, k!=v, k, !k) and `fieldSelector` (metadata.name,
/// metadata.namespace) as far as the project's clients use them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Selector {
    labels: Vec<LabelTerm>,
    fields: Vec<(String, bool, String)>,
}

impl Selector {
    pub fn parse(q: &BTreeMap<String, String>) -> Selector {
        let mut s = Selector::default();
        for term in q
            .get("labelSelector")
            .map(String::as_str)
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            if let Some((k, v)) = term.split_once("!=") {
                s.labels
                    .push((k.trim().into(), Some((false, v.trim().into())), true));
            } else if let Some((k, v)) = term.split_once('=') {
                let k = k.trim_end_matches('=');
                s.labels
                    .push((k.trim().into(), Some((true, v.trim().into())), true));
            } else if let Some(k) = term.strip_prefix('!') {
                s.labels.push((k.into(), None, false));
            } else {
                s.labels.push((term.into(), None, true));
            }
        }
        for term in q
            .get("fieldSelector")
            .map(String::as_str)
            .unwrap_or("")
            .split(',')
            .filter(|t| !t.is_empty())
        {
            if let Some((k, v)) = term.split_once("!=") {
                s.fields.push((k.into(), false, v.into()));
            } else if let Some((k, v)) = term.split_once('=') {
                s.fields
                    .push((k.trim_end_matches('=').into(), true, v.into()));
            }
        }
        s
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        let labels_ok = self.labels.iter().all(|(k, cmp, exists)| {
            let v = labels[k.as_str()].as_str();
            match cmp {
                None => v.is_some() == *exists,
                Some((true, want)) => v == Some(want.as_str()),
                Some((false, want)) => v != Some(want.as_str()),
            }
        });
        let fields_ok = self.fields.iter().all(|(k, eq, want)| {
            let got = obj
                .pointer(&format!("/{}", k.replace('.', "/")))
                .and_then(Value::as_str)
                .unwrap_or("");
            (got == want) == *eq
        });
        labels_ok && fields_ok
    }
}

fn verb_of(method: &Method, t: &Target, q: &BTreeMap<String, String>) -> Option<Verb> {
    Some(match (method, &t.name) {
        (&Method::GET, Some(_)) => Verb::Get,
        (&Method::GET, None) if q.get("watch").is_some_and(|v| v == "true" || v == "1") => {
            Verb::Watch
        }
        (&Method::GET, None) => Verb::List,
        (&Method::POST, None) => Verb::Create,
        (&Method::PUT, Some(_)) => Verb::Update,
        (&Method::PATCH, Some(_)) => Verb::Patch,
        (&Method::DELETE, Some(_)) => Verb::Delete,
        _ => return None,
    })
}

fn bearer(req: &Request) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
}

pub(crate) async fn handle(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let q = query(req.uri().query());
    let client = bearer(&req);
    let meta_only = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("as=PartialObjectMetadata"));
    let method = req.method().clone();
    let uri = req.uri().to_string();
    let body = axum::body::to_bytes(req.into_body(), 16 << 20)
        .await
        .unwrap_or_default();
    let body_json: Option<Value> = serde_json::from_slice(&body).ok();

    if let Some((ns, pod, port, sub)) = super::proxy::parse(&path).filter(|_| method == Method::GET)
    {
        let idx = inner.log(Call {
            client: client.clone().unwrap_or_else(|| "anonymous".to_owned()),
            method: method.to_string(),
            uri,
            verb: Some(Verb::Get),
            resource: Some("pods".to_owned()),
            namespace: Some(ns.clone()),
            name: Some(pod.clone()),
            subresource: Some("proxy".to_owned()),
            body: None,
            status: None,
            at: Instant::now(),
        });
        let resp = if !inner.authorized(client.as_deref()) {
            status(401, "Unauthorized", "Unauthorized")
        } else {
            super::proxy::answer(inner.pod_proxy(&ns, &pod, port, &sub), &pod, port).await
        };
        inner.set_status(idx, resp.status().as_u16());
        return resp;
    }
    let target = parse_path(&path);
    let verb = target.as_ref().and_then(|t| verb_of(&method, t, &q));
    let idx = inner.log(Call {
        client: client.clone().unwrap_or_else(|| "anonymous".to_owned()),
        method: method.to_string(),
        uri,
        verb,
        resource: target.as_ref().map(|t| t.plural.clone()),
        namespace: target
            .as_ref()
            .map(|t| t.namespace.clone())
            .filter(|n| !n.is_empty()),
        name: target.as_ref().and_then(|t| t.name.clone()),
        subresource: target.as_ref().and_then(|t| t.subresource.clone()),
        body: body_json.clone(),
        status: None,
        at: Instant::now(),
    });
    let req = ApiRequest {
        q,
        client,
        meta_only,
        body: body_json,
        raw_body: body,
    };
    let resp = serve(&inner, target, verb, &req).await;
    inner.set_status(idx, resp.status().as_u16());
    resp
}

/// What one API call carries besides its target and verb.
struct ApiRequest {
    q: BTreeMap<String, String>,
    /// The bearer token, if any.
    client: Option<String>,
    /// `Accept: ...;as=PartialObjectMetadata`.
    meta_only: bool,
    /// The body when it is JSON.
    body: Option<Value>,
    raw_body: axum::body::Bytes,
}

impl ApiRequest {
    fn json_body(&self) -> Result<Value, Refusal> {
        self.body
            .clone()
            .ok_or_else(|| refuse(400, "BadRequest", "the body is not JSON"))
    }
}

async fn serve(
    inner: &Arc<Inner>,
    target: Option<Target>,
    verb: Option<Verb>,
    req: &ApiRequest,
) -> Response {
    if !inner.authorized(req.client.as_deref()) {
        return status(401, "Unauthorized", "Unauthorized");
    }
    if inner.failing() {
        return status(503, "ServiceUnavailable", "the fake API server is failing");
    }
    let (Some(t), Some(verb)) = (target, verb) else {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    let fault = inner.take_fault(
        verb,
        &t.plural,
        t.name.as_deref(),
        req.client.as_deref().unwrap_or("anonymous"),
    );
    if let Some(f) = &fault {
        if f.hang {
            std::future::pending::<()>().await;
        }
        if !f.delay.is_zero() {
            tokio::time::sleep(f.delay).await;
        }
        if let Some(Failure {
            code,
            reason,
            message,
        }) = &f.fail
        {
            return status(*code, reason, message);
        }
    }
    let Some(rt) = inner.resource(&t.api_version, &t.plural) else {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    let resp = act(inner, &rt, &t, verb, req);
    if let Some(f) = fault
        && !f.delay_answer.is_zero()
    {
        tokio::time::sleep(f.delay_answer).await;
    }
    resp
}

fn act(
    inner: &Arc<Inner>,
    rt: &ResourceType,
    t: &Target,
    verb: Verb,
    req: &ApiRequest,
) -> Response {
    let ns = t.namespace.as_str();
    let answer = match verb {
        Verb::Watch => {
            return watch::start(
                inner.clone(),
                rt.clone(),
                ns.to_owned(),
                &req.q,
                req.meta_only,
            );
        }
        Verb::List => Ok(list(inner, rt, ns, req)),
        Verb::Get => {
            let name = t.name.as_deref().unwrap_or("");
            match inner.db().objects.get(&Db::key(rt, ns, name)) {
                Some(v) => Ok(json_response(200, &shape(v, req.meta_only))),
                None => Err(not_found(rt, name)),
            }
        }
        Verb::Create => create(inner, rt, ns, req),
        Verb::Update => update(inner, rt, t, req),
        Verb::Patch => patch(inner, rt, t, req),
        Verb::Delete => {
            let name = t.name.clone().unwrap_or_default();
            inner.delete(rt, ns, &name).map(|v| json_response(200, &v))
        }
    };
    answer.unwrap_or_else(Response::from)
}

fn not_found(rt: &ResourceType, name: &str) -> Refusal {
    refuse(404, "NotFound", format!("{} {name:?} not found", rt.plural))
}

/// A subresource `status` write changes only the status.
fn write_mode(t: &Target) -> WriteMode {
    if t.subresource.as_deref() == Some("status") {
        WriteMode::UpdateStatus
    } else {
        WriteMode::Update
    }
}

fn list(inner: &Arc<Inner>, rt: &ResourceType, ns: &str, req: &ApiRequest) -> Response {
    let sel = Selector::parse(&req.q);
    let db = inner.db();
    let meta_only = req.meta_only;
    let items: Vec<Value> = db
        .list(rt, ns)
        .into_iter()
        .filter(|o| sel.matches(o))
        .map(|mut o| {
            if meta_only {
                shape(&o, true)
            } else {
                // List items carry no apiVersion/kind, as from the real server.
                if let Some(m) = o.as_object_mut() {
                    m.remove("apiVersion");
                    m.remove("kind");
                }
                o
            }
        })
        .collect();
    let (kind, av) = if meta_only {
        (
            "PartialObjectMetadataList".to_owned(),
            "meta.k8s.io/v1".to_owned(),
        )
    } else {
        (format!("{}List", rt.kind), rt.api_version.clone())
    };
    json_response(
        200,
        &json!({"kind": kind, "apiVersion": av,
                "metadata": {"resourceVersion": db.rv.to_string()}, "items": items}),
    )
}

fn create(
    inner: &Arc<Inner>,
    rt: &ResourceType,
    ns: &str,
    req: &ApiRequest,
) -> Result<Response, Refusal> {
    let obj = req.json_body()?;
    inner.admit(rt, ns, &obj)?;
    let v = inner.write(rt, ns, obj, WriteMode::Create)?;
    Ok(json_response(201, &v))
}

fn update(
    inner: &Arc<Inner>,
    rt: &ResourceType,
    t: &Target,
    req: &ApiRequest,
) -> Result<Response, Refusal> {
    let mut obj = req.json_body()?;
    let name = t.name.clone().unwrap_or_default();
    let body_name = obj["metadata"]["name"].as_str().unwrap_or("");
    if !body_name.is_empty() && body_name != name {
        return Err(refuse(
            400,
            "BadRequest",
            "the name of the object does not match the name on the URL",
        ));
    }
    obj["metadata"]["name"] = json!(name);
    let v = inner.write(rt, &t.namespace, obj, write_mode(t))?;
    Ok(json_response(200, &v))
}

fn patch(
    inner: &Arc<Inner>,
    rt: &ResourceType,
    t: &Target,
    req: &ApiRequest,
) -> Result<Response, Refusal> {
    let Ok(patch) = serde_json::from_slice::<Value>(&req.raw_body) else {
        return Err(refuse(400, "BadRequest", "the patch is not JSON"));
    };
    let name = t.name.clone().unwrap_or_default();
    let ns = t.namespace.as_str();
    let current = inner.db().objects.get(&Db::key(rt, ns, &name)).cloned();
    let Some(mut obj) = current else {
        return Err(not_found(rt, &name));
    };
    // Merge and strategic-merge patches are both applied as RFC 7386
    // merges: enough for the top-level fields our clients patch.
    let rv = patch["metadata"]["resourceVersion"].clone();
    merge_patch(&mut obj, &patch);
    if rv.is_null()
        && let Some(m) = obj["metadata"].as_object_mut()
    {
        m.remove("resourceVersion");
    }
    let v = inner.write(rt, ns, obj, write_mode(t))?;
    Ok(json_response(200, &v))
}

pub(crate) fn body_of_lines(rx: tokio::sync::mpsc::Receiver<Vec<u8>>) -> Body {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| {
            (
                Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(b)),
                rx,
            )
        })
    });
    Body::from_stream(stream)
}
