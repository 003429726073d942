//! Parsers read every capture of docs/routeros.md §4; renderers reproduce them byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rds_routeros::*;

fn fx(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn lf(s: &str) -> String {
    s.replace("\r\n", "\n")
}

fn crlf(s: &str) -> String {
    lf(s).replace('\n', "\r\n")
}

const NQN: &str = "nqn.2000-02.com.mikrotik:pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8";
const PATH: &str = "/storage-pool/metal-csi/pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8.img";

// ---------- /disk: synthesized full record with cut tokens ----------

fn check_synth_file(recs: &[DiskRecord]) {
    assert_eq!(recs.len(), 1, "legend continuation lines are not records");
    let r = &recs[0];
    assert_eq!(r.number, Some(31));
    assert_eq!(r.flags, "B   t");
    assert!(r.has_flag('B') && r.has_flag('t') && !r.has_flag('X'));
    assert_eq!(r.disk_type.as_deref(), Some("file"));
    assert_eq!(
        r.slot.as_deref(),
        Some("pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8")
    );
    assert_eq!(r.slot_default.as_deref(), Some(""));
    assert_eq!(r.parent.as_deref(), Some(""));
    assert_eq!(r.fs.as_deref(), Some("-"));
    assert_eq!(r.model.as_deref(), Some(PATH));
    assert_eq!(r.size, Some(5_368_709_120));
    assert_eq!(r.mount_filesystem, Some(true));
    assert_eq!(r.mount_read_only, Some(false));
    assert_eq!(r.compress, Some(false));
    assert_eq!(r.sector_size, Some(512));
    assert_eq!(r.raid_master.as_deref(), Some("none"));
    assert_eq!(r.nvme_tcp_export, Some(true));
    assert_eq!(r.nvme_tcp_server_port, Some(4420));
    assert_eq!(r.nvme_tcp_server_nqn.as_deref(), Some(NQN));
    assert_eq!(r.nvme_tcp_server_allow_host_name.as_deref(), Some(""));
    assert_eq!(r.iscsi_export, Some(false));
    assert_eq!(r.nfs_sharing, Some(false));
    assert_eq!(r.smb_sharing, Some(false));
    assert_eq!(r.media_sharing, Some(false));
    assert_eq!(r.media_interface.as_deref(), Some("none"));
    assert_eq!(r.swap, Some(false));
    assert_eq!(r.file_path.as_deref(), Some(PATH));
    let fs = r.file_size.as_ref().unwrap();
    assert_eq!(fs.text, "5120.0MiB");
    assert_eq!(fs.bytes, 5_368_709_120);
    assert_eq!(r.file_offset, Some(0));
    let keys: Vec<&str> = r.raw.iter().map(|p| p.key.as_ref()).collect();
    assert_eq!(
        keys.join(" "),
        "type slot slot-default parent fs model size mount-filesystem mount-read-only compress \
         sector-size raid-master nvme-tcp-export nvme-tcp-server-port nvme-tcp-server-nqn \
         nvme-tcp-server-allow-host-name iscsi-export nfs-sharing smb-sharing media-sharing \
         media-interface swap file-path file-size file-offset"
    );
}

#[test]
fn parse_synth_file_record_crlf_and_lf() {
    let text = fx("disk_synth_file.txt");
    check_synth_file(&parse_disk_print_detail(&text).unwrap());
    check_synth_file(&parse_disk_print_detail(&lf(&text)).unwrap());
    let pd = parse_print_detail(&text).unwrap();
    assert!(pd.legend.unwrap().starts_with("Flags: X - DISABLED;"));
}

#[test]
fn parse_synth_file_record_with_separator_cut() {
    // The same record rendered with the alternative cut rule parses identically.
    let text = fx("disk_synth_file.txt");
    let rec = parse_disk_print_detail(&text).unwrap().remove(0);
    let opts = RenderOptions {
        cut_rule: CutRule::BeforeSeparator,
        ..RenderOptions::default()
    };
    let out = render_disk_record(&rec, &opts);
    assert!(out.lines().all(|l| l.len() <= 78));
    let again = parse_disk_print_detail(&out).unwrap();
    check_synth_file(&again);
}

#[test]
fn render_synth_file_record_byte_exact() {
    let text = fx("disk_synth_file.txt");
    let rec = parse_disk_print_detail(&text).unwrap().remove(0);
    // The legend of the synthesized block has a placeholder; compare the record part.
    let record_part: String = text.split_inclusive("\r\n").skip(2).collect();
    let mut rendered = render_disk_record(&rec, &RenderOptions::default());
    rendered.push_str("\r\n"); // blank line after the record
    assert_eq!(rendered, record_part);

    // The same record built from scratch with the sim's builder.
    let mut built = DiskRecord::file_disk(
        &Legend::rose_storage(),
        "pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8",
        PATH,
        5_368_709_120,
        Some((4420, NQN)),
    );
    built.number = Some(31);
    built.flags = "B   t".into(); // the synthesized flag positions are [INF]
    assert_eq!(
        render_disk_record(&built, &RenderOptions::default()) + "\r\n",
        record_part
    );

    // Full print: our legend + the record + blank line.
    let full = render_disk_print(&Legend::rose_storage(), &[built], &RenderOptions::default());
    assert!(full.ends_with(&record_part));
    assert!(full.lines().all(|l| l.len() <= 78));
}

#[test]
fn rose_legend_wraps_at_column_boundaries() {
    let lines = Legend::rose_storage().render_lines(&RenderOptions::default());
    assert_eq!(
        lines[0],
        "Flags: X - DISABLED; A - ACQUIRED, E - EMPTY, B - BLOCK-DEVICE;"
    );
    assert!(lines[1].starts_with("M - MOUNTED, F - FORMATTING, S - SWAP-ENABLED;"));
    assert!(lines.iter().all(|l| l.len() <= 78 && !l.starts_with(' ')));
    let cols = Legend::rose_storage().columns();
    assert_eq!(cols.len(), 11);
    assert_eq!(cols[1], vec!['A', 'E', 'B']);
    assert_eq!(Legend::rose_storage().flag_block(&['B', 't']), " B    t");
    // A legend-only output parses to no records.
    let out = render_disk_print(&Legend::rose_storage(), &[], &RenderOptions::default());
    assert!(out.ends_with(";\r\n") || out.ends_with("\r\n\r\n"));
    assert!(parse_disk_print_detail(&out).unwrap().is_empty());
    let pd = parse_print_detail(&out).unwrap();
    assert_eq!(pd.legend.as_deref(), Some(ROSE_STORAGE_LEGEND));
}

// ---------- /disk: sanitized real RDS capture without number prefix ----------

#[test]
fn parse_rds_sanitized_capture() {
    for text in [
        fx("disk_rds_sanitized.txt"),
        crlf(&fx("disk_rds_sanitized.txt")),
    ] {
        let recs = parse_disk_print_detail(&text).unwrap();
        assert_eq!(recs.len(), 1);
        let r = &recs[0];
        assert_eq!(r.number, None);
        assert_eq!(r.flags, "");
        assert_eq!(r.disk_type.as_deref(), Some("file"));
        assert_eq!(r.slot.as_deref(), Some("pvc-test-123"));
        assert_eq!(r.model.as_deref(), Some("/storage-pool/test.img"));
        assert_eq!(r.size, Some(53_687_091_200));
        assert_eq!(r.mount_filesystem, Some(true));
        assert_eq!(r.sector_size, Some(512));
        assert_eq!(r.nvme_tcp_export, Some(true));
        assert_eq!(r.nvme_tcp_server_port, Some(4420));
        assert_eq!(
            r.nvme_tcp_server_nqn.as_deref(),
            Some("nqn.2000-02.com.mikrotik:pvc-test-123")
        );
        assert_eq!(r.file_path.as_deref(), Some("/storage-pool/test.img"));
        let fs = r.file_size.as_ref().unwrap();
        assert_eq!((fs.text.as_str(), fs.bytes), ("50.0GiB", 53_687_091_200));
        assert_eq!(r.file_offset, Some(0));
        assert_eq!(r.raw.len(), 25);
    }
}

// ---------- /disk: hAP ax3 capture ----------

#[test]
fn parse_and_render_ax3_byte_exact() {
    let text = fx("disk_ax3.txt");
    let recs = parse_disk_print_detail(&text).unwrap();
    assert_eq!(recs.len(), 1, "second legend line must not become a record");
    let r = &recs[0];
    assert_eq!(r.number, Some(0));
    assert_eq!(r.flags, " BM");
    assert!(r.has_flag('B') && r.has_flag('M'));
    assert_eq!(r.disk_type.as_deref(), Some("hardware"));
    assert_eq!(r.slot.as_deref(), Some("usb1"));
    assert_eq!(r.fs_label.as_deref(), Some("mikrotik-ax3"));
    assert_eq!(r.fs.as_deref(), Some("ext4"));
    assert_eq!(r.model.as_deref(), Some("KIOXIA TransMemory"));
    assert_eq!(r.serial.as_deref(), Some("B06EBF0AB44EE581A1433FA8"));
    assert_eq!(r.size, Some(124_948_316_160));
    assert_eq!(r.free, Some(122_382_983_168));
    assert_eq!(r.use_percent, Some(0));
    assert_eq!(r.mount_point.as_deref(), Some("usb1"));
    assert_eq!(r.mount_filesystem, Some(true));

    let legend = Legend::hap_ax3();
    assert_eq!(legend.flag_block(&['B', 'M']), " BM");
    let opts = RenderOptions::default();
    let rendered = legend.render_lines(&opts).join("\r\n") + "\r\n" + &render_disk_record(r, &opts);
    assert_eq!(rendered, text);
    // As a full print (legend + record + the final blank line).
    assert_eq!(
        render_disk_print(&legend, &recs, &opts),
        format!("{text}\r\n")
    );
}

// ---------- /disk: synthesized pool record ----------

#[test]
fn parse_and_render_pool_byte_exact() {
    let text = fx("disk_synth_pool.txt");
    let recs = parse_disk_print_detail(&text).unwrap();
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(r.number, Some(9));
    assert_eq!(r.flags, "BM");
    assert_eq!(r.disk_type.as_deref(), Some("raid"));
    assert_eq!(r.slot.as_deref(), Some("storage-pool"));
    assert_eq!(r.parent.as_deref(), Some("none"));
    assert!(!r.raw.iter().find(|p| p.key == "parent").unwrap().quoted);
    assert_eq!(r.fs.as_deref(), Some("btrfs"));
    assert_eq!(r.size, Some(7_681_574_174_720));
    assert_eq!(r.free, Some(7_301_927_047_168));
    assert_eq!(r.use_percent, Some(5));
    assert_eq!(r.mount_point.as_deref(), Some("storage-pool"));
    assert_eq!(r.sector_size, Some(4096));
    assert_eq!(r.raid_type.as_deref(), Some("6"));
    assert_eq!(r.raid_device_count, Some(8));
    assert_eq!(r.raid_chunk_size.as_deref(), Some("1M"));
    assert_eq!(r.nvme_tcp_export, Some(false));
    assert_eq!(r.smb_sharing, Some(false));

    assert_eq!(render_disk_record(r, &RenderOptions::default()), text);
    let mut built = DiskRecord::raid_pool(
        &Legend::rose_storage(),
        "storage-pool",
        7_681_574_174_720,
        7_301_927_047_168,
        5,
    );
    built.number = Some(9);
    built.flags = "BM".into();
    assert_eq!(render_disk_record(&built, &RenderOptions::default()), text);
}

// ---------- /file ----------

#[test]
fn parse_file_doc_example() {
    let text = fx("file_doc_example.txt");
    let recs = parse_file_print_detail(&text).unwrap();
    assert_eq!(recs.len(), 4);
    let r0 = &recs[0];
    assert_eq!(r0.number, Some(0));
    assert_eq!(r0.name, "wireless-7.16.1-arm.npk");
    assert_eq!(r0.file_type.as_deref(), Some("package"));
    let s = r0.size.as_ref().unwrap();
    assert_eq!((s.text.as_str(), s.bytes), ("1924.1KiB", 1_970_278));
    assert_eq!(
        r0.last_modified.as_ref().unwrap().text,
        "2024-11-25 13:14:28"
    );
    let get = |k: &str| r0.raw.iter().find(|p| p.key == k).map(|p| p.value.clone());
    assert_eq!(get("package-name").as_deref(), Some("wireless"));
    assert_eq!(
        get("package-build-time").as_deref(),
        Some("2024-10-10 14:03:32")
    );
    assert_eq!(get("package-architecture").as_deref(), Some("arm"));
    assert_eq!(recs[1].number, Some(2));
    assert_eq!(recs[1].name, "flash");
    assert_eq!(recs[1].file_type.as_deref(), Some("disk"));
    assert_eq!(recs[1].size, None);
    assert_eq!(recs[2].file_type.as_deref(), Some("directory"));
    assert_eq!(recs[3].name, "flash/skins/newskin.json");
    assert_eq!(recs[3].file_type.as_deref(), Some(".json file"));
    assert_eq!(recs[3].size.as_ref().unwrap().bytes, 0);
    let lm = recs[3].last_modified.as_ref().unwrap();
    let c = lm.civil.unwrap();
    assert_eq!(
        (c.year, c.month, c.day, c.hour, c.minute, c.second),
        (2024, 11, 25, 13, 10, 52)
    );
    assert_eq!(lm.unix_seconds(), Some(1_732_540_252));
}

#[test]
fn render_file_doc_example_byte_exact_with_trailing_space() {
    // Wide terminal, trailing space after the last token of each line, blank line between
    // records: the doc example is reproduced exactly (it ends without the final blank line).
    let text = fx("file_doc_example.txt");
    let recs = parse_file_print_detail(&text).unwrap();
    let opts = RenderOptions {
        width: 200,
        line_ending: LineEnding::Lf,
        trailing_space: true,
        ..RenderOptions::default()
    };
    assert_eq!(render_file_print(&recs, &opts), format!("{text}\n"));
}

#[test]
fn parse_and_render_file_synth_byte_exact() {
    let text = fx("file_synth.txt");
    let recs = parse_file_print_detail(&text).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].number, Some(7));
    assert_eq!(recs[0].name, "storage-pool/metal-csi");
    assert_eq!(recs[0].file_type.as_deref(), Some("directory"));
    assert_eq!(
        recs[0].last_modified.as_ref().unwrap().text,
        "2025-11-11 16:47:07"
    );
    assert_eq!(recs[1].number, Some(8));
    assert_eq!(
        recs[1].name,
        "storage-pool/metal-csi/pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8.img"
    );
    assert_eq!(recs[1].file_type.as_deref(), Some(".img file"));
    assert_eq!(recs[1].size.as_ref().unwrap().bytes, 5_368_709_120);
    assert_eq!(
        DiskPath::from_file_name(&recs[1].name).unwrap().as_str(),
        PATH
    );

    let opts = RenderOptions {
        blank_line_after_record: false,
        ..RenderOptions::default()
    };
    assert_eq!(render_file_print(&recs, &opts), text);

    // Built from scratch.
    let t = |s: &str| LastModified::from_civil(CivilDateTime::parse(s).unwrap());
    let mut d = FileRecord::directory("storage-pool/metal-csi", t("2025-11-11 16:47:07"));
    d.number = Some(7);
    let mut f = FileRecord::regular(&PATH[1..], 5_368_709_120, t("2025-11-11 14:32:41"));
    f.number = Some(8);
    assert_eq!(render_file_print(&[d, f], &opts), text);
}

