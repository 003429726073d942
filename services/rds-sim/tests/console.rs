//! rds-sim console behaviour over real SSH (async-ssh2-tokio and OpenSSH): create, print, find,
//! copy-from, remove, file remove, duplicates, missing items, error positions, exit-status
//! variants, login suffix, restart persistence, byte-exact output, and a throughput bench.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use rds_routeros::{Legend, RenderOptions, parse_disk_print_detail, parse_file_print_detail};
use rds_sim::{CopyFromMode, DuplicateNqnMode, EmptyFindMode, ExitStatusMode, SpaceMode};

fn fixture(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/routeros/tests/fixtures")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn legend_text(width: usize) -> String {
    let opts = RenderOptions {
        width,
        ..RenderOptions::default()
    };
    Legend::rose_storage()
        .render_lines(&opts)
        .iter()
        .map(|l| format!("{l}\r\n"))
        .collect()
}

#[tokio::test]
async fn create_print_find_remove_keeps_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(config(dir.path())).await;
    let c = connect(&sim).await;
    let slot = format!("pvc-{UUID}");
    let path = format!("/storage-pool/metal-csi/{slot}.img");

    ok(&c, &add_cmd(&slot, "5G")).await;
    let disks = sim.disks();
    assert_eq!(disks.len(), 1);
    assert_eq!(
        (disks[0].slot.as_str(), disks[0].size, disks[0].export),
        (slot.as_str(), 5 << 30, true)
    );
    assert!(sim.file_exists(&path) && sim.file_exists(&path[1..]));
    let md = std::fs::metadata(sim.host_path(&path).unwrap()).unwrap();
    assert_eq!(md.len(), 5 << 30);
    assert!(
        std::os::unix::fs::MetadataExt::blocks(&md) * 512 < 1 << 20,
        "backing file is sparse"
    );

    let (out, st) = run(&c, &format!("/disk print detail where slot={slot}")).await;
    assert_eq!(st, 0);
    assert!(out.starts_with("Flags: X - DISABLED;"), "{out}");
    assert!(!out.contains("status"), "no status field");
    assert!(out.lines().all(|l| l.len() <= 78), "wrapped at 78:\n{out}");
    assert!(out.ends_with("\r\n\r\n"));
    let recs = parse_disk_print_detail(&out).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].slot.as_deref(), Some(slot.as_str()));
    assert_eq!(recs[0].size, Some(5 << 30));
    assert_eq!(recs[0].file_path.as_deref(), Some(path.as_str()));
    assert_eq!(
        recs[0].nvme_tcp_server_nqn.as_deref(),
        Some(format!("nqn.2000-02.com.mikrotik:{slot}").as_str())
    );
    assert!(recs[0].has_flag('t') && recs[0].has_flag('B'));

    // find returns the internal id; :put prints it.
    let (out, _) = run(&c, &format!(":put [/disk find slot={slot}]")).await;
    assert_eq!(out, format!("{}\r\n", disks[0].id));
    let (out, _) = run(
        &c,
        &format!(":put [/disk get [find slot={slot}] file-size]"),
    )
    .await;
    assert_eq!(out, "5368709120\r\n");

    // Remove leaves the file (docs/routeros.md §6.6), then /file remove deletes it.
    ok(&c, &format!("/disk remove [find slot={slot}]")).await;
    assert!(sim.disks().is_empty());
    assert!(
        sim.file_exists(&path),
        "disk remove must not delete the backing file"
    );
    let (out, _) = run(
        &c,
        r#"/file print detail where name~"storage-pool/metal-csi""#,
    )
    .await;
    let files = parse_file_print_detail(&out).unwrap();
    let names: Vec<_> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, vec!["storage-pool/metal-csi", &path[1..]]);
    assert_eq!(files[1].file_type.as_deref(), Some(".img file"));
    assert_eq!(
        files[1].size.as_ref().map(|s| s.text.as_str()),
        Some("5120.0MiB")
    );
    ok(&c, &format!(r#"/file remove [find name="{}"]"#, &path[1..])).await;
    assert!(!sim.file_exists(&path));
    // A leading slash matches nothing: silent no-op (docs/routeros.md §6.6).
    ok(&c, &format!(r#"/file remove [find name="{path}"]"#)).await;
    ok(&c, &format!("/disk remove [find slot={slot}]")).await;

    // Several commands per exec; the log has one line per exec.
    let (out, st) = run(&c, "/disk print count-only; /file print count-only").await;
    assert_eq!((out.as_str(), st), ("1\r\n2\r\n", 0));
    let log = std::fs::read_to_string(sim.commands_log()).unwrap();
    assert!(log.lines().count() >= 9, "{log}");
    let last = log.lines().last().unwrap();
    assert!(
        last.contains(" conn=") && last.contains(" exit=0 ") && last.contains(" latency_ms="),
        "{last}"
    );
    assert!(
        last.ends_with("cmd=/disk print count-only; /file print count-only"),
        "{last}"
    );
    sim.stop().await;
}

#[tokio::test]
async fn where_regex_is_unanchored_and_legend_is_always_printed() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(config(dir.path()).local_mode()).await;
    let c = connect(&sim).await;
    for s in ["pvc-a", "snap-pvc-b", "my-pvc", "other"] {
        ok(&c, &add_cmd(s, "1G")).await;
    }
    let slots = |out: &str| -> Vec<String> {
        parse_disk_print_detail(out)
            .unwrap()
            .into_iter()
            .filter_map(|r| r.slot)
            .collect()
    };
    let (out, _) = run(&c, r#"/disk print detail where slot~"pvc""#).await;
    assert_eq!(slots(&out), vec!["pvc-a", "snap-pvc-b", "my-pvc"]);
    let (out, _) = run(&c, r#"/disk/print detail where slot~"^pvc" or slot=other"#).await;
    assert_eq!(slots(&out), vec!["pvc-a", "other"]);
    let (out, _) = run(
        &c,
        r#"/disk print detail where slot~"pvc" && !(slot~"snap")"#,
    )
    .await;
    assert_eq!(slots(&out), vec!["pvc-a", "my-pvc"]);
    // Nothing matches: the legend alone, then a blank line.
    let (out, st) = run(&c, "/disk print detail where slot=pvc-nothing").await;
    assert_eq!(st, 0);
    assert_eq!(out, format!("{}\r\n", legend_text(78)));
    // The pool record answers GetCapacity.
    let (out, _) = run(&c, r#"/disk print detail where mount-point="storage-pool""#).await;
    let pool = parse_disk_print_detail(&out).unwrap();
    assert_eq!(pool.len(), 1);
    assert_eq!(pool[0].size, Some(100 << 30));
    assert!(pool[0].free.unwrap() <= 100 << 30);
    assert_eq!(pool[0].mount_point.as_deref(), Some("storage-pool"));
    // Print numbers are global positions (pool = 0).
    assert_eq!(pool[0].number, Some(0));
    let (out, _) = run(&c, "/disk print detail where slot=other").await;
    assert_eq!(parse_disk_print_detail(&out).unwrap()[0].number, Some(4));
    let (out, _) = run(&c, "/system resource print").await;
    assert!(
        out.contains("board-name: ") && out.contains("version: 7.16 (stable)"),
        "{out}"
    );
    let (out, _) = run(&c, "/disk monitor-traffic storage-pool once").await;
    assert!(
        out.starts_with("                  slot: storage-pool\r\n"),
        "{out}"
    );
    sim.stop().await;
}

fn write_at(p: &std::path::Path, off: u64, data: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    f.seek(SeekFrom::Start(off)).unwrap();
    f.write_all(data).unwrap();
}

fn read_at(p: &std::path::Path, off: u64, n: usize) -> Vec<u8> {
    let mut f = std::fs::File::open(p).unwrap();
    f.seek(SeekFrom::Start(off)).unwrap();
    let mut b = vec![0; n];
    f.read_exact(&mut b).unwrap();
    b
}

#[tokio::test]
async fn copy_from_properties_only_is_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(config(dir.path())).await;
    let c = connect(&sim).await;
    ok(&c, &add_cmd("pvc-src", "1G")).await;
    let src = sim
        .host_path("/storage-pool/metal-csi/pvc-src.img")
        .unwrap();
    write_at(&src, 4096, b"payload");
    // The Go driver's snapshot command: properties (export + NQN) are inherited, so the
    // default duplicate-NQN policy refuses it.
    let snap = "/disk add type=file copy-from=[find slot=pvc-src] file-path=/storage-pool/metal-csi/snap-1.img slot=snap-1";
    let (out, st) = run(&c, snap).await;
    assert_eq!(
        (out.as_str(), st),
        (
            "failure: nvme-tcp-server-nqn already used on this port\r\n",
            1
        )
    );
    assert_eq!(sim.disks().len(), 1);
    ok(&c, &format!("{snap} nvme-tcp-export=no")).await;
    let d = sim
        .disks()
        .into_iter()
        .find(|d| d.slot == "snap-1")
        .unwrap();
    assert_eq!(
        (d.size, d.export, d.nqn.as_str()),
        (1 << 30, false, "nqn.2000-02.com.mikrotik:pvc-src")
    );
    let snap_file = sim.host_path("/storage-pool/metal-csi/snap-1.img").unwrap();
    assert_eq!(
        read_at(&snap_file, 4096, 7),
        vec![0; 7],
        "properties-only: no data copied"
    );
    // copy-from of a missing item.
    let (out, st) = run(
        &c,
        "/disk add type=file copy-from=[find slot=nope] file-path=/storage-pool/x.img slot=x",
    )
    .await;
    assert_eq!((out.as_str(), st), ("no such item\r\n", 1));
    sim.stop().await;

    // With duplicate NQNs allowed the driver's command goes through and inherits the export.
    let dir2 = tempfile::tempdir().unwrap();
    let mut cfg = config(dir2.path());
    cfg.behaviour.duplicate_nqn = DuplicateNqnMode::Allow;
    let sim = start(cfg).await;
    let c = connect(&sim).await;
    ok(&c, &add_cmd("pvc-src", "1G")).await;
    ok(&c, snap).await;
    let d = sim
        .disks()
        .into_iter()
        .find(|d| d.slot == "snap-1")
        .unwrap();
    assert!(d.export);
    sim.stop().await;
}

#[tokio::test]
async fn copy_from_data_clone_copies_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.behaviour.copy_from = CopyFromMode::DataClone;
    let sim = start(cfg).await;
    let c = connect(&sim).await;
    ok(&c, &add_cmd("pvc-src", "1G")).await;
    let src = sim
        .host_path("/storage-pool/metal-csi/pvc-src.img")
        .unwrap();
    write_at(&src, (1 << 30) - 7, b"the-end");
    write_at(&src, 1 << 20, b"middle");
    ok(&c, "/disk add type=file copy-from=[find slot=pvc-src] file-path=/storage-pool/metal-csi/snap-1.img slot=snap-1 nvme-tcp-export=no").await;
    // Restore into a bigger volume (the Go RestoreSnapshot command).
    ok(&c, "/disk add type=file copy-from=[find slot=snap-1] file-path=/storage-pool/metal-csi/pvc-new.img file-size=2G slot=pvc-new nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:pvc-new").await;
    for f in ["snap-1", "pvc-new"] {
        let p = sim
            .host_path(&format!("/storage-pool/metal-csi/{f}.img"))
            .unwrap();
        assert_eq!(read_at(&p, (1 << 30) - 7, 7), b"the-end");
        assert_eq!(read_at(&p, 1 << 20, 6), b"middle");
        let md = std::fs::metadata(&p).unwrap();
        assert!(
            std::os::unix::fs::MetadataExt::blocks(&md) * 512 < 4 << 20,
            "clone stays sparse"
        );
    }
    let new = sim
        .disks()
        .into_iter()
        .find(|d| d.slot == "pvc-new")
        .unwrap();
    assert_eq!(new.size, 2 << 30);
    // Writes to the clone do not touch the source.
    let p = sim
        .host_path("/storage-pool/metal-csi/pvc-new.img")
        .unwrap();
    write_at(&p, 1 << 20, b"CHANGE");
    assert_eq!(read_at(&src, 1 << 20, 6), b"middle");
    sim.stop().await;
}

#[tokio::test]
async fn duplicates_missing_items_and_space() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.pool_size = 3 << 30;
    let sim = start(cfg).await;
    let c = connect(&sim).await;
    ok(&c, &add_cmd("pvc-1", "1G")).await;
    let (out, st) = run(&c, &add_cmd("pvc-1", "2G")).await;
    assert_eq!(
        (out.as_str(), st),
        ("failure: item with such name already exists\r\n", 1)
    );
    assert_eq!(sim.disks()[0].size, 1 << 30, "no state change");
    let (out, st) = run(&c, "/disk remove nosuchslot").await;
    assert_eq!((out.as_str(), st), ("no such item\r\n", 1));
    let (out, st) = run(&c, "/file remove nosuchfile").await;
    assert_eq!((out.as_str(), st), ("no such item\r\n", 1));
    // Empty find: silent no-op by default.
    ok(&c, "/disk set [find slot=pvc-x] file-size=10G").await;
    ok(&c, "/disk remove [find slot=pvc-x]").await;
    // Resize grows the file.
    ok(&c, "/disk set [find slot=pvc-1] file-size=2G").await;
    assert_eq!(sim.disks()[0].size, 2 << 30);
    assert_eq!(
        std::fs::metadata(sim.host_path("storage-pool/metal-csi/pvc-1.img").unwrap())
            .unwrap()
            .len(),
        2 << 30
    );
    // Re-adding over an existing file attaches it (keeps contents).
    ok(&c, "/disk remove [find slot=pvc-1]").await;
    write_at(
        &sim.host_path("storage-pool/metal-csi/pvc-1.img").unwrap(),
        0,
        b"old",
    );
    ok(
        &c,
        "/disk add type=file file-path=/storage-pool/metal-csi/pvc-1.img slot=pvc-1",
    )
    .await;
    assert_eq!(sim.disks()[0].size, 2 << 30);
    assert_eq!(
        read_at(
            &sim.host_path("storage-pool/metal-csi/pvc-1.img").unwrap(),
            0,
            3
        ),
        b"old"
    );
    // Sparse (default): larger than the pool still succeeds.
    ok(&c, &add_cmd("pvc-big", "10G")).await;
    // A runtime error stops the line; earlier commands took effect.
    let (out, st) = run(
        &c,
        "/disk remove [find slot=pvc-big]; /disk remove nosuch; /disk remove [find slot=pvc-1]",
    )
    .await;
    assert_eq!((out.as_str(), st), ("no such item\r\n", 1));
    assert_eq!(
        sim.disks()
            .iter()
            .map(|d| d.slot.as_str())
            .collect::<Vec<_>>(),
        vec!["pvc-1"]
    );
    sim.stop().await;

    // Strict space and "no such item" for empty finds.
    let dir2 = tempfile::tempdir().unwrap();
    let mut cfg = config(dir2.path());
    cfg.pool_size = 3 << 30;
    cfg.behaviour.space = SpaceMode::Strict;
    cfg.behaviour.empty_find = EmptyFindMode::NoSuchItem;
    let sim = start(cfg).await;
    let c = connect(&sim).await;
    ok(&c, &add_cmd("pvc-1", "2G")).await;
    let (out, st) = run(&c, &add_cmd("pvc-2", "2G")).await;
    assert_eq!((out.as_str(), st), ("failure: not enough space\r\n", 1));
    assert!(!sim.file_exists("/storage-pool/metal-csi/pvc-2.img"));
    let (out, _) = run(&c, "/disk remove [find slot=pvc-x]").await;
    assert_eq!(out, "no such item\r\n");
    sim.stop().await;
}

#[tokio::test]
async fn syntax_errors_carry_routeros_positions() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(config(dir.path())).await;
    let c = connect(&sim).await;
    let cases = [
        (
            "/system/resource/print bogus=1",
            "expected end of command (line 1 column 24)",
        ),
        ("/nonsense/command", "syntax error (line 1 column 10)"),
        ("/foo", "bad command name foo (line 1 column 2)"),
        (
            "/disk add type=file slot= file-path=/storage-pool/a.img",
            "expected end of command (line 1 column 36)",
        ),
        // The Go driver's QuoteMeta incident: `\.` is not a legal escape.
        (
            r#"/file remove [find name~"storage-pool/metal-csi/x\.img"]"#,
            "syntax error (line 1 column 50)",
        ),
        (
            "/disk add type=file slot=a$b",
            "syntax error (line 1 column 27)",
        ),
        (
            "/disk print where slot='x'",
            "syntax error (line 1 column 24)",
        ),
        (r#"/disk add slot="abc"#, "syntax error (line 1 column 16)"),
        (
            "/disk add type=file bogus=1",
            "expected end of command (line 1 column 21)",
        ),
    ];
    for (cmd, want) in cases {
        let (out, st) = run(&c, cmd).await;
        assert_eq!(
            (out.as_str(), st),
            (format!("{want}\r\n").as_str(), 1),
            "{cmd}"
        );
    }
    // Escapes that are legal decode as RouterOS does.
    ok(
        &c,
        r#"/disk add type=file file-path="/storage-pool/\70\76\63.img" file-size=1M slot="\48I""#,
    )
    .await;
    assert_eq!(sim.disks()[0].slot, "HI");
    assert_eq!(sim.disks()[0].file_path, "/storage-pool/pvc.img");
    // A parse error anywhere rejects the whole line before anything runs.
    let (out, _) = run(&c, &format!("{}; /disk frob", add_cmd("pvc-z", "1G"))).await;
    assert!(
        out.starts_with("bad command name frob (line 1 column "),
        "{out}"
    );
    assert!(!sim.disks().iter().any(|d| d.slot == "pvc-z"));
    // Values are validated.
    let (out, _) = run(
        &c,
        "/disk add type=file file-path=/storage-pool/q.img file-size=1Gx slot=q",
    )
    .await;
    assert_eq!(
        out,
        "value of file-size contains invalid trailing characters\r\n"
    );
    let (out, _) = run(&c, "/disk add type=bogus slot=q").await;
    assert_eq!(out, "input does not match any value of type\r\n");
    sim.stop().await;
}

#[tokio::test]
async fn exit_status_variants() {
    for (mode, ok_status, err_status) in [
        (ExitStatusMode::ZeroOrOne, Some(0), Some(1)),
        (ExitStatusMode::AlwaysZero, Some(0), Some(0)),
        (ExitStatusMode::Missing, None, None),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.behaviour.exit_status = mode;
        let sim = start(cfg).await;
        let c = connect(&sim).await;
        let (out, err, st) = raw(&c, "/disk print count-only").await;
        assert_eq!(
            (out, err, st),
            (b"1\r\n".to_vec(), Vec::new(), ok_status),
            "{mode:?}"
        );
        let (out, _, st) = raw(&c, "/disk remove nosuch").await;
        assert_eq!(
            (out, st),
            (b"no such item\r\n".to_vec(), err_status),
            "{mode:?}"
        );
        sim.stop().await;
    }
}

#[tokio::test]
async fn login_suffix_sets_width_and_any_user_with_a_key_may_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(config(dir.path()).local_mode()).await;
    let c = connect(&sim).await;
    ok(&c, &add_cmd(&format!("pvc-{UUID}"), "5G")).await;
    let cmd = format!("/disk print detail where slot=pvc-{UUID}");
    let (narrow, _) = run(&c, &cmd).await;
    assert!(narrow.lines().all(|l| l.len() <= 78));
    let wide_client = try_connect_as(&sim, "admin+cet1024w", &key(1))
        .await
        .expect("suffix stripped before key check");
    let (wide, _) = run(&wide_client, &cmd).await;
    let record: Vec<_> = wide.lines().filter(|l| l.contains("type=file")).collect();
    assert_eq!(record.len(), 1);
    assert!(
        record[0].len() > 500 && record[0].ends_with("file-offset=0"),
        "{wide}"
    );
    assert_eq!(
        parse_disk_print_detail(&wide).unwrap(),
        parse_disk_print_detail(&narrow).unwrap()
    );
    // Another user name is fine; an unknown key is not.
    assert!(try_connect_as(&sim, "operator", &key(1)).await.is_ok());
    assert!(try_connect_as(&sim, "admin", &key(2)).await.is_err());
    sim.stop().await;
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(config(dir.path())).await;
    let fp = sim.host_key_fingerprint();
    let c = connect(&sim).await;
    ok(&c, &add_cmd("pvc-1", "1G")).await;
    ok(&c, &add_cmd("pvc-2", "1G")).await;
    ok(&c, "/disk remove [find slot=pvc-2]").await;
    let before = sim.disks();
    write_at(
        &sim.host_path("storage-pool/metal-csi/pvc-1.img").unwrap(),
        0,
        b"kept",
    );
    sim.stop().await;
    drop(c);

    let sim = start(config(dir.path())).await;
    assert_eq!(
        sim.host_key_fingerprint(),
        fp,
        "host key stable across restarts"
    );
    assert_eq!(sim.disks(), before);
    assert_eq!(
        read_at(
            &sim.host_path("storage-pool/metal-csi/pvc-1.img").unwrap(),
            0,
            4
        ),
        b"kept"
    );
    assert!(sim.file_exists("storage-pool/metal-csi/pvc-2.img"));
    let c = connect(&sim).await;
    ok(&c, &add_cmd("pvc-3", "1G")).await;
    let ids: Vec<_> = sim.disks().into_iter().map(|d| d.id).collect();
    assert_eq!(ids, vec!["*2", "*4"], "ids are never reused");
    sim.stop().await;
}

/// The synthesized record of docs/routeros.md §4.7, byte for byte (the legend there has a placeholder).
#[tokio::test]
async fn disk_print_detail_matches_the_synthesized_record() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(config(dir.path()).local_mode()).await;
    let c = connect(&sim).await;
    // 30 disks first, so the volume gets print number 31 as in the reference.
    let many: Vec<String> = (0..30)
        .map(|i| {
            format!(
                "/disk add type=file file-path=/storage-pool/fill/f{i}.img file-size=1M slot=f{i}"
            )
        })
        .collect();
    ok(&c, &many.join("; ")).await;
    ok(&c, &add_cmd(&format!("pvc-{UUID}"), "5G")).await;
    let (out, _) = run(&c, &format!("/disk print detail where slot=pvc-{UUID}")).await;
    let want = fixture("disk_synth_file.txt");
    let want_record: String = want.split_inclusive("\r\n").skip(2).collect();
    let legend = legend_text(78);
    let record = out.strip_prefix(&legend).expect("legend first");
    // Default flag layout = the synthesized records' positions: every byte
    // (number, flags, property column 15, packing, cuts, CRLF, blank line).
    assert_eq!(&want_record[..15], "31 B   t       ");
    assert_eq!(record, want_record);
    sim.stop().await;

    // The other [INF] layout (one position per legend column, X first, as
    // the ax3 capture lays out its legend) moves only the flag letters.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path()).local_mode();
    cfg.behaviour.flag_layout = rds_sim::FlagLayout::LegendColumns;
    let sim = start(cfg).await;
    let c = connect(&sim).await;
    ok(&c, &many.join("; ")).await;
    ok(&c, &add_cmd(&format!("pvc-{UUID}"), "5G")).await;
    let (out, _) = run(&c, &format!("/disk print detail where slot=pvc-{UUID}")).await;
    let record = out.strip_prefix(&legend).expect("legend first");
    let flags = Legend::rose_storage().flag_block(&['B', 't']);
    assert_eq!(&record[..15], format!("31 {flags:<12}"));
    assert_ne!(&record[..15], &want_record[..15]);
    assert_eq!(&record[15..], &want_record[15..]);
    sim.stop().await;
}

