//! Every fault mode of docs/routeros.md §10 doing what it says, over real SSH, through the library
//! API and the HTTP control endpoint; reboot with downtime.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use rds_sim::{FaultAction, FaultRule, Garble};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn latency_after_n_and_one_shot() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(config(dir.path())).await;
    let c = connect(&sim).await;
    let id = sim.faults().add(
        FaultRule::new(FaultAction::Latency(Duration::from_millis(400)))
            .on("^/disk print")
            .after(1)
            .once(),
    );
    let timed = |cmd: &'static str| {
        let c = &c;
        async move {
            let t = Instant::now();
            run(c, cmd).await;
            t.elapsed()
        }
    };
    assert!(timed("/disk print count-only").await < Duration::from_millis(300)); // skipped (after 1)
    assert!(timed("/file print count-only").await < Duration::from_millis(300)); // no match
    assert!(timed("/disk print count-only").await >= Duration::from_millis(400)); // fires
    assert!(timed("/disk print count-only").await < Duration::from_millis(300)); // one-shot
    assert_eq!(sim.faults().fired(id), 1);
    let log = std::fs::read_to_string(sim.commands_log()).unwrap();
    let slow = log.lines().nth(2).unwrap();
    let ms: u64 = slow
        .split(" latency_ms=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ms >= 400, "{slow}");
    sim.stop().await;
}

#[tokio::test]
async fn hang_never_replies_and_has_no_effect() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(config(dir.path())).await;
    let c = connect(&sim).await;
    sim.faults()
        .add(FaultRule::new(FaultAction::Hang).on("slot=pvc-h").once());
    let r = tokio::time::timeout(
        Duration::from_millis(700),
        c.execute(&add_cmd("pvc-h", "1G")),
    )
    .await;
    assert!(r.is_err(), "hung command must not return");
    assert!(sim.disks().is_empty());
    // The connection itself still serves other channels.
    let (out, st) = run(&c, "/disk print count-only").await;
    assert_eq!((out.as_str(), st), ("1\r\n", 0));
    // Streaming monitor without `once` never returns either.
    let r = tokio::time::timeout(
        Duration::from_millis(500),
        c.execute("/disk monitor-traffic storage-pool"),
    )
    .await;
    assert!(r.is_err());
    sim.stop().await;
}

#[tokio::test]
async fn drop_before_and_after_effect() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(config(dir.path())).await;
    sim.faults().add(
        FaultRule::new(FaultAction::DropBeforeEffect)
            .on("^/disk add")
            .once(),
    );
    let c = connect(&sim).await;
    assert!(
        tokio::time::timeout(T, c.execute(&add_cmd("pvc-1", "1G")))
            .await
            .unwrap()
            .is_err()
    );
    assert!(
        sim.disks().is_empty(),
        "dropped before the command took effect"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        c.is_closed()
            || tokio::time::timeout(T, c.execute("/disk print"))
                .await
                .unwrap()
                .is_err()
    );

    sim.faults().add(
        FaultRule::new(FaultAction::DropAfterEffect)
            .on("^/disk add")
            .once(),
    );
    let c = connect(&sim).await;
    assert!(
        tokio::time::timeout(T, c.execute(&add_cmd("pvc-1", "1G")))
            .await
            .unwrap()
            .is_err()
    );
    assert_eq!(
        sim.disks().len(),
        1,
        "command took effect although the client saw a drop"
    );
    // The driver's retry then meets the duplicate (docs/routeros.md §10.8).
    let c = connect(&sim).await;
    let (out, st) = run(&c, &add_cmd("pvc-1", "1G")).await;
    assert_eq!(
        (out.as_str(), st),
        ("failure: item with such name already exists\r\n", 1)
    );
    let log = std::fs::read_to_string(sim.commands_log()).unwrap();
    assert!(
        log.contains("exit=dropped-before") && log.contains("exit=dropped-after"),
        "{log}"
    );
    sim.stop().await;
}

#[tokio::test]
async fn disk_full_error_text_and_exit_status_faults() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(config(dir.path())).await;
    let c = connect(&sim).await;
    let f = sim.faults();
    f.add(
        FaultRule::new(FaultAction::DiskFull)
            .on("^/disk add")
            .once(),
    );
    let (out, st) = run(&c, &add_cmd("pvc-1", "1G")).await;
    assert_eq!((out.as_str(), st), ("failure: not enough space\r\n", 1));
    assert!(sim.disks().is_empty());
    f.add(FaultRule::new(FaultAction::ErrorText("failure: permission denied".into())).once());
    let (out, st) = run(&c, "/disk print").await;
    assert_eq!((out.as_str(), st), ("failure: permission denied\r\n", 1));
    // Wrong exit status (0 with an error, 7 with success) and missing exit status.
    f.add(
        FaultRule::new(FaultAction::ExitStatus(Some(0)))
            .on("nosuch")
            .once(),
    );
    let (out, st) = run(&c, "/disk remove nosuch").await;
    assert_eq!((out.as_str(), st), ("no such item\r\n", 0));
    f.add(FaultRule::new(FaultAction::ExitStatus(Some(7))).once());
    let (_, st) = run(&c, "/disk print count-only").await;
    assert_eq!(st, 7);
    f.add(FaultRule::new(FaultAction::ExitStatus(None)).once());
    let (out, _, st) = raw(&c, "/disk print count-only").await;
    assert_eq!((out.as_slice(), st), (&b"1\r\n"[..], None));
    f.add(FaultRule::new(FaultAction::ExitStatus(None)).once());
    assert!(matches!(
        c.execute("/disk print").await,
        Err(async_ssh2_tokio::Error::CommandDidntExit)
    ));
    sim.stop().await;
}

