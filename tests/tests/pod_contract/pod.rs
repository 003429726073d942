//! Starting a rendered pod's containers of ours as kubelet and the runtime
//! would (see src/bin/pod-sandbox.rs for what one container gets).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::manifest::{self, PodMeta};

/// What the test stands for outside the pod.
pub struct Cluster<'a> {
    pub objs: &'a [Value],
    /// The overlay: `prod` images are the release Dockerfile's, `dev` the
    /// dev.Dockerfile's (their binary paths and users differ).
    pub dev_images: bool,
    /// The test's "host": hostPath H is `host_root/H`.
    pub host_root: PathBuf,
    /// Where our binaries are (`<target>/<profile>`).
    pub bin_dir: PathBuf,
    pub node_name: String,
    /// Secrets the user creates before installing (not in the overlay).
    pub extra_secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// The in-cluster API as the pod reaches it.
    pub api: Option<ApiFiles>,
    /// `/etc/hosts` lines (cluster names → addresses) and the addresses
    /// that must exist in a pod network namespace for them.
    pub hosts: Vec<(String, String)>,
}

/// The service-account files and the address a pod reaches the API at.
pub struct ApiFiles {
    pub token: String,
    pub ca_pem: String,
    pub host: String,
    pub port: u16,
}

pub struct RunningContainer {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

pub struct Pod {
    pub name: String,
    /// Keeps the pod's network namespace (None: hostNetwork).
    holder: Option<Child>,
    pub containers: Vec<RunningContainer>,
    /// The pod's directory (emptyDir volumes live in `empty/<name>`).
    pub dir: PathBuf,
}

impl Drop for Pod {
    fn drop(&mut self) {
        for c in &mut self.containers {
            let _ = c.child.kill();
            let _ = c.child.wait();
        }
        if let Some(h) = &mut self.holder {
            let _ = h.kill();
            let _ = h.wait();
        }
    }
}

impl Pod {
    /// `/proc/<holder>/ns/net`, for clients that must connect from inside.
    pub fn netns(&self) -> Option<PathBuf> {
        self.holder
            .as_ref()
            .map(|h| PathBuf::from(format!("/proc/{}/ns/net", h.id())))
    }

    /// Every container's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for c in &self.containers {
            let text = std::fs::read_to_string(&c.log).unwrap_or_default();
            let tail: String = text
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            s.push_str(&format!("--- {}/{} ---\n{tail}\n", self.name, c.name));
        }
        s
    }

    /// Fails (with the logs) if any container has exited.
    pub fn assert_all_running(&mut self, after: &str) {
        let mut dead = Vec::new();
        for c in &mut self.containers {
            if let Ok(Some(st)) = c.child.try_wait() {
                dead.push(format!("{} exited ({st})", c.name));
            }
        }
        assert!(
            dead.is_empty(),
            "{}: after {after}: {}\n{}",
            self.name,
            dead.join(", "),
            self.logs()
        );
    }
}

/// Our image → (file in the image, entrypoint, the image's USER uid:gid).
fn image_of(dev: bool, image: &str) -> Option<(String, String, String, (u32, u32))> {
    let repo = image.split([':', '@']).next().unwrap_or(image);
    let bin = repo.strip_prefix("rds-csi/")?.to_owned();
    Some(if dev {
        // deploy/docker/dev.Dockerfile + the Tiltfile's entrypoint.
        (
            bin.clone(),
            format!("/usr/local/lib/rds-csi/{bin}"),
            format!("/opt/rds-csi/{bin}"),
            (65532, 65532),
        )
    } else {
        // deploy/docker/Dockerfile: runtime (USER 65532) or runtime-node (root).
        let user = if bin == "csi-frontend" {
            (0, 0)
        } else {
            (65532, 65532)
        };
        (
            bin.clone(),
            format!("/usr/local/bin/{bin}"),
            format!("/usr/local/bin/{bin}"),
            user,
        )
    })
}

pub fn is_ours(c: &Value) -> bool {
    c["image"]
        .as_str()
        .is_some_and(|i| i.starts_with("rds-csi/"))
}

/// containerd's default capabilities (what "not dropped" means).
const DEFAULT_CAPS: &[&str] = &[
    "chown",
    "dac_override",
    "fsetid",
    "fowner",
    "mknod",
    "net_raw",
    "setgid",
    "setuid",
    "setfcap",
    "setpcap",
    "net_bind_service",
    "sys_chroot",
    "kill",
    "audit_write",
];

fn sandbox() -> &'static str {
    env!("CARGO_BIN_EXE_pod-sandbox")
}