// ---------- singletons ----------

#[test]
fn parse_and_render_monitor_traffic_byte_exact() {
    let text = fx("monitor_traffic.txt");
    let m = parse_monitor_traffic(&text).unwrap();
    assert_eq!(m.slot.as_deref(), Some("storage-pool"));
    assert_eq!(m.read_ops, Some(243_401));
    assert_eq!(m.read_ops_per_second, Some(0));
    assert_eq!(m.read_bytes, Some(33_131_503_616));
    assert_eq!(m.read_rate_bps, Some(0));
    assert_eq!(m.read_time_ms, Some(0));
    assert_eq!(m.write_ops, Some(17_667_231));
    assert_eq!(m.write_ops_per_second, Some(76));
    assert_eq!(m.write_bytes, Some(515_659_673_600));
    assert_eq!(m.write_rate_bps, Some(12_800_000));
    assert_eq!(m.flush_time_ms, Some(0));
    assert_eq!(m.raw.len(), 22);
    assert_eq!(
        render_monitor_traffic(&m, LineEnding::Crlf),
        format!("{text}\r\n")
    );
    assert_eq!(parse_monitor_traffic(&lf(&text)).unwrap(), m);
}

#[test]
fn parse_and_render_system_resource_byte_exact() {
    let text = fx("system_resource.txt");
    let s = parse_singleton(&text).unwrap();
    assert_eq!(s.pairs.len(), 10);
    assert_eq!(s.get("uptime"), Some("2d3h4m5s"));
    assert_eq!(s.get("version"), Some("7.15.3 (stable)"));
    assert_eq!(s.get("free-memory"), Some("184.6MiB"));
    assert_eq!(s.get("cpu-load"), Some("12%"));
    assert_eq!(s.get("board-name"), Some("CHR"));
    assert_eq!(
        parse_duration_ms(s.get("uptime").unwrap()),
        Some(183_845_000)
    );
    assert_eq!(
        parse_human_size(s.get("total-hdd-space").unwrap()),
        Some(1280 * 1024 * 1024)
    );
    let style = SingletonStyle {
        min_key_width: 25,
        ..SingletonStyle::default()
    };
    assert_eq!(render_singleton(&s.pairs, &style), format!("{text}\r\n"));
}