#[tokio::test]
async fn garbled_output_variants() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(config(dir.path()).local_mode()).await;
    let c = connect(&sim).await;
    ok(&c, &add_cmd(&format!("pvc-{UUID}"), "5G")).await;
    let cmd = format!("/disk print detail where slot=pvc-{UUID}");
    let (clean, _, _) = raw(&c, &cmd).await;
    let g = |x: Garble| FaultRule::new(FaultAction::Garble(x)).once();
    let f = sim.faults();

    f.add(g(Garble::LfLineEndings));
    let (out, _, _) = raw(&c, &cmd).await;
    assert!(
        !out.contains(&b'\r')
            && out.len() == clean.len() - clean.iter().filter(|b| **b == b'\r').count()
    );
    f.add(g(Garble::InvalidUtf8));
    let (out, _, _) = raw(&c, &cmd).await;
    assert!(std::str::from_utf8(&out).is_err());
    f.add(g(Garble::Truncate(100)));
    let (out, _, _) = raw(&c, &cmd).await;
    assert_eq!(out, clean[..100]);
    f.add(g(Garble::Stderr));
    let (out, err, st) = raw(&c, &cmd).await;
    assert_eq!((out.len(), err, st), (0, clean.clone(), Some(0)));
    f.add(g(Garble::ExtraBlankLine));
    let (out, _, _) = raw(&c, &cmd).await;
    assert!(out.ends_with(b"\r\n\r\n\r\n"));
    f.add(g(Garble::NoTrailingBlankLine));
    let (out, _, _) = raw(&c, &cmd).await;
    assert!(out.ends_with(b"file-offset=0\r\n"));
    f.add(g(Garble::AnsiEscapes));
    let (out, _, _) = raw(&c, &cmd).await;
    assert!(out.starts_with(b"\x1b["));
    f.add(g(Garble::ConsoleLogLine));
    let (out, _, _) = raw(&c, &cmd).await;
    assert!(
        String::from_utf8_lossy(&out)
            .lines()
            .next()
            .unwrap()
            .contains(" system,error,critical ")
    );
    f.add(g(Garble::Width(200)));
    let (out, _, _) = raw(&c, &cmd).await;
    assert!(String::from_utf8_lossy(&out).lines().any(|l| l.len() > 78));
    f.add(g(Garble::CutBeforeSeparator));
    let (out, _, _) = raw(&c, &cmd).await;
    let text = String::from_utf8(out).unwrap();
    assert_ne!(text.as_bytes(), clean.as_slice());
    assert!(
        text.contains("\r\n               -"),
        "cut before a '-': {text}"
    );
    assert_eq!(
        rds_routeros::parse_disk_print_detail(&text).unwrap()[0].slot,
        rds_routeros::parse_disk_print_detail(std::str::from_utf8(&clean).unwrap()).unwrap()[0]
            .slot
    );
    sim.stop().await;
}

#[tokio::test]
async fn auth_faults_and_host_key_change() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(config(dir.path())).await;
    let f = sim.faults();
    let id = f.add(
        FaultRule::new(FaultAction::RejectAuth)
            .on("^admin$")
            .after(1),
    );
    assert!(try_connect_as(&sim, "admin", &key(1)).await.is_ok()); // first passes (after 1)
    assert!(try_connect_as(&sim, "admin", &key(1)).await.is_err());
    assert!(
        try_connect_as(&sim, "admin+cet1024w", &key(1))
            .await
            .is_err(),
        "suffix stripped before matching"
    );
    assert!(
        try_connect_as(&sim, "other", &key(1)).await.is_ok(),
        "only the matching user"
    );
    f.remove(id);
    assert!(try_connect_as(&sim, "admin", &key(1)).await.is_ok());

    let fp = sim.host_key_fingerprint();
    let id = f.add(FaultRule::new(FaultAction::HostKeyChange));
    let e = try_connect_as(&sim, "admin", &key(1)).await;
    assert!(e.is_err(), "a client pinning the old key must refuse");
    f.remove(id);
    assert!(try_connect_as(&sim, "admin", &key(1)).await.is_ok());
    assert_eq!(sim.host_key_fingerprint(), fp);
    sim.stop().await;
}