/// The synthesized records of docs/routeros.md §4.9, byte for byte (plus the blank line after
/// each record that docs/routeros.md §4.4 and MikroTik's example show; the synthesized block
/// omits it).
#[tokio::test]
async fn file_print_detail_matches_the_synthesized_records() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(config(dir.path())).await;
    let c = connect(&sim).await;
    for i in 1..=6 {
        ok(
            &c,
            &format!("/file add name=storage-pool/a{i} type=directory"),
        )
        .await;
    }
    ok(&c, &add_cmd(&format!("pvc-{UUID}"), "5G")).await;
    let set_mtime = |p: &str, unix: u64| {
        let f = std::fs::File::open(sim.host_path(p).unwrap()).unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(unix))
            .unwrap();
    };
    set_mtime(
        &format!("storage-pool/metal-csi/pvc-{UUID}.img"),
        1_762_871_561,
    ); // 2025-11-11 14:32:41
    set_mtime("storage-pool/metal-csi", 1_762_879_627); // 2025-11-11 16:47:07
    let (out, _) = run(
        &c,
        r#"/file print detail where name~"storage-pool/metal-csi""#,
    )
    .await;
    let without_blank: String = out
        .split_inclusive("\r\n")
        .filter(|l| *l != "\r\n")
        .collect();
    assert_eq!(without_blank, fixture("file_synth.txt"));
    assert_eq!(out.matches("\r\n\r\n").count(), 2, "{out:?}");
    sim.stop().await;
}