fn write_file(p: &Path, data: &[u8], mode: u32, gid: Option<u32>) {
    std::fs::write(p, data).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    if let Some(g) = gid {
        std::os::unix::fs::chown(p, Some(0), Some(g)).unwrap();
    }
}

fn mkdir(p: &Path, mode: u32) {
    std::fs::create_dir_all(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Starts the pod of `workload`: its network namespace, its volumes, its
/// init containers of ours (each to completion), then its containers of ours.
/// `in_netns` runs once the pod's network exists, before any container.
pub fn start(
    cluster: &Cluster,
    workload: &Value,
    dir: &Path,
    in_netns: impl FnOnce(Option<&Path>),
) -> Pod {
    let spec = &workload["spec"]["template"]["spec"];
    let meta = pod_meta(cluster, workload, spec);
    let name = meta.name.clone();
    let host_network = spec["hostNetwork"].as_bool().unwrap_or(false);
    let host_pid = spec["hostPID"].as_bool().unwrap_or(false);
    let pod_dir = dir.join(&name);
    mkdir(&pod_dir, 0o755);

    let holder = (!host_network).then(|| start_netns_holder(cluster));
    let hosts_file = write_hosts_file(cluster, &pod_dir, &name);

    let psc = &spec["securityContext"];
    let fs_group = psc["fsGroup"].as_u64().map(|g| g as u32);
    let volumes = prepare_volumes(cluster, spec, &pod_dir, fs_group, &meta);

    let mut pod = Pod {
        name: name.clone(),
        holder,
        containers: Vec::new(),
        dir: pod_dir.clone(),
    };
    let netns = pod.netns();
    in_netns(netns.as_deref());
    let ctx = StartCtx {
        cluster,
        meta: &meta,
        psc,
        fs_group,
        host_pid,
        volumes: &volumes,
        netns: netns.as_deref(),
        hosts_file: &hosts_file,
        pod_dir: &pod_dir,
    };
    for c in ours(&spec["initContainers"]) {
        run_init_container(&ctx, c);
    }
    for c in ours(&spec["containers"]) {
        let rc = start_container(&ctx, c);
        pod.containers.push(rc);
    }
    pod
}

/// The containers of ours in a pod spec's container list.
fn ours(list: &Value) -> impl Iterator<Item = &Value> {
    list.as_array().into_iter().flatten().filter(|c| is_ours(c))
}

/// The pod's name (the workload's, suffixed), namespace, node and service account.
fn pod_meta(cluster: &Cluster, workload: &Value, spec: &Value) -> PodMeta {
    let name = format!(
        "{}-{}",
        workload["metadata"]["name"].as_str().expect("name"),
        "pc0"
    );
    let namespace = workload["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_owned();
    PodMeta {
        name,
        namespace,
        node_name: cluster.node_name.clone(),
        service_account: spec["serviceAccountName"]
            .as_str()
            .unwrap_or("default")
            .to_owned(),
    }
}

/// The network namespace: a holder process, loopback up, plus the
/// addresses cluster names resolve to.
fn start_netns_holder(cluster: &Cluster) -> Child {
    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "--"]).arg(sandbox()).arg("hold");
    for (addr, _) in &cluster.hosts {
        cmd.arg(addr);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("unshare --net (util-linux)");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("holder output");
    assert_eq!(line.trim(), "ready", "network namespace holder failed");
    child
}

/// The pod's /etc/hosts: itself, localhost and the cluster names.
fn write_hosts_file(cluster: &Cluster, pod_dir: &Path, name: &str) -> PathBuf {
    let hosts_file = pod_dir.join("etc-hosts");
    let mut hosts = String::from("127.0.0.1 localhost\n");
    hosts.push_str(&format!("127.0.0.1 {name}\n"));
    for (addr, host) in &cluster.hosts {
        hosts.push_str(&format!("{addr} {host}\n"));
    }
    write_file(&hosts_file, hosts.as_bytes(), 0o644, None);
    hosts_file
}

/// Runs one init container to completion; it must succeed within 30 s.
fn run_init_container(ctx: &StartCtx, c: &Value) {
    let mut rc = start_container(ctx, c);
    let until = Instant::now() + Duration::from_secs(30);
    let st = loop {
        if let Some(st) = rc.child.try_wait().expect("wait") {
            break st;
        }
        assert!(Instant::now() < until, "init container {} hangs", rc.name);
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        st.success(),
        "init container {} failed ({st}):\n{}",
        rc.name,
        std::fs::read_to_string(&rc.log).unwrap_or_default()
    );
}

struct StartCtx<'a> {
    cluster: &'a Cluster<'a>,
    meta: &'a PodMeta,
    psc: &'a Value,
    fs_group: Option<u32>,
    host_pid: bool,
    volumes: &'a BTreeMap<String, PathBuf>,
    netns: Option<&'a Path>,
    hosts_file: &'a Path,
    pod_dir: &'a Path,
}

/// Volume name → the host directory that backs it.
fn prepare_volumes(
    cluster: &Cluster,
    spec: &Value,
    pod_dir: &Path,
    fs_group: Option<u32>,
    meta: &PodMeta,
) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for v in spec["volumes"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().expect("volume name").to_owned();
        let path = if let Some(hp) = v["hostPath"].as_object() {
            host_path_volume(cluster, hp)
        } else if v.get("emptyDir").is_some() {
            let d = pod_dir.join("empty").join(&name);
            mkdir(&d, 0o777);
            d
        } else if let Some(s) = v["secret"].as_object() {
            let d = pod_dir.join("secret").join(&name);
            secret_volume(cluster, s, &d, fs_group);
            d
        } else if let Some(p) = v["projected"].as_object() {
            let d = pod_dir.join("projected").join(&name);
            projected_volume(cluster, p, &d, fs_group, meta);
            d
        } else if let Some(cm) = v["configMap"].as_object() {
            let d = pod_dir.join("configmap").join(&name);
            config_map_volume(cluster, cm, &d, fs_group);
            d
        } else {
            panic!("volume {name}: a kind the test does not build: {v}");
        };
        out.insert(name, path);
    }
    out
}