#[test]
fn identity_singleton_matches_lab_capture() {
    let pairs = vec![("name".to_owned(), "mikrotik-sim".to_owned())];
    assert_eq!(
        render_singleton(&pairs, &SingletonStyle::default()),
        "  name: mikrotik-sim\r\n\r\n"
    );
    assert_eq!(
        parse_singleton("  name: mikrotik-sim\r\n\r\n")
            .unwrap()
            .get("name"),
        Some("mikrotik-sim")
    );
}

// ---------- multi-record and error outputs ----------

#[test]
fn multi_record_list_output() {
    let legend = Legend::rose_storage();
    let mut recs = Vec::new();
    for i in 0..3u32 {
        let slot = format!("pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd{i}");
        let path = format!("/storage-pool/metal-csi/{slot}.img");
        let nqn = format!("{MANAGED_NQN_PREFIX}{slot}");
        let mut r = DiskRecord::file_disk(&legend, &slot, &path, 1 << 30, Some((4420, &nqn)));
        r.number = Some(10 + i);
        recs.push(r);
    }
    let out = render_disk_print(&legend, &recs, &RenderOptions::default());
    let back = parse_disk_print_detail(&out).unwrap();
    assert_eq!(back.len(), 3);
    for (a, b) in recs.iter().zip(&back) {
        assert_eq!(a.slot, b.slot);
        assert_eq!(a.file_path, b.file_path);
        assert_eq!(a.nvme_tcp_server_nqn, b.nvme_tcp_server_nqn);
        assert_eq!(a.flags, b.flags);
        assert_eq!(b.file_size.as_ref().unwrap().text, "1024.0MiB");
    }
}

#[test]
fn error_output_is_reported_by_parsers() {
    let e = parse_disk_print_detail("bad command name prnt (line 1 column 7)\r\n").unwrap_err();
    match e {
        RouterOsError::Device(d) => assert!(matches!(
            d.kind,
            RouterOsErrorKind::BadCommandName { ref name, position: Some(Position { line: 1, column: 7 }) } if name == "prnt"
        )),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse_file_print_detail("syntax error (line 1 column 10)\r\n"),
        Err(RouterOsError::Device(_))
    ));
    assert!(matches!(
        parse_monitor_traffic("no such item\r\n"),
        Err(RouterOsError::Device(DeviceError {
            kind: RouterOsErrorKind::NoSuchItem,
            ..
        }))
    ));
    assert!(matches!(
        parse_disk_print_detail("12:00:01 system,error,critical login failure\r\n"),
        Err(RouterOsError::Parse { line: 1, .. })
    ));
}