/// The client key and a known_hosts pinning the sim, for OpenSSH.
fn openssh_files(dir: &std::path::Path, sim: &rds_sim::SimHandle) -> (PathBuf, PathBuf) {
    let keyfile = dir.join("id");
    std::fs::write(
        &keyfile,
        key(1)
            .to_openssh(russh::keys::ssh_key::LineEnding::LF)
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    std::fs::set_permissions(
        &keyfile,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let known = dir.join("known_hosts");
    std::fs::write(
        &known,
        format!(
            "[127.0.0.1]:{} {}\n",
            sim.addr().port(),
            sim.host_public_key().to_openssh().unwrap()
        ),
    )
    .unwrap();
    (keyfile, known)
}

#[tokio::test]
async fn openssh_client_sees_rossh_and_gets_keepalive_replies() {
    if std::process::Command::new("ssh")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!("skipping: no OpenSSH client");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sim = start(config(dir.path())).await;
    // Make the command slow so OpenSSH sends keepalive@openssh.com while waiting.
    sim.faults().add(
        rds_sim::FaultRule::new(rds_sim::FaultAction::Latency(Duration::from_secs(4)))
            .on("count-only")
            .once(),
    );
    let (keyfile, known) = openssh_files(dir.path(), &sim);
    let started = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new("ssh")
            .args(["-v", "-F", "/dev/null", "-i"])
            .arg(&keyfile)
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known.display()))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "ServerAliveInterval=1",
            ])
            .args([
                "-o",
                "ServerAliveCountMax=2",
                "-p",
                &sim.addr().port().to_string(),
                "admin+cet1024w@127.0.0.1",
            ])
            .arg("/disk print count-only")
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ssh failed: {stderr}");
    assert_eq!(out.stdout, b"1\r\n");
    assert!(
        stderr.contains("remote software version ROSSSH"),
        "{stderr}"
    );
    // Without replies OpenSSH would have given up after ~3 s.
    assert!(started.elapsed() >= Duration::from_secs(4));
    assert!(
        stderr.contains("keepalive")
            || stderr.contains("client_input_global_request")
            || stderr.contains("Exit status 0"),
        "{stderr}"
    );
    sim.stop().await;
}