type JsonObject = serde_json::Map<String, Value>;

/// A volume source's `defaultMode` (0644 when unset).
fn default_mode(source: &JsonObject) -> u32 {
    source
        .get("defaultMode")
        .and_then(Value::as_u64)
        .unwrap_or(0o644) as u32
}

/// /dev and /sys are the host's own; other paths live under the test's
/// host root.
fn host_path_volume(cluster: &Cluster, hp: &JsonObject) -> PathBuf {
    let p = hp["path"].as_str().expect("hostPath.path");
    if p == "/dev" || p == "/sys" {
        return PathBuf::from(p);
    }
    let d = cluster.host_root.join(p.trim_start_matches('/'));
    let ty = hp.get("type").and_then(Value::as_str).unwrap_or("");
    // The test host has what kubelet's host has (type
    // Directory: it must exist), and DirectoryOrCreate makes it.
    if ty == "Directory" || ty == "DirectoryOrCreate" || ty.is_empty() {
        std::fs::create_dir_all(&d).unwrap();
    }
    d
}

/// A Secret's keys as files in `d`: a rendered Secret or one the test created.
fn secret_volume(cluster: &Cluster, s: &JsonObject, d: &Path, fs_group: Option<u32>) {
    let sname = s["secretName"].as_str().expect("secretName");
    let data = manifest::find(cluster.objs, "Secret", sname)
        .map(manifest::secret_data)
        .or_else(|| cluster.extra_secrets.get(sname).cloned())
        .unwrap_or_else(|| panic!("Secret {sname} neither rendered nor created"));
    let mode = default_mode(s);
    mkdir(d, 0o755);
    for (k, bytes) in data {
        write_file(&d.join(k), &bytes, mode, fs_group);
    }
}

/// A projected volume in `d`: the service account token, the API server's
/// CA and the pod's namespace.
fn projected_volume(
    cluster: &Cluster,
    p: &JsonObject,
    d: &Path,
    fs_group: Option<u32>,
    meta: &PodMeta,
) {
    let mode = default_mode(p);
    mkdir(d, 0o755);
    for src in p["sources"].as_array().into_iter().flatten() {
        if let Some(t) = src["serviceAccountToken"].as_object() {
            let api = cluster.api.as_ref();
            let token = api.map(|a| a.token.clone()).unwrap_or_default();
            let path = t["path"].as_str().expect("token path");
            write_file(&d.join(path), token.as_bytes(), mode, fs_group);
        } else if let Some(cm) = src["configMap"].as_object() {
            // kube-root-ca.crt: the API server's CA, published in every namespace.
            assert_eq!(cm["name"], "kube-root-ca.crt", "projected ConfigMap {cm:?}");
            let ca = cluster
                .api
                .as_ref()
                .map(|a| a.ca_pem.clone())
                .unwrap_or_default();
            for it in cm["items"].as_array().into_iter().flatten() {
                let path = it["path"].as_str().expect("item path");
                write_file(&d.join(path), ca.as_bytes(), mode, fs_group);
            }
        } else if let Some(da) = src["downwardAPI"].as_object() {
            for it in da["items"].as_array().into_iter().flatten() {
                let path = it["path"].as_str().expect("item path");
                let field = it["fieldRef"]["fieldPath"].as_str().expect("fieldRef");
                assert_eq!(field, "metadata.namespace", "downwardAPI {field}");
                write_file(&d.join(path), meta.namespace.as_bytes(), mode, fs_group);
            }
        } else {
            panic!("projected source the test does not build: {src}");
        }
    }
}

