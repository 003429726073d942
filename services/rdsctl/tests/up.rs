//! `rdsctl up` as a user runs it: the real binary, real child processes,
//! real gRPC over unix sockets, real SSH to rds-sim. Plus the client
//! commands (`info`, `volume`, `controller`, `events`, `sim`, `--json`)
//! against that stack, and `serve` dispatch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_rdsctl");
const SERVICES: [&str; 5] = [
    "rds-sim",
    "event-service",
    "attachment-service",
    "rds-agent",
    "csi-frontend",
];

/// A running `rdsctl up`; stopped (SIGTERM, then SIGKILL) when dropped.
struct Up {
    child: Child,
    dir: PathBuf,
    ready: String,
    stderr: Arc<Mutex<String>>,
    extra_stdout: Arc<Mutex<Vec<String>>>,
}

impl Up {
    fn start(dir: &Path) -> Up {
        Up::start_with_otlp(dir, None)
    }

    fn start_with_otlp(dir: &Path, otlp: Option<&str>) -> Up {
        let mut cmd = Command::new(BIN);
        match otlp {
            Some(e) => cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", e),
            None => cmd.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT"),
        };
        let mut child = cmd
            .args(["up", "--state-dir"])
            .arg(dir)
            .args(["--node-id", "node-a"])
            .env("OTEL_SERVICE_NAME", "inherited-name-must-not-leak")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let extra_stdout = Arc::new(Mutex::new(Vec::new()));
        let extra = extra_stdout.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            if let Some(Ok(l)) = lines.next() {
                let _ = tx.send(l);
            }
            // Anything more on stdout breaks the contract; kept for the check.
            for l in lines.map_while(Result::ok) {
                extra.lock().unwrap().push(l);
            }
        });
        let ready = match rx.recv_timeout(Duration::from_secs(90)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "no READY line within 90 s; stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        Up {
            child,
            dir: dir.to_path_buf(),
            ready,
            stderr,
            extra_stdout,
        }
    }

    fn pid(&self, service: &str) -> i32 {
        std::fs::read_to_string(self.dir.join("run").join(format!("{service}.pid")))
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or(0)
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM and wait; returns whether it exited 0 within the deadline.
    fn terminate(&mut self) -> bool {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let until = Instant::now() + Duration::from_secs(40);
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            let until = Instant::now() + Duration::from_secs(30);
            while Instant::now() < until && self.child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `rdsctl <args>`; (exit code, stdout, stderr).
fn ctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("CSI_ENDPOINT")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ctl_ok(args: &[&str]) -> String {
    let (code, out, err) = ctl(args);
    assert_eq!(code, 0, "rdsctl {args:?} failed:\n{out}\n{err}");
    out
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

fn alive(pid: i32) -> bool {
    pid > 0 && kill(Pid::from_raw(pid), None).is_ok()
}

/// A `Key:   123 kB` field of a /proc file, in KiB.
fn proc_kib(pid: i32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn vm_rss_kib(pid: i32) -> u64 {
    proc_kib(pid, "status", "VmRSS:")
}

/// Proportional set size: shared pages (the one rdsctl binary all six map) counted once overall.
fn pss_kib(pid: i32) -> u64 {
    proc_kib(pid, "smaps_rollup", "Pss:")
}

fn mounted(path: &Path) -> bool {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = path.to_str().unwrap();
    text.lines().any(|l| l.split(' ').nth(4) == Some(want))
}

fn short_tempdir() -> tempfile::TempDir {
    // Unix socket paths are limited to 107 bytes: stay under /tmp.
    tempfile::Builder::new()
        .prefix("rdsctl-t")
        .tempdir_in("/tmp")
        .unwrap()
}

#[test]
fn up_serves_csi_names_and_restarts_children_and_stops_cleanly() {
    let tmp = short_tempdir();
    let dir = tmp.path();
    let mut up = Up::start(dir);
    let socket = dir.join("csi.sock");
    assert_eq!(
        up.ready,
        format!("READY csi=unix://{} node=node-a", socket.display())
    );
    let state = dir.to_str().unwrap();

    assert_csi_served_with_the_local_layout(dir, &socket);
    let pids = assert_each_child_runs_under_its_own_name(&up);
    print_idle_memory(&up, &pids);

    // Kill rds-agent hard: it is restarted and the stack keeps working.
    let agent = up.pid("rds-agent");
    kill_and_wait_for_restart(&up, "rds-agent");
    assert!(
        up.stderr()
            .contains(&format!("rds-agent (pid {agent}) died")),
        "restart not reported:\n{}",
        up.stderr()
    );
    create_until_ok_after_restart(state);

    assert_sigterm_stops_everything_cleanly(&mut up, dir, &socket);
}

/// CSI is served on the socket, and DIR has the layout of
/// docs/local-mode.md §2.
fn assert_csi_served_with_the_local_layout(dir: &Path, socket: &Path) {
    let info = json(&ctl_ok(&[
        "info",
        "--endpoint",
        &format!("unix://{}", socket.display()),
        "--json",
    ]));
    assert_eq!(info["name"], "rds.csi.srvlab.io");
    assert_eq!(info["ready"], true);
    for p in [
        "sim",
        "sim/commands.log",
        "attachments",
        "node",
        "run/endpoints.json",
    ] {
        assert!(dir.join(p).exists(), "{p} missing");
    }
}

/// Every child is its own process with its own service name; returns their
/// pids in [`SERVICES`] order.
fn assert_each_child_runs_under_its_own_name(up: &Up) -> Vec<i32> {
    let mut pids = Vec::new();
    for s in SERVICES {
        let pid = up.pid(s);
        assert!(alive(pid), "{s} has no live pid");
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let env = String::from_utf8_lossy(&env);
        assert!(
            env.split('\0')
                .any(|kv| kv == format!("OTEL_SERVICE_NAME={s}")),
            "{s}: environ lacks its service name"
        );
        assert!(
            !env.contains("inherited-name-must-not-leak"),
            "{s} inherited OTEL_SERVICE_NAME"
        );
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        assert_eq!(&args[1..3], ["serve", s], "{s}: {args:?}");
        assert!(
            up.stderr().contains(&format!("{s}: ")),
            "no log line from {s}"
        );
        pids.push(pid);
    }
    pids
}

/// Idle memory of the whole tree (for the closing note).
fn print_idle_memory(up: &Up, pids: &[i32]) {
    std::thread::sleep(Duration::from_secs(3));
    let own = up.child.id() as i32;
    let (mut total, mut pss) = (vm_rss_kib(own), pss_kib(own));
    let mut parts = vec![format!("rdsctl {} MiB", vm_rss_kib(own) / 1024)];
    for (s, pid) in SERVICES.iter().zip(pids) {
        let k = vm_rss_kib(*pid);
        total += k;
        pss += pss_kib(*pid);
        parts.push(format!("{s} {} MiB", k / 1024));
    }
    println!(
        "idle RSS of rdsctl up: {:.1} MiB summed VmRSS ({}); {:.1} MiB summed PSS",
        total as f64 / 1024.0,
        parts.join(", "),
        pss as f64 / 1024.0
    );
    assert!(total > 0);
}

/// SIGKILLs `service` and waits until `rdsctl up` runs a new one.
fn kill_and_wait_for_restart(up: &Up, service: &str) {
    let old = up.pid(service);
    kill(Pid::from_raw(old), Signal::SIGKILL).unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    while !(alive(up.pid(service)) && up.pid(service) != old) {
        assert!(
            Instant::now() < until,
            "{service} not restarted; stderr:\n{}",
            up.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// CreateVolume succeeds again within 30 s of a restart.
fn create_until_ok_after_restart(state: &str) {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out, err) = ctl(&[
            "volume",
            "create",
            "pvc-after-restart",
            "--size",
            "64Mi",
            "--state-dir",
            state,
            "--json",
        ]);
        if code == 0 {
            assert_eq!(json(&out)["volume_id"], "pvc-after-restart");
            break;
        }
        assert!(
            Instant::now() < until,
            "CreateVolume never succeeded after the restart: {err}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// SIGTERM: children first, socket removed, exit 0, nothing but the READY
/// line on stdout.
fn assert_sigterm_stops_everything_cleanly(up: &mut Up, dir: &Path, socket: &Path) {
    let all: Vec<i32> = SERVICES.iter().map(|s| up.pid(s)).collect();
    assert!(
        up.terminate(),
        "rdsctl up did not exit 0 on SIGTERM; stderr:\n{}",
        up.stderr()
    );
    assert!(!socket.exists(), "CSI socket left behind");
    for (s, pid) in SERVICES.iter().zip(all) {
        assert!(!alive(pid), "{s} (pid {pid}) outlived rdsctl up");
    }
    assert!(!dir.join("run/rds-agent.pid").exists());
    assert!(
        up.extra_stdout.lock().unwrap().is_empty(),
        "stdout must hold only the READY line: {:?}",
        up.extra_stdout.lock().unwrap()
    );
}

/// Retries `rdsctl <args>` until it exits 0. A failure meanwhile must be a
/// clean one (exit 3 or 4: the call failed or the stack is unavailable), never
/// a crash or garbage; returns stdout and how many attempts failed.
fn ctl_until_ok(args: &[&str], what: &str) -> (String, usize) {
    let until = Instant::now() + Duration::from_secs(40);
    let mut failed = 0;
    loop {
        let (code, out, err) = ctl(args);
        if code == 0 {
            return (out, failed);
        }
        assert!(
            code == 3 || code == 4,
            "{what}: unclean failure (exit {code}):\n{out}\n{err}"
        );
        failed += 1;
        assert!(Instant::now() < until, "{what}: never succeeded: {err}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Creates `volume` for the PVC `pvc` and publishes it to node-a with the
/// volume_context as the attacher passes it from the PV; returns the create
/// output and the file holding it.
fn create_and_publish(dir: &Path, state: &str, volume: &str, pvc: &str) -> (String, PathBuf) {
    let create_out = ctl_ok(&[
        "volume",
        "create",
        volume,
        "--size",
        "64Mi",
        "--pvc",
        pvc,
        "--state-dir",
        state,
        "--json",
    ]);
    let ctx_file = dir.join(format!("{volume}.json"));
    std::fs::write(&ctx_file, &create_out).unwrap();
    let published = json(&ctl_ok(&[
        "controller",
        "publish",
        volume,
        "--node",
        "node-a",
        "--context-from",
        ctx_file.to_str().unwrap(),
        "--state-dir",
        state,
        "--json",
    ]));
    assert_eq!(published["node_id"], "node-a");
    (create_out, ctx_file)
}

#[test]
fn each_service_killed_mid_lifecycle_is_restarted_and_nothing_is_lost() {
    let tmp = short_tempdir();
    let dir = tmp.path();
    let state = dir.to_str().unwrap();
    let up = Up::start(dir);

    // Mid-lifecycle: a volume created and published to the node.
    let (_, ctx_file) = create_and_publish(dir, state, "pvc-crash", "team/crash");
    let ctx = ctx_file.to_str().unwrap();

    for (i, service) in SERVICES.iter().enumerate() {
        kill_and_wait_for_restart(&up, service);

        // Calls right after the crash fail cleanly or succeed; on retry they succeed.
        let name = format!("pvc-after-{i}");
        let (out, _failed) = ctl_until_ok(
            &[
                "volume",
                "create",
                &name,
                "--size",
                "64Mi",
                "--state-dir",
                state,
                "--json",
            ],
            &format!("CreateVolume after killing {service}"),
        );
        assert_eq!(json(&out)["volume_id"], name.as_str());

        assert_nothing_lost(state, service, i);
        // Publish again is idempotent (the holder is still node-a).
        ctl_until_ok(
            &[
                "controller",
                "publish",
                "pvc-crash",
                "--node",
                "node-a",
                "--context-from",
                ctx,
                "--state-dir",
                state,
            ],
            &format!("re-publish after killing {service}"),
        );
    }
    assert!(up.stderr().contains("died"), "restarts not reported");
}

/// After killing the `i`th service: the first volume is still there and
/// still published on node-a (attachments survive every crash), exactly
/// once, and every volume created so far exists exactly once.
fn assert_nothing_lost(state: &str, service: &str, i: usize) {
    let (list, _) = ctl_until_ok(
        &["volume", "list", "--state-dir", state, "--json"],
        &format!("ListVolumes after killing {service}"),
    );
    let list = json(&list);
    let vols = list.as_array().unwrap();
    let keep: Vec<_> = vols
        .iter()
        .filter(|v| v["volume_id"] == "pvc-crash")
        .collect();
    assert_eq!(keep.len(), 1, "after killing {service}: {list}");
    assert_eq!(
        keep[0]["published_node_ids"],
        serde_json::json!(["node-a"]),
        "attachment lost after killing {service}: {list}"
    );
    for j in 0..=i {
        let n = format!("pvc-after-{j}");
        assert_eq!(
            vols.iter().filter(|v| v["volume_id"] == n.as_str()).count(),
            1,
            "{n} after killing {service}: {list}"
        );
    }
}

#[test]
fn restart_with_the_same_dir_finds_state_and_client_commands_speak_json() {
    let tmp = short_tempdir();
    let dir = tmp.path();
    let state = dir.to_str().unwrap();
    let mut up = Up::start(dir);

    let (create_out, ctx_file) = create_and_publish(dir, state, "pvc-keep", "team/data");
    let created = json(&create_out);
    assert_eq!(created["volume_id"], "pvc-keep");
    assert_eq!(
        created["volume_context"]["volumePath"],
        "/storage-pool/metal-csi/pvc-keep.img"
    );
    assert!(
        dir.join("sim/files/storage-pool/metal-csi/pvc-keep.img")
            .is_file(),
        "backing file not under DIR/sim/files"
    );

    // A human line and its JSON twin say the same.
    let human = ctl_ok(&["volume", "list", "--state-dir", state]);
    assert!(
        human
            .lines()
            .any(|l| l.starts_with("pvc-keep ") && l.contains("node-a")),
        "{human}"
    );
    assert_events_file_and_rendering_agree(state);
    assert_sim_fault_controls_work(state);

    // As root: stage and publish on a real loop device; the mounts outlive the stack.
    let root = nix::unistd::geteuid().is_root();
    let mounts = Mounts {
        state,
        ctx: ctx_file.to_str().unwrap(),
        staging: dir.join("staging"),
        target: dir.join("target"),
    };
    if root {
        mounts.stage_publish_and_write();
    } else {
        println!(
            "not root: the staged-mount part of the restart check is skipped (loop devices need root)"
        );
    }

    // Stop, start again on the same DIR: the volume, its attachment and its mounts are found.
    assert!(up.terminate());
    drop(up);
    if root {
        assert!(
            mounted(&mounts.target),
            "a clean stop must not unmount staged/published volumes"
        );
    }
    let _up = Up::start(dir);
    if root {
        mounts.restage_find_data_and_tear_down();
    }
    assert_volume_and_attachment_kept_then_delete(dir, state);
}

/// Events: the sink format and the `events` rendering of
/// docs/local-mode.md §3-§4 say the same, line by line.
fn assert_events_file_and_rendering_agree(state: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    let raw = loop {
        let raw = ctl_ok(&["events", "--state-dir", state, "--json"]);
        if raw.contains("VolumeAttached") {
            break raw;
        }
        assert!(Instant::now() < until, "no VolumeAttached event:\n{raw}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = ctl_ok(&["events", "--state-dir", state]);
    let raw_lines: Vec<&str> = raw.lines().collect();
    let text_lines: Vec<&str> = text.lines().collect();
    assert_eq!(raw_lines.len(), text_lines.len());
    for (r, t) in raw_lines.iter().zip(&text_lines) {
        let e = json(r);
        let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
        for k in [
            "time",
            "reason",
            "type",
            "message",
            "volume_id",
            "pvc_namespace",
            "pvc_name",
            "node_id",
            "trace_id",
        ] {
            assert!(keys.iter().any(|x| *x == k), "event lacks {k}: {r}");
        }
        let expect = format!(
            "{} {} {} {}/{} {} {}",
            e["time"].as_str().unwrap(),
            e["type"].as_str().unwrap(),
            e["reason"].as_str().unwrap(),
            e["pvc_namespace"].as_str().unwrap(),
            e["pvc_name"].as_str().unwrap(),
            e["volume_id"].as_str().unwrap(),
            e["message"].as_str().unwrap()
        );
        assert_eq!(*t, expect);
    }
    assert!(
        text.lines()
            .any(|l| l.contains(" VolumeAttached team/data pvc-keep ")),
        "{text}"
    );
}

/// The sim's fault controls through `rdsctl sim`.
fn assert_sim_fault_controls_work(state: &str) {
    let added = json(&ctl_ok(&[
        "sim",
        "fault",
        "add",
        "latency=50ms",
        "--command",
        "^/disk print",
        "--times",
        "1",
        "--state-dir",
        state,
        "--json",
    ]));
    let id = added["id"].as_u64().expect("rule id");
    let listed = json(&ctl_ok(&[
        "sim",
        "fault",
        "list",
        "--state-dir",
        state,
        "--json",
    ]));
    assert!(listed.as_array().unwrap().iter().any(|r| r["id"] == id));
    let disks = json(&ctl_ok(&["sim", "disks", "--state-dir", state, "--json"]));
    assert!(
        disks
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["slot"] == "pvc-keep"),
        "{disks}"
    );
    ctl_ok(&["sim", "fault", "clear", "--state-dir", state]);
    let (code, _, err) = ctl(&["sim", "fault", "add", "no-such-fault", "--state-dir", state]);
    assert_eq!(code, 2, "a bad fault must be a usage error: {err}");
}

/// pvc-keep's staging and target paths on the node (root only: loop devices).
struct Mounts<'a> {
    state: &'a str,
    ctx: &'a str,
    staging: PathBuf,
    target: PathBuf,
}

impl Mounts<'_> {
    fn stage(&self) {
        ctl_ok(&[
            "node",
            "stage",
            "pvc-keep",
            "--staging-path",
            self.staging.to_str().unwrap(),
            "--context-from",
            self.ctx,
            "--state-dir",
            self.state,
        ]);
    }

    /// Stage and publish, and leave a file in the published volume.
    fn stage_publish_and_write(&self) {
        std::fs::create_dir_all(&self.staging).unwrap();
        self.stage();
        ctl_ok(&[
            "node",
            "publish",
            "pvc-keep",
            "--staging-path",
            self.staging.to_str().unwrap(),
            "--target-path",
            self.target.to_str().unwrap(),
            "--context-from",
            self.ctx,
            "--state-dir",
            self.state,
        ]);
        std::fs::write(self.target.join("kept.txt"), "still here").unwrap();
        assert!(mounted(&self.target) && mounted(&self.staging));
    }

    /// After the restart: staging again is idempotent (the node role
    /// recognises what it staged before), the file is there, and
    /// unpublish/unstage remove both mounts.
    fn restage_find_data_and_tear_down(&self) {
        self.stage();
        assert_eq!(
            std::fs::read_to_string(self.target.join("kept.txt")).unwrap(),
            "still here"
        );
        ctl_ok(&[
            "node",
            "unpublish",
            "pvc-keep",
            "--target-path",
            self.target.to_str().unwrap(),
            "--state-dir",
            self.state,
        ]);
        ctl_ok(&[
            "node",
            "unstage",
            "pvc-keep",
            "--staging-path",
            self.staging.to_str().unwrap(),
            "--state-dir",
            self.state,
        ]);
        assert!(
            !mounted(&self.target) && !mounted(&self.staging),
            "unpublish/unstage after the restart left mounts"
        );
    }
}

/// pvc-keep and its attachment survived the restart; then unpublish and
/// delete it, backing file included.
fn assert_volume_and_attachment_kept_then_delete(dir: &Path, state: &str) {
    let vols = json(&ctl_ok(&["volume", "list", "--state-dir", state, "--json"]));
    let v = vols
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["volume_id"] == "pvc-keep")
        .unwrap_or_else(|| panic!("pvc-keep lost across the restart: {vols}"));
    assert_eq!(
        v["published_node_ids"],
        serde_json::json!(["node-a"]),
        "attachment lost: {v}"
    );
    ctl_ok(&[
        "controller",
        "unpublish",
        "pvc-keep",
        "--node",
        "node-a",
        "--state-dir",
        state,
    ]);
    let (code, _, err) = ctl(&[
        "volume",
        "delete",
        "pvc-keep",
        "--state-dir",
        state,
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !dir.join("sim/files/storage-pool/metal-csi/pvc-keep.img")
            .exists()
    );
}

#[test]
fn a_second_up_on_the_same_dir_is_refused_and_bad_input_is_a_usage_error() {
    let tmp = short_tempdir();
    let _up = Up::start(tmp.path());
    let (code, _, err) = ctl(&["up", "--state-dir", tmp.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("another rdsctl"), "{err}");
    let (code, _, err) = ctl(&["volume", "list"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = ctl(&[
        "volume",
        "create",
        "x",
        "--size",
        "1.5Gi",
        "--state-dir",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    // A CSI error keeps its code: expanding a volume that does not exist is NOT_FOUND (exit 3).
    let (code, _, err) = ctl(&[
        "volume",
        "expand",
        "no-such-volume",
        "--size",
        "1Gi",
        "--state-dir",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("NotFound"), "{err}");
}

#[test]
fn serve_runs_the_services_own_entry_point_and_check_config_serves_nothing() {
    let (code, out, err) = ctl(&[
        "serve",
        "event-service",
        "--check-config",
        "--sink",
        "file:/tmp/x.jsonl",
        "--metrics-addr",
        "",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["sink"]["file"], "/tmp/x.jsonl");
    assert!(err.contains("event-service: configuration OK"), "{err}");
    let (code, _, err) = ctl(&["serve", "no-such-service"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = ctl(&["serve", "rds-agent", "--check-config"]);
    assert_eq!(
        code, 2,
        "rds-agent without --rds-address must refuse: {err}"
    );
}

/// An in-process OTLP/gRPC collector keeping every export.
mod collector {
    use std::sync::{Arc, Mutex};

    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };

    #[derive(Clone, Default)]
    pub struct Collector(pub Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

    #[tonic::async_trait]
    impl TraceService for Collector {
        async fn export(
            &self,
            req: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            self.0.lock().unwrap().push(req.into_inner());
            Ok(tonic::Response::new(ExportTraceServiceResponse {
                partial_success: None,
            }))
        }
    }

    /// Serves on 127.0.0.1:0 in a background runtime; returns the endpoint.
    pub fn start(c: Collector) -> String {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(l.local_addr().unwrap()).unwrap();
                tonic::transport::Server::builder()
                    .add_service(TraceServiceServer::new(c))
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l))
                    .await
                    .unwrap();
            });
        });
        format!("http://{}", rx.recv().unwrap())
    }

    /// (service.name, hex trace id, span name) of every span received.
    pub fn spans(c: &Collector) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for req in c.0.lock().unwrap().iter() {
            for rs in &req.resource_spans {
                let service = rs
                    .resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                    .and_then(|a| a.value.as_ref())
                    .and_then(|v| match &v.value {
                        Some(
                            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                                s,
                            ),
                        ) => Some(s.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                for ss in &rs.scope_spans {
                    for sp in &ss.spans {
                        let id: String = sp.trace_id.iter().map(|b| format!("{b:02x}")).collect();
                        out.push((service.clone(), id, sp.name.clone()));
                    }
                }
            }
        }
        out
    }
}

#[test]
fn every_child_exports_traces_under_its_own_service_name_and_joins_the_callers_trace() {
    let c = collector::Collector::default();
    let endpoint = collector::start(c.clone());
    let tmp = short_tempdir();
    let dir = tmp.path();
    let state = dir.to_str().unwrap();
    let mut up = Up::start_with_otlp(dir, Some(&endpoint));
    for s in SERVICES {
        let env = std::fs::read(format!("/proc/{}/environ", up.pid(s))).unwrap();
        let env = String::from_utf8_lossy(&env);
        assert!(
            env.split('\0')
                .any(|kv| kv == format!("OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}")),
            "{s} did not get the OTLP endpoint"
        );
    }
    // The client's trace id (printed with --show-trace) is the trace of the whole call.
    let out = Command::new(BIN)
        .args([
            "volume",
            "create",
            "pvc-traced",
            "--size",
            "64Mi",
            "--show-trace",
            "--state-dir",
            state,
        ])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let trace = err
        .split("trace_id=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("no trace id printed: {err}"))
        .to_owned();
    ctl_ok(&[
        "controller",
        "publish",
        "pvc-traced",
        "--node",
        "node-a",
        "--state-dir",
        state,
    ]);
    // Stopping flushes every child's exporter.
    assert!(up.terminate());
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let spans = collector::spans(&c);
        let services: std::collections::BTreeSet<&str> =
            spans.iter().map(|(s, _, _)| s.as_str()).collect();
        let in_trace: std::collections::BTreeSet<&str> = spans
            .iter()
            .filter(|(_, t, _)| *t == trace)
            .map(|(s, _, _)| s.as_str())
            .collect();
        let want_services = [
            "csi-frontend",
            "rds-agent",
            "attachment-service",
            "event-service",
            "rdsctl",
        ];
        let want_in_trace = ["rdsctl", "csi-frontend", "rds-agent"];
        if want_services.iter().all(|s| services.contains(s))
            && want_in_trace.iter().all(|s| in_trace.contains(s))
        {
            println!(
                "services seen: {services:?}; in the CreateVolume trace {trace}: {in_trace:?}"
            );
            break;
        }
        assert!(
            Instant::now() < until,
            "services seen: {services:?}; in trace {trace}: {in_trace:?}; stderr:\n{}",
            up.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