#[tokio::test]
async fn channels_opened_and_closed_without_a_request_are_fine() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(config(dir.path())).await;
    let c = connect(&sim).await;
    for _ in 0..5 {
        let ch = c.get_channel().await.unwrap();
        ch.close().await.unwrap();
    }
    let (out, st) = run(&c, "/system identity print").await;
    assert_eq!((out.as_str(), st), ("  name: RDS\r\n\r\n", 0));
    sim.stop().await;
}

/// Throughput with 16 concurrent SSH clients (phase "mix": 10% `/disk add`, 90% `print detail
/// where`, ~180 disks; phase "floor": `/system identity print`). Clients run in the same
/// process and share the 2 cores. `cargo test -p rds-sim --test console -- --ignored --nocapture bench`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_16_concurrent_clients() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(config(dir.path()).local_mode()).await;
    let setup = connect(&sim).await;
    for i in 0..20 {
        ok(&setup, &add_cmd(&format!("pvc-{i:02}"), "1G")).await;
    }
    let per_client = 100usize;
    // Phase 1: the driver's mix. Phase 2: `/system identity print` = SSH + exec floor.
    for phase in ["mix", "floor"] {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for t in 0..16 {
            let sim = sim.clone();
            tasks.push(tokio::spawn(async move {
                let c = connect(&sim).await;
                let mut lat = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let cmd = if phase == "floor" {
                        "/system identity print".to_owned()
                    } else if i % 10 == 0 {
                        format!("/disk add type=file file-path=/storage-pool/metal-csi/b{t}-{i}.img file-size=1G slot=b{t}-{i}")
                    } else {
                        format!("/disk print detail where slot=pvc-{:02}", i % 20)
                    };
                    let s = Instant::now();
                    let (_, st) = run(&c, &cmd).await;
                    assert_eq!(st, 0);
                    lat.push(s.elapsed());
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let total = started.elapsed();
        all.sort();
        let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
        println!(
            "rds-sim bench [{phase}]: 16 clients x {per_client} execs in {:.2?}: {:.0} commands/s, p50 {:.2?}, p99 {:.2?}, max {:.2?}",
            total,
            all.len() as f64 / total.as_secs_f64(),
            pct(0.50),
            pct(0.99),
            all[all.len() - 1]
        );
    }
    sim.stop().await;
}

/// The agent's one-round-trip create check: `slot || nqn` disk print, then a
/// file print, each closed by a `:put` end marker (rds_routeros::Command::Batch).
#[tokio::test]
async fn batched_reads_with_or_filters_and_end_markers() {
    use rds_routeros::{Command, DiskPath, DiskSelector, FileSelector, Nqn, Slot, split_batch};
    let dir = tempfile::tempdir().unwrap();
    let sim = start(config(dir.path())).await;
    let c = connect(&sim).await;
    ok(&c, &add_cmd("pvc-a", "1G")).await;
    ok(&c, &add_cmd("pvc-b", "1G")).await;
    let slot = Slot::new("PVC-A").unwrap();
    let cmd = Command::Batch(vec![
        Command::DiskPrint(
            DiskSelector::any(vec![
                DiskSelector::Slot(slot.clone()),
                DiskSelector::Nqn(Nqn::for_volume(&slot)),
            ])
            .unwrap(),
        ),
        Command::FilePrint(FileSelector::Any(vec![
            FileSelector::Name(DiskPath::new("/storage-pool/metal-csi/PVC-A.img").unwrap()),
            FileSelector::Name(DiskPath::new("/storage-pool/metal-csi/pvc-b.img").unwrap()),
        ])),
    ]);
    let line = cmd.to_string();
    assert!(line.contains(" || nvme-tcp-server-nqn=\""), "{line}");
    let (out, st) = run(&c, &line).await;
    assert_eq!(st, 0, "{out}");
    let parts = split_batch(&out, 2).unwrap();
    let disks = parse_disk_print_detail(parts[0]).unwrap();
    assert_eq!(disks.len(), 1, "{out}");
    assert_eq!(disks[0].slot.as_deref(), Some("pvc-a"), "found by NQN");
    let files = parse_file_print_detail(parts[1]).unwrap();
    assert_eq!(files.len(), 1, "{out}");
    assert_eq!(files[0].name, "storage-pool/metal-csi/pvc-b.img");
    // Cut anywhere before the last marker: never a complete batch.
    let last = out.rfind(rds_routeros::BATCH_END).unwrap();
    for cut in 0..last {
        assert!(split_batch(&out[..cut], 2).is_err(), "cut at {cut}");
    }
}