#[tokio::test]
async fn session_limit_handshake_delay_and_close_after_ident() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(config(dir.path())).await;
    let f = sim.faults();
    let c = connect(&sim).await;
    let id = f.add(FaultRule::new(FaultAction::SessionLimit(1)));
    let first = c.get_channel().await.unwrap();
    assert!(
        c.get_channel().await.is_err(),
        "second channel refused at the limit"
    );
    first.close().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (out, _) = run(&c, "/disk print count-only").await;
    assert_eq!(out, "1\r\n");
    f.remove(id);

    let id = f.add(FaultRule::new(FaultAction::HandshakeDelay(Duration::from_millis(600))).once());
    let t = Instant::now();
    let _c2 = connect(&sim).await;
    assert!(t.elapsed() >= Duration::from_millis(600));
    assert_eq!(f.fired(id), 1);

    f.add(FaultRule::new(FaultAction::CloseAfterIdent).times(2));
    let mut s = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(T, s.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"SSH-2.0-ROSSSH\r\n");
    assert!(try_connect_as(&sim, "admin", &key(1)).await.is_err());
    assert!(try_connect_as(&sim, "admin", &key(1)).await.is_ok());
    sim.stop().await;
}

#[tokio::test]
async fn reboot_refuses_tcp_then_comes_back_with_state() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(config(dir.path())).await;
    let c = connect(&sim).await;
    ok(&c, &add_cmd("pvc-1", "1G")).await;
    // A command-triggered reboot (fault) drops the session before the command runs.
    sim.faults().add(
        FaultRule::new(FaultAction::Reboot(Duration::from_millis(800)))
            .on("^/disk remove")
            .once(),
    );
    assert!(
        tokio::time::timeout(T, c.execute("/disk remove [find slot=pvc-1]"))
            .await
            .unwrap()
            .is_err()
    );
    assert!(
        tokio::net::TcpStream::connect(sim.addr()).await.is_err(),
        "refused while down"
    );
    assert!(sim.wait_up(Duration::from_secs(5)).await);
    let c = connect(&sim).await;
    assert_eq!(sim.disks().len(), 1, "state intact, command did not run");
    let (out, _) = run(&c, "/system resource print").await;
    assert!(
        out.contains("uptime: 0s") || out.contains("uptime: 1s"),
        "{out}"
    );

    // The library API and `/system reboot`.
    sim.reboot(Duration::from_millis(300)).await;
    assert!(c.execute("/disk print").await.is_err());
    assert!(tokio::net::TcpStream::connect(sim.addr()).await.is_err());
    assert!(sim.wait_up(Duration::from_secs(5)).await);
    let mut cfg = config(dir.path());
    cfg.behaviour.reboot_downtime_ms = 300;
    sim.stop().await;
    let sim = start(cfg).await;
    let c = connect(&sim).await;
    let _ = tokio::time::timeout(T, c.execute("/system reboot"))
        .await
        .unwrap();
    assert!(tokio::net::TcpStream::connect(sim.addr()).await.is_err());
    assert!(sim.wait_up(Duration::from_secs(5)).await);
    assert_eq!(sim.disks().len(), 1);
    sim.stop().await;
}

async fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    tokio::time::timeout(T, s.read_to_string(&mut resp))
        .await
        .unwrap()
        .unwrap();
    let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn control_endpoint_drives_faults_and_reboot() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(config(dir.path())).await;
    let ctl = rds_sim::serve_control(sim.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (st, body) = http(
        ctl,
        "POST",
        "/faults",
        r#"{"command":"^/disk add","times":1,"action":"disk-full"}"#,
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"id\""), "{body}");
    let (st, _) = http(ctl, "POST", "/faults", r#"{"command":"(","action":"hang"}"#).await;
    assert_eq!(st, 400, "bad regex refused");
    let c = connect(&sim).await;
    let (out, _) = run(&c, &add_cmd("pvc-1", "1G")).await;
    assert_eq!(out, "failure: not enough space\r\n");
    let (_, list) = http(ctl, "GET", "/faults", "").await;
    assert!(
        list.contains("\"fired\":1") && list.contains("disk-full"),
        "{list}"
    );
    ok(&c, &add_cmd("pvc-1", "1G")).await;
    let (_, disks) = http(ctl, "GET", "/disks", "").await;
    assert!(disks.contains("\"slot\":\"pvc-1\""), "{disks}");
    let (st, _) = http(ctl, "DELETE", "/faults", "").await;
    assert_eq!(st, 204);
    assert!(sim.faults().list().is_empty());
    let (st, _) = http(ctl, "POST", "/reboot", r#"{"downtime_ms":300}"#).await;
    assert_eq!(st, 202);
    assert!(tokio::net::TcpStream::connect(sim.addr()).await.is_err());
    assert!(sim.wait_up(Duration::from_secs(5)).await);
    sim.stop().await;
}
