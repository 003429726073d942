//! The fake API server against kube's own client and watcher: list + watch
//! with resourceVersions, 409 on a stale update, 410 forcing a re-list,
//! bookmarks, injected delays and failures per verb and client, and the
//! HTTPS mode (CA file + token; kube's in-cluster code path).

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::CSINode;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::watcher::{self, Event};
use rds_testkit::kube::{incluster, objects};
use rds_testkit::{FakeApi, Fault, Verb, eventually};

fn lease(name: &str, holder: &str) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("rds-csi".to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        }),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn update_with_a_stale_resource_version_is_a_conflict() {
    let api = FakeApi::start().await;
    let leases: Api<Lease> = Api::namespaced(api.client(), "rds-csi");
    let created = leases
        .create(&PostParams::default(), &lease("l", "a"))
        .await
        .unwrap();
    let rv1 = created.metadata.resource_version.clone().unwrap();
    assert!(created.metadata.uid.is_some());
    let again = leases
        .create(&PostParams::default(), &lease("l", "a"))
        .await
        .unwrap_err();
    assert!(
        matches!(&again, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists"),
        "{again:?}"
    );

    let mut next = created.clone();
    next.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let updated = leases
        .replace("l", &PostParams::default(), &next)
        .await
        .unwrap();
    assert_ne!(
        updated.metadata.resource_version.as_deref(),
        Some(rv1.as_str())
    );
    // The same stale object again: 409 Conflict, nothing changed.
    let stale = leases
        .replace("l", &PostParams::default(), &next)
        .await
        .unwrap_err();
    assert!(
        matches!(&stale, kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict"),
        "{stale:?}"
    );
    let stored: Lease = api.get(Some("rds-csi"), "l").unwrap();
    assert_eq!(stored.spec.unwrap().holder_identity.as_deref(), Some("b"));
    assert_eq!(
        stored.metadata.resource_version,
        updated.metadata.resource_version
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_follows_changes_re_lists_on_410_and_gets_bookmarks() {
    let api = FakeApi::start().await;
    api.set_bookmark_interval(None);
    api.put_value::<Node>(objects::node("n1"));
    let nodes: Api<Node> = Api::all(api.client());
    let mut stream = std::pin::pin!(watcher::watcher(nodes, watcher::Config::default()));
    let mut inits = 0;
    let mut seen = Vec::new();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("watch event within 5 s")
            .expect("stream open")
    };
    // Initial list.
    loop {
        match next().await.unwrap() {
            Event::Init => inits += 1,
            Event::InitApply(n) => seen.push(n.metadata.name.unwrap()),
            Event::InitDone => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((inits, seen.as_slice()), (1, ["n1".to_owned()].as_slice()));
    // A change arrives on the watch, from the list's resourceVersion.
    api.put_value::<Node>(objects::node("n2"));
    match next().await.unwrap() {
        Event::Apply(n) => assert_eq!(n.metadata.name.as_deref(), Some("n2")),
        other => panic!("{other:?}"),
    }
    api.delete::<Node>(None, "n1");
    assert!(
        matches!(next().await.unwrap(), Event::Delete(n) if n.metadata.name.as_deref() == Some("n1"))
    );

    // 410: the watcher reports the error, then lists again.
    api.expire_watches();
    let err = next().await.unwrap_err();
    assert!(
        err.to_string().contains("410") || format!("{err:?}").contains("410"),
        "{err:?}"
    );
    let mut relisted = Vec::new();
    loop {
        match next().await {
            Ok(Event::Init) => {}
            Ok(Event::InitApply(n)) => relisted.push(n.metadata.name.unwrap()),
            Ok(Event::InitDone) => break,
            Ok(other) => panic!("{other:?}"),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(relisted, ["n2"]);
    let lists = api.calls_to(Verb::List, "nodes");
    assert_eq!(lists.len(), 2, "one list, one re-list");

    // Bookmarks move the watch's resourceVersion on; nothing is emitted.
    api.send_bookmarks();
    api.put_value::<Node>(objects::node("n3"));
    assert!(
        matches!(next().await.unwrap(), Event::Apply(n) if n.metadata.name.as_deref() == Some("n3"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_hit_one_verb_and_one_client_only() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start().await;
    api.put_value::<CSINode>(objects::csinode("w1", &[(objects::DRIVER, "w1")]));
    let slow = api.client_as(Some("replica-a"));
    let fast = api.client_as(Some("replica-b"));
    assert!(api.kubeconfig_for(dir.path(), "replica-a").exists());
    api.inject(
        Fault::on(Verb::Get)
            .resource("csinodes")
            .client("replica-a")
            .delay(Duration::from_millis(700)),
    );
    api.inject(
        Fault::on(Verb::List)
            .resource("csinodes")
            .fail(500, "InternalError", "etcd down")
            .times(1),
    );

    let t = Instant::now();
    let b: Api<CSINode> = Api::all(fast);
    b.get("w1").await.unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let a: Api<CSINode> = Api::all(slow);
    a.get("w1").await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );

    let e = b.list(&ListParams::default()).await.unwrap_err();
    assert!(matches!(&e, kube::Error::Api(s) if s.code == 500), "{e:?}");
    assert_eq!(
        b.list(&ListParams::default()).await.unwrap().items.len(),
        1,
        "times(1) used up"
    );

    let gets = api.calls_to(Verb::Get, "csinodes");
    let clients: Vec<&str> = gets.iter().map(|c| c.client.as_str()).collect();
    assert_eq!(clients, ["replica-b", "replica-a"]);
    assert!(gets.iter().all(|c| c.status == Some(200)));
}

#[tokio::test(flavor = "multi_thread")]
async fn https_needs_the_ca_and_a_known_token() {
    let api = FakeApi::start_tls().await;
    api.put_value::<Node>(objects::node("n1"));
    let pod = api.pod_files().unwrap();
    for f in ["ca.crt", "token", "namespace"] {
        assert!(pod.sa_dir.join(f).is_file(), "{f}");
    }
    assert!(
        pod.sa_dir
            .ends_with("var/run/secrets/kubernetes.io/serviceaccount")
    );
    let nodes: Api<Node> = Api::all(api.client());
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // The helper's in-cluster config (same files kube would read).
    let cfg = incluster::config(&api);
    assert_eq!(cfg.default_namespace, "rds-csi");
    let nodes: Api<Node> = Api::all(kube::Client::try_from(cfg).unwrap());
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // No token: 401.
    let anon: Api<Node> = Api::all(api.client_as(None));
    let e = anon.list(&ListParams::default()).await.unwrap_err();
    assert!(matches!(&e, kube::Error::Api(s) if s.code == 401), "{e:?}");
    // Not trusting the CA: the TLS handshake fails.
    let mut cfg = kube::Config::new(api.url().parse().unwrap());
    cfg.auth_info.token_file = Some(pod.sa_dir.join("token").display().to_string());
    let untrusting: Api<Node> = Api::all(kube::Client::try_from(cfg).unwrap());
    assert!(untrusting.list(&ListParams::default()).await.is_err());
}

/// kube's own in-cluster code path (`Config::incluster_env`: the service
/// environment and the fixed /var/run/secrets/... files), run in a child
/// process with a private mount namespace.
#[tokio::test(flavor = "multi_thread")]
async fn kube_incluster_config_reaches_the_https_fake() {
    let api = FakeApi::start_tls().await;
    api.put_value::<Node>(objects::node("from-the-pod"));
    let out = incluster::run_test_in_pod(&api, "pod_child_lists_nodes_in_cluster")
        .await
        .expect("run the pod child");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("POD-CHILD listed [\"from-the-pod\"] in rds-csi"),
        "{text}"
    );
    let token = api.pod_files().unwrap().token.clone();
    let seen = eventually(Duration::from_secs(1), || {
        let found = api
            .calls_to(Verb::List, "nodes")
            .into_iter()
            .find(|c| c.client == token);
        async move { found }
    })
    .await;
    assert!(seen.is_some(), "the pod's token reached the server");
}

/// Child half of the test above: does nothing unless started as the pod.
#[tokio::test(flavor = "multi_thread")]
async fn pod_child_lists_nodes_in_cluster() {
    if !incluster::enter_pod() {
        return;
    }
    let cfg = kube::Config::incluster_env().expect("kube in-cluster config");
    let ns = cfg.default_namespace.clone();
    let nodes: Api<Node> = Api::all(kube::Client::try_from(cfg).unwrap());
    let names: Vec<String> = nodes
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    println!("POD-CHILD listed {names:?} in {ns}");
}
