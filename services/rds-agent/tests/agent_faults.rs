//! Sim faults through the real stack (gRPC → rds-agent → SSH → rds-sim):
//! each gives the right gRPC code, and afterwards exactly one disk exists for
//! each acknowledged create (no duplicate, no loss). Plus the trace test and
//! the benchmarks (`#[ignore]`, run with `--ignored --nocapture`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use rds_bus::Reason;
use rds_proto::agent::*;
use rds_sim::{FaultAction, FaultRule, Garble};
use tonic::Code;

fn on_add(slot: &str) -> String {
    format!("^/disk add .*slot={slot}( |$)")
}

#[tokio::test(flavor = "multi_thread")]
async fn hang_is_deadline_exceeded_then_exactly_one_disk() {
    let env = common::env(Opts::default()).await;
    let mut c = env.client();
    env.sim.faults().add(
        FaultRule::new(FaultAction::Hang)
            .on(on_add("pvc-hang"))
            .once(),
    );
    let t = Instant::now();
    let s = c
        .create_volume(create_req("pvc-hang", GIB))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::DeadlineExceeded, "{s:?}");
    assert_eq!(rds_bus::reason_of(&s), Some(Reason::RdsTimeout));
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "bounded by the command deadline: {:?}",
        t.elapsed()
    );
    assert_eq!(
        env.disks_with_slot("pvc-hang"),
        0,
        "the hung command never ran"
    );
    let (r, _) = create_until_ok(&mut c, "pvc-hang", GIB, Duration::from_secs(10)).await;
    r.unwrap();
    assert_eq!(env.disks_with_slot("pvc-hang"), 1);
    // Other volumes were never blocked behind the hang for longer than a deadline.
    c.create_volume(create_req("pvc-next", GIB)).await.unwrap();
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn drop_before_effect_is_unavailable_and_retry_creates_once() {
    let env = common::env(Opts::default()).await;
    let mut c = env.client();
    env.sim.faults().add(
        FaultRule::new(FaultAction::DropBeforeEffect)
            .on(on_add("pvc-drop1"))
            .once(),
    );
    let s = c
        .create_volume(create_req("pvc-drop1", GIB))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unavailable, "{s:?}");
    assert_eq!(env.disks_with_slot("pvc-drop1"), 0);
    let (r, _) = create_until_ok(&mut c, "pvc-drop1", GIB, Duration::from_secs(10)).await;
    assert_eq!(r.unwrap().size_bytes, GIB);
    assert_eq!(env.disks_with_slot("pvc-drop1"), 1);
    assert_eq!(
        env.adds_for("pvc-drop1"),
        2,
        "one dropped before effect, one real"
    );
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn drop_after_effect_rereads_and_succeeds_without_resending() {
    let env = common::env(Opts::default()).await;
    let mut c = env.client();
    env.sim.faults().add(
        FaultRule::new(FaultAction::DropAfterEffect)
            .on(on_add("pvc-drop2"))
            .once(),
    );
    let v = c
        .create_volume(create_req("pvc-drop2", GIB))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.size_bytes, GIB);
    assert_eq!(env.disks_with_slot("pvc-drop2"), 1);
    assert_eq!(
        env.adds_for("pvc-drop2"),
        1,
        "the ambiguous add was never re-sent"
    );
    // Same for delete: removed, connection dropped, re-read decides.
    env.sim.faults().add(
        FaultRule::new(FaultAction::DropAfterEffect)
            .on("^/disk remove")
            .once(),
    );
    let d = c
        .delete_volume(delete_req("pvc-drop2"))
        .await
        .unwrap()
        .into_inner();
    assert!(d.existed);
    assert_eq!(env.disks_with_slot("pvc-drop2"), 0);
    assert!(!env.sim.file_exists("/storage-pool/metal-csi/pvc-drop2.img"));
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn disk_full_is_resource_exhausted() {
    let env = common::env(Opts::default()).await;
    let mut c = env.client();
    env.sim.faults().add(
        FaultRule::new(FaultAction::DiskFull)
            .on(on_add("pvc-full"))
            .once(),
    );
    let s = c
        .create_volume(create_req("pvc-full", GIB))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    assert_eq!(rds_bus::reason_of(&s), Some(Reason::CapacityExhausted));
    assert_eq!(env.disks_with_slot("pvc-full"), 0);
    assert_eq!(env.adds_for("pvc-full"), 1, "not retried");
    env.shutdown().await;

    // A strictly accounted pool that is really too small.
    let env = common::env(Opts {
        sim: Box::new(|c| {
            c.pool_size = 4 * GIB;
            c.behaviour.space = rds_sim::SpaceMode::Strict;
        }),
        ..Opts::default()
    })
    .await;
    let mut c = env.client();
    let s = c
        .create_volume(create_req("pvc-big", 8 * GIB))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    c.create_volume(create_req("pvc-small", GIB)).await.unwrap();
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_or_missing_exit_status_is_read_from_the_text() {
    let env = common::env(Opts::default()).await;
    let mut c = env.client();
    // "1 with success": RouterOS did it; the agent re-reads and succeeds.
    env.sim.faults().add(
        FaultRule::new(FaultAction::ExitStatus(Some(1)))
            .on(on_add("pvc-exit1"))
            .once(),
    );
    c.create_volume(create_req("pvc-exit1", GIB)).await.unwrap();
    // No exit status at all on every command.
    let id = env
        .sim
        .faults()
        .add(FaultRule::new(FaultAction::ExitStatus(None)));
    c.create_volume(create_req("pvc-exitnone", GIB))
        .await
        .unwrap();
    c.get_volume(GetVolumeRequest {
        volume_id: "pvc-exitnone".into(),
    })
    .await
    .unwrap();
    // "0 with error": the error text wins.
    env.sim.faults().remove(id);
    env.sim.faults().add(
        FaultRule::new(FaultAction::ExitStatus(Some(0)))
            .on(on_add("pvc-exit0"))
            .once(),
    );
    env.sim.faults().add(
        FaultRule::new(FaultAction::DiskFull)
            .on(on_add("pvc-exit0"))
            .once(),
    );
    let s = c
        .create_volume(create_req("pvc-exit0", GIB))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    for slot in ["pvc-exit1", "pvc-exitnone"] {
        assert_eq!(env.disks_with_slot(slot), 1, "{slot}");
        assert_eq!(env.adds_for(slot), 1, "{slot}");
    }
    assert_eq!(env.disks_with_slot("pvc-exit0"), 0);
    env.shutdown().await;

    // A box whose exit status is always 0: errors still come from the text.
    let env = common::env(Opts {
        sim: Box::new(|c| c.behaviour.exit_status = rds_sim::ExitStatusMode::AlwaysZero),
        ..Opts::default()
    })
    .await;
    let mut c = env.client();
    c.create_volume(create_req("pvc-a0", GIB)).await.unwrap();
    env.sim.faults().add(
        FaultRule::new(FaultAction::DiskFull)
            .on(on_add("pvc-b0"))
            .once(),
    );
    let s = c
        .create_volume(create_req("pvc-b0", GIB))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted);
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn garbled_output_is_never_taken_at_face_value() {
    let env = common::env(Opts::default()).await;
    let mut c = env.client();
    let garbles = [
        Garble::AnsiEscapes,
        Garble::ConsoleLogLine,
        Garble::InvalidUtf8,
        Garble::LfLineEndings,
        Garble::ExtraBlankLine,
        Garble::NoTrailingBlankLine,
        Garble::Stderr,
        Garble::Width(60),
        Garble::CutBeforeSeparator,
    ];
    for (i, g) in garbles.iter().enumerate() {
        // On the add (its output should be empty): ambiguous → re-read → OK.
        let a = format!("pvc-ga{i}");
        env.sim.faults().add(
            FaultRule::new(FaultAction::Garble(g.clone()))
                .on(on_add(&a))
                .once(),
        );
        let v = c.create_volume(create_req(&a, GIB)).await;
        let v = v
            .unwrap_or_else(|e| panic!("{g:?} on add: {e:?}"))
            .into_inner();
        assert_eq!(v.size_bytes, GIB, "{g:?}");
        // On the reads: parsed or retried, never a wrong answer.
        let p = format!("pvc-gp{i}");
        env.sim.faults().add(
            FaultRule::new(FaultAction::Garble(g.clone()))
                .on(format!("^/disk print .*slot={p}[ ;]"))
                .times(2),
        );
        let v = c.create_volume(create_req(&p, 2 * GIB)).await;
        let v = v
            .unwrap_or_else(|e| panic!("{g:?} on print: {e:?}"))
            .into_inner();
        assert_eq!(v.size_bytes, 2 * GIB, "{g:?}");
        assert_eq!(v.nqn, format!("nqn.2000-02.com.mikrotik:{p}"), "{g:?}");
        for slot in [&a, &p] {
            assert_eq!(env.disks_with_slot(slot), 1, "{g:?} {slot}");
            assert_eq!(env.adds_for(slot), 1, "{g:?} {slot}");
        }
    }
    // Truncated output of a read: retried (or refused), never a wrong size
    // and never "no such volume" for a volume that exists.
    let cut = env.sim.faults().add(
        FaultRule::new(FaultAction::Garble(Garble::Truncate(200)))
            .on("^/disk print .*slot=pvc-ga0[ ;]"),
    );
    match c
        .get_volume(GetVolumeRequest {
            volume_id: "pvc-ga0".into(),
        })
        .await
    {
        Ok(v) => assert_eq!(v.into_inner().size_bytes, GIB),
        Err(s) => assert_eq!(s.code(), Code::Internal, "{s:?}"),
    }
    // The fault really fired (the test cannot pass vacuously).
    assert!(env.sim.faults().fired(cut) > 0, "the cut read was sent");
    env.sim.faults().remove(cut);
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reboot_mid_create_is_unavailable_then_one_disk() {
    let env = common::env(Opts::default()).await;
    let mut c = env.client();
    c.create_volume(create_req("pvc-pre", GIB)).await.unwrap();
    env.sim.faults().add(
        FaultRule::new(FaultAction::Reboot(Duration::from_secs(2)))
            .on(on_add("pvc-boot"))
            .once(),
    );
    let t = Instant::now();
    let (r, codes) = create_until_ok(&mut c, "pvc-boot", GIB, Duration::from_secs(20)).await;
    r.unwrap();
    assert_eq!(codes.first(), Some(&Code::Unavailable), "{codes:?}");
    assert!(codes.iter().all(|c| *c == Code::Unavailable), "{codes:?}");
    println!(
        "reboot: {} UNAVAILABLE answers, created after {:?}",
        codes.len(),
        t.elapsed()
    );
    assert_eq!(env.disks_with_slot("pvc-boot"), 1);
    assert_eq!(
        env.disks_with_slot("pvc-pre"),
        1,
        "state survived the reboot"
    );
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_commands_never_exceed_the_session_bound() {
    let env = common::env(Opts {
        agent_args: vec![
            "--max-connections".into(),
            "1".into(),
            "--max-sessions".into(),
            "2".into(),
        ],
        ..Opts::default()
    })
    .await;
    let mut c = env.client();
    c.create_volume(create_req("pvc-s", GIB)).await.unwrap();
    env.sim
        .faults()
        .add(FaultRule::new(FaultAction::Latency(Duration::from_millis(
            150,
        ))));
    let metrics = env.agent.as_ref().unwrap().metrics.clone();
    let sampler = tokio::spawn(async move {
        let mut max = 0i64;
        for _ in 0..200 {
            let text = metrics.encode();
            let n = text
                .lines()
                .find_map(|l| l.strip_prefix("rds_csi_rds_sessions_active "))
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(0);
            max = max.max(n);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        max
    });
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut c = env.client();
        tasks.push(tokio::spawn(async move {
            c.get_volume(GetVolumeRequest {
                volume_id: "pvc-s".into(),
            })
            .await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().into_inner().size_bytes, GIB);
    }
    let wall = t.elapsed();
    let max = sampler.await.unwrap();
    // 8 one-command calls, 150 ms each, 2 at a time: at least 4 rounds.
    assert!(
        wall >= Duration::from_millis(590),
        "bound not enforced: {wall:?}"
    );
    assert_eq!(max, 2, "sessions in use peaked at {max}");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_stay_within_the_limit_the_rds_allows() {
    // The sim refuses a 3rd channel per connection; the agent keeps 2 per connection.
    let env = common::env(Opts {
        sim: Box::new(|c| c.behaviour.session_limit = Some(2)),
        agent_args: vec![
            "--max-connections".into(),
            "2".into(),
            "--max-sessions".into(),
            "4".into(),
        ],
        ..Opts::default()
    })
    .await;
    env.sim
        .faults()
        .add(FaultRule::new(FaultAction::Latency(Duration::from_millis(
            30,
        ))));
    let mut tasks = Vec::new();
    for i in 0..24 {
        let mut c = env.client();
        tasks.push(tokio::spawn(async move {
            c.create_volume(create_req(&format!("pvc-conc{i}"), GIB))
                .await
                .map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(env.sim.disks().len(), 24);
    env.shutdown().await;
}

/// Walks parent links up from `start` (the parent of span `first`, at most 10 steps);
/// whether `caller` is reached, and the span names passed on the way.
fn walk_to_caller(
    first: &str,
    start: opentelemetry::trace::SpanId,
    caller: opentelemetry::trace::SpanId,
    parent: impl Fn(opentelemetry::trace::SpanId) -> Option<(String, opentelemetry::trace::SpanId)>,
) -> (bool, Vec<String>) {
    let mut cur = start;
    let mut chain = vec![first.to_owned()];
    for _ in 0..10 {
        if cur == caller {
            return (true, chain);
        }
        match parent(cur) {
            Some((name, up)) => {
                chain.push(name);
                cur = up;
            }
            None => break,
        }
    }
    (false, chain)
}

/// A command span carries slot, verb, latency and exit status, and never a secret or
/// the command text.
fn assert_command_span_attributes(attributes: &[opentelemetry::KeyValue]) {
    let attrs: HashMap<String, String> = attributes
        .iter()
        .map(|kv| (kv.key.to_string(), kv.value.to_string()))
        .collect();
    // The NQN-collision lookup selects by NQN, not by slot.
    let slot = attrs.get("rds.slot").map(String::as_str);
    assert!(slot == Some("pvc-traced") || slot == Some(""), "{attrs:?}");
    assert!(
        attrs.contains_key("rds.verb") && attrs.contains_key("rds.latency_ms"),
        "{attrs:?}"
    );
    assert!(attrs.contains_key("rds.exit_status"), "{attrs:?}");
    for v in attrs.values() {
        assert!(
            !v.contains("PRIVATE KEY") && !v.contains("/disk add"),
            "no secrets, no command text: {v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_command_spans_are_children_of_the_callers_span() {
    use opentelemetry::trace::TraceContextExt;
    use tracing::Instrument;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let tel = rds_bus::testing::telemetry();
    let env = common::env(Opts::default()).await;
    let mut c = env.client();
    let span = tracing::info_span!("test.caller", otel.kind = "client");
    let trace_id = rds_bus::testing::trace_id_of(&span);
    let caller_id = span.context().span().span_context().span_id();
    c.create_volume(create_req("pvc-traced", GIB))
        .instrument(span.clone())
        .await
        .unwrap();
    drop(span);
    let spans = tel
        .wait_for(trace_id, |s| {
            s.iter().filter(|x| x.name.starts_with("RouterOS ")).count() >= 4
                && s.iter().any(|x| x.name == "test.caller")
        })
        .await;
    let cmd_spans: Vec<_> = spans
        .iter()
        .filter(|s| s.name.starts_with("RouterOS "))
        .collect();
    let with_slot = cmd_spans
        .iter()
        .filter(|s| {
            s.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "rds.slot" && kv.value.to_string() == "pvc-traced")
        })
        .count();
    assert!(with_slot >= 3, "print, add, print carry the slot");
    assert!(
        cmd_spans.len() == 3,
        "batched check, add, verify: {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let by_id: HashMap<_, _> = spans
        .iter()
        .map(|s| (s.span_context.span_id(), s))
        .collect();
    for s in &cmd_spans {
        // Walk up: command → handler → grpc server (remote parent) → caller.
        let (reached, chain) = walk_to_caller(&s.name, s.parent_span_id, caller_id, |id| {
            by_id
                .get(&id)
                .map(|p| (p.name.to_string(), p.parent_span_id))
        });
        assert!(reached, "command span not under the caller: {chain:?}");
        assert_command_span_attributes(&s.attributes);
    }
    let add = cmd_spans
        .iter()
        .find(|s| s.name == "RouterOS disk add")
        .expect("add span");
    let parent = by_id.get(&add.parent_span_id).expect("handler span");
    assert_eq!(parent.name, "CreateVolume");
    env.shutdown().await;
}

// ---------------------------------------------------------------- benchmarks

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: cargo test -p rds-agent --test agent_faults -- --ignored --nocapture"]
async fn bench_create_delete_agent_vs_bare_ssh() {
    use async_ssh2_tokio::client::{AuthMethod, Client, ServerCheckMethod};
    const RUNS: usize = 60;
    let env = common::env(Opts::default()).await;
    let mut c = env.client();
    // Warm up (connections established) and learn the exact command sequence.
    c.create_volume(create_req("pvc-warm", GIB)).await.unwrap();
    c.delete_volume(delete_req("pvc-warm")).await.unwrap();
    let before = env.commands().len();
    c.create_volume(create_req("pvc-seq", GIB)).await.unwrap();
    c.delete_volume(delete_req("pvc-seq")).await.unwrap();
    let sequence: Vec<String> = env.commands()[before..].to_vec();
    println!("commands per create+delete: {}", sequence.len());
    for s in &sequence {
        println!("  {s}");
    }

    let mut agent_times = Vec::new();
    for i in 0..RUNS {
        let id = format!("pvc-bench-{i}");
        let t = Instant::now();
        c.create_volume(create_req(&id, GIB)).await.unwrap();
        c.delete_volume(delete_req(&id)).await.unwrap();
        agent_times.push(t.elapsed());
    }

    let pem = key(1)
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .unwrap();
    let host_b64 = env.sim.host_public_key().to_openssh().unwrap();
    // Same TCP_NODELAY as the agent's connections (async-ssh2-tokio's default
    // leaves Nagle on, which adds ~40 ms per command on loopback).
    let bare = Client::connect_with_config(
        ("127.0.0.1", env.sim.addr().port()),
        "admin",
        AuthMethod::with_key(&pem, None),
        ServerCheckMethod::with_public_key(host_b64.split_whitespace().nth(1).unwrap()),
        async_ssh2_tokio::Config {
            nodelay: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut bare_times = Vec::new();
    for i in 0..RUNS {
        let id = format!("pvc-bare-{i}");
        let t = Instant::now();
        for cmd in &sequence {
            let cmd = cmd.replace("pvc-seq", &id);
            let r = bare.execute(&cmd).await.unwrap();
            assert_eq!(r.exit_status, 0, "{cmd}: {r:?}");
        }
        bare_times.push(t.elapsed());
    }
    assert!(env.sim.disks().is_empty());
    let (ma, mb) = (median(agent_times), median(bare_times));
    println!(
        "BENCH create+delete median over {RUNS} runs: rds-agent (gRPC+SSH) {:.2} ms, bare SSH client {:.2} ms, overhead {:.2} ms",
        ma.as_secs_f64() * 1e3,
        mb.as_secs_f64() * 1e3,
        (ma.as_secs_f64() - mb.as_secs_f64()) * 1e3
    );
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: cargo test -p rds-agent --test agent_faults -- --ignored --nocapture"]
async fn bench_100_concurrent_creates_at_50ms_latency() {
    let env = common::env(Opts {
        agent_args: vec![
            "--max-connections".into(),
            "2".into(),
            "--max-sessions".into(),
            "8".into(),
            "--queue-timeout".into(),
            "30s".into(),
        ],
        ..Opts::default()
    })
    .await;
    let mut c = env.client();
    c.probe(ProbeRequest {}).await.unwrap();
    env.sim
        .faults()
        .add(FaultRule::new(FaultAction::Latency(Duration::from_millis(
            50,
        ))));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let mut c = env.client();
        tasks.push(tokio::spawn(async move {
            c.create_volume(create_req(&format!("pvc-c{i:03}"), GIB))
                .await
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        if let Err(s) = t.await.unwrap() {
            failures.push(s.code());
        }
    }
    let wall = t.elapsed();
    let disks = env.sim.disks();
    let mut per_slot: HashMap<String, usize> = HashMap::new();
    for d in &disks {
        *per_slot.entry(d.slot.clone()).or_default() += 1;
    }
    let duplicates = per_slot.values().filter(|n| **n > 1).count();
    let adds: usize = (0..100)
        .map(|i| env.adds_for(&format!("pvc-c{i:03}")))
        .sum();
    println!(
        "BENCH 100 concurrent CreateVolume at 50 ms/command, 2 connections, 8 sessions: wall {:.2} s, failures {} {:?}, disks {}, duplicates {}, /disk add sent {}",
        wall.as_secs_f64(),
        failures.len(),
        failures,
        disks.len(),
        duplicates,
        adds
    );
    // Where the time went, as the sim saw it (its own per-command latency).
    let mut per_verb: HashMap<String, Vec<u64>> = HashMap::new();
    for line in env.commands_log().lines() {
        let lat = line
            .split(' ')
            .find_map(|t| t.strip_prefix("latency_ms="))
            .and_then(|v| v.parse::<u64>().ok());
        let verb = line
            .split_once(" cmd=")
            .map(|(_, c)| c.split(' ').take(2).collect::<Vec<_>>().join(" "));
        if let (Some(l), Some(v)) = (lat, verb) {
            per_verb.entry(v).or_default().push(l);
        }
    }
    for (verb, mut l) in per_verb {
        l.sort();
        println!(
            "  sim-side {verb}: n={} median {} ms, max {} ms",
            l.len(),
            l[l.len() / 2],
            l[l.len() - 1]
        );
    }
    assert!(failures.is_empty());
    assert_eq!(disks.len(), 100);
    assert_eq!(duplicates, 0);
    env.shutdown().await;
}