/// A rendered ConfigMap's data as files in `d`.
fn config_map_volume(cluster: &Cluster, cm: &JsonObject, d: &Path, fs_group: Option<u32>) {
    let cname = cm["name"].as_str().expect("configMap name");
    let obj = manifest::find(cluster.objs, "ConfigMap", cname)
        .unwrap_or_else(|| panic!("ConfigMap {cname} is not rendered"));
    let mode = default_mode(cm);
    mkdir(d, 0o755);
    for (k, val) in manifest::str_map(&obj["data"]) {
        write_file(&d.join(k), val.as_bytes(), mode, fs_group);
    }
}

fn start_container(ctx: &StartCtx, c: &Value) -> RunningContainer {
    let cname = c["name"].as_str().expect("container name").to_owned();
    let image = c["image"].as_str().expect("image");
    let (bin, in_image, entrypoint, image_user) =
        image_of(ctx.cluster.dev_images, image).expect("one of our images");
    let host_bin = fresh_host_bin(ctx, &bin);
    let csc = &c["securityContext"];
    let (uid, user) = sandbox_user(ctx, csc, &cname, image_user);
    let env = container_env(ctx, c, uid);
    let mut argv = match c["command"].as_array() {
        Some(_) => manifest::strings(&c["command"]),
        None => vec![entrypoint],
    };
    argv.extend(
        manifest::strings(&c["args"])
            .iter()
            .map(|a| manifest::expand(a, &env)),
    );
    let mounts = container_mounts(ctx, c, &cname);

    let root = ctx.pod_dir.join("rootfs").join(&cname);
    std::fs::create_dir_all(&root).unwrap();
    let spec = json!({
        "root": root,
        "read_only_root": csc["readOnlyRootFilesystem"].as_bool().unwrap_or(false),
        "image_files": [[host_bin, in_image]],
        "host_pid": ctx.host_pid,
        "mounts": mounts,
        "hosts_file": ctx.hosts_file,
        "user": user,
        "argv": argv,
        "env": env,
    });
    let spec_path = ctx.pod_dir.join(format!("{cname}.json"));
    std::fs::write(&spec_path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    spawn_sandbox(ctx, cname, &spec_path)
}

/// The built binary of `bin` on the host; it must exist and be newer than
/// its sources (a stale binary would be tested).
fn fresh_host_bin(ctx: &StartCtx, bin: &str) -> PathBuf {
    let host_bin = ctx.cluster.bin_dir.join(bin);
    assert!(
        host_bin.is_file(),
        "{} is not built: run `cargo build --workspace --bins` (the README's test command does)",
        host_bin.display()
    );
    if let Some(newer) = newer_source(&host_bin) {
        panic!(
            "{} is older than {}: a stale binary would be tested; run \
             `cargo build --workspace --bins` (the README's test command builds them)",
            host_bin.display(),
            newer.display()
        );
    }
    host_bin
}

/// securityContext, the container's over the pod's: the uid the container
/// runs as, and the sandbox's user (None: privileged, stays root).
fn sandbox_user(
    ctx: &StartCtx,
    csc: &Value,
    cname: &str,
    image_user: (u32, u32),
) -> (u32, Option<Value>) {
    let pick = |k: &str| {
        csc.get(k)
            .filter(|v| !v.is_null())
            .or_else(|| ctx.psc.get(k).filter(|v| !v.is_null()))
    };
    let uid = pick("runAsUser")
        .and_then(Value::as_u64)
        .map(|u| u as u32)
        .unwrap_or(image_user.0);
    let gid = pick("runAsGroup")
        .and_then(Value::as_u64)
        .map(|g| g as u32)
        .unwrap_or(image_user.1);
    if pick("runAsNonRoot").and_then(Value::as_bool) == Some(true) {
        assert_ne!(
            uid, 0,
            "{cname}: runAsNonRoot with uid 0: kubelet refuses to start it"
        );
    }
    let privileged = csc["privileged"].as_bool().unwrap_or(false);
    let mut groups: Vec<u32> = ctx.fs_group.into_iter().collect();
    for g in ctx.psc["supplementalGroups"]
        .as_array()
        .into_iter()
        .flatten()
    {
        groups.push(g.as_u64().expect("gid") as u32);
    }
    let keep_caps = kept_capabilities(csc);
    let user = (!privileged).then(|| {
        json!({
            "uid": uid,
            "gid": gid,
            "groups": groups,
            "keep_caps": keep_caps,
            "no_new_privs": csc["allowPrivilegeEscalation"].as_bool() == Some(false),
        })
    });
    if privileged {
        assert_eq!(
            uid, 0,
            "{cname}: the test runs privileged containers as root only"
        );
    }
    (uid, user)
}

/// The bounding set after the container's capability drop/add: from
/// nothing when it drops ALL, else from the runtime's defaults.
fn kept_capabilities(csc: &Value) -> Vec<String> {
    let drop = manifest::strings(&csc["capabilities"]["drop"]);
    let add = manifest::strings(&csc["capabilities"]["add"]);
    if drop.iter().any(|d| d == "ALL") {
        add.iter().map(|a| a.to_lowercase()).collect()
    } else {
        DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .filter(|d| !drop.iter().any(|x| x.eq_ignore_ascii_case(d)))
            .chain(add.iter().map(|a| a.to_lowercase()))
            .collect()
    }
}

/// env: the runtime's, kubelet's service variables, then the manifest's.
fn container_env(ctx: &StartCtx, c: &Value, uid: u32) -> Vec<(String, String)> {
    let mut base = vec![
        (
            "PATH".to_owned(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        ),
        ("HOSTNAME".to_owned(), ctx.meta.name.clone()),
        (
            "HOME".to_owned(),
            if uid == 0 { "/root" } else { "/" }.to_owned(),
        ),
    ];
    if let Some(api) = &ctx.cluster.api {
        base.push(("KUBERNETES_SERVICE_HOST".into(), api.host.clone()));
        base.push(("KUBERNETES_SERVICE_PORT".into(), api.port.to_string()));
    }
    manifest::resolve_env(c, ctx.cluster.objs, ctx.meta, &base)
}

/// The container's volumeMounts as the sandbox's mount specs.
fn container_mounts(ctx: &StartCtx, c: &Value, cname: &str) -> Vec<Value> {
    let mut mounts = Vec::new();
    for m in c["volumeMounts"].as_array().into_iter().flatten() {
        let vname = m["name"].as_str().expect("mount name");
        let src = ctx
            .volumes
            .get(vname)
            .unwrap_or_else(|| panic!("{cname}: volumeMount {vname} names no volume"));
        assert!(
            m.get("subPath").is_none(),
            "subPath not supported by the test"
        );
        mounts.push(json!({
            "source": src,
            "target": m["mountPath"].as_str().expect("mountPath"),
            "read_only": m["readOnly"].as_bool().unwrap_or(false),
        }));
    }
    mounts
}

/// The sandbox in its own mount (and, without hostPID, pid) namespace,
/// inside the pod's network namespace when it has one; output to its log.
fn spawn_sandbox(ctx: &StartCtx, cname: String, spec_path: &Path) -> RunningContainer {
    let log = ctx.pod_dir.join(format!("{cname}.log"));
    let logf = std::fs::File::create(&log).unwrap();
    let mut cmd = match ctx.netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", ns.display()))
                .arg("--")
                .arg("unshare");
            c
        }
        None => Command::new("unshare"),
    };
    cmd.args(["--mount", "--propagation", "private"]);
    if !ctx.host_pid {
        cmd.args(["--pid", "--fork", "--kill-child"]);
    }
    cmd.arg("--")
        .arg(sandbox())
        .arg("run")
        .arg(spec_path)
        .stdin(Stdio::null())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf);
    let child = cmd.spawn().expect("unshare/nsenter (util-linux)");
    RunningContainer {
        name: cname,
        child,
        log,
    }
}

/// A Rust source or manifest of `bin`'s crate, the shared crates or the
/// protos newer than `bin`, if any: `cargo nextest run -p integration-tests`
/// alone does not rebuild the service binaries this test starts.
fn newer_source(bin: &Path) -> Option<PathBuf> {
    let built = std::fs::metadata(bin).and_then(|m| m.modified()).ok()?;
    let root = crate::manifest::repo_root();
    let name = bin.file_name()?;
    let mut stack = vec![
        root.join("services").join(name),
        root.join("services/shared"),
        root.join("proto"),
    ];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if p.file_name().is_some_and(|n| n != "target" && n != "tests") {
                    stack.push(p);
                }
            } else if p
                .extension()
                .is_some_and(|x| x == "rs" || x == "toml" || x == "proto")
                && e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t > built)
            {
                return Some(p);
            }
        }
    }
    None
}
