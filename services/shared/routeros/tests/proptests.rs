//! Property tests: render → parse round trips, and parsers never panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use rds_routeros::*;

fn fx(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn slot_s() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9-]{0,127}"
}

fn path_s() -> impl Strategy<Value = String> {
    prop::collection::vec("[A-Za-z0-9_-][A-Za-z0-9._-]{0,60}", 1..6)
        .prop_map(|segs| format!("/{}", segs.join("/")))
        .prop_filter("≤ 255 bytes", |p| p.len() <= 255)
}

fn nqn_s() -> impl Strategy<Value = String> {
    prop_oneof![
        slot_s().prop_map(|s| Nqn::for_volume(&Slot::new(&s).unwrap()).to_string()),
        ("[a-z0-9][a-z0-9.-]{0,30}", "[a-z0-9._-]{1,150}")
            .prop_map(|(d, n)| format!("nqn.2014-08.{d}:{n}")),
    ]
}

fn opts_s() -> impl Strategy<Value = RenderOptions> {
    (60usize..=160, any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(w, sep, crlf, ts)| {
        RenderOptions {
            width: w,
            line_ending: if crlf {
                LineEnding::Crlf
            } else {
                LineEnding::Lf
            },
            cut_rule: if sep {
                CutRule::BeforeSeparator
            } else {
                CutRule::AtLimit
            },
            trailing_space: ts,
            blank_line_after_record: true,
        }
    })
}

fn file_disk_s() -> impl Strategy<Value = DiskRecord> {
    (
        slot_s(),
        path_s(),
        any::<u64>(),
        prop::option::of((1u16..=65535, nqn_s())),
        0u32..1500,
        any::<bool>(),
        // The ownership tag's alphabet (DiskComment), `key=value` words included.
        prop::option::of("[A-Za-z0-9][A-Za-z0-9 ._/:=,-]{0,120}[A-Za-z0-9]"),
    )
        .prop_map(|(slot, path, size, export, number, disabled, comment)| {
            let legend = Legend::rose_storage();
            let mut r = DiskRecord::file_disk(
                &legend,
                &slot,
                &path,
                size,
                export.as_ref().map(|(p, n)| (*p, n.as_str())),
            );
            r.number = Some(number);
            r.comment = comment;
            if disabled {
                let mut f = vec!['X', 'B'];
                if export.is_some() {
                    f.push('t');
                }
                r.flags = legend.flag_block(&f);
            }
            r
        })
}

fn pool_s() -> impl Strategy<Value = DiskRecord> {
    (slot_s(), any::<u64>(), any::<u64>(), 0u8..=100, 0u32..200).prop_map(
        |(s, size, free, u, n)| {
            let mut r = DiskRecord::raid_pool(&Legend::rose_storage(), &s, size, free, u);
            r.number = Some(n);
            r
        },
    )
}

/// Drop `raw` and normalise the lossy human `file-size` to what its text says.
fn strip_raw(mut r: DiskRecord) -> DiskRecord {
    r.raw.clear();
    r.file_size = r.file_size.and_then(|h| HumanSize::parse(&h.text));
    r
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn disk_records_round_trip(
        recs in prop::collection::vec(prop_oneof![3 => file_disk_s(), 1 => pool_s()], 0..4),
        opts in opts_s(),
    ) {
        let out = render_disk_print(&Legend::rose_storage(), &recs, &opts);
        // A `;;;` comment line is printed unwrapped (docs/routeros.md §6.15).
        for line in out.lines().filter(|l| !l.contains(";;;")) {
            prop_assert!(line.trim_end().len() <= opts.width || line.len() <= opts.width + 1, "{line}");
        }
        let back = parse_disk_print_detail(&out).unwrap();
        prop_assert_eq!(back.len(), recs.len());
        for (a, b) in recs.iter().zip(back.iter()) {
            prop_assert_eq!(strip_raw(a.clone()), strip_raw(b.clone()));
        }
        // Parsing is stable: re-rendering the parsed records gives the same bytes.
        prop_assert_eq!(render_disk_print(&Legend::rose_storage(), &back, &opts), out);
    }

    #[test]
    fn file_records_round_trip(
        entries in prop::collection::vec(
            (path_s(), prop::option::of(any::<u64>()), 0i64..4_102_444_800, 0u32..300),
            0..5,
        ),
        opts in opts_s(),
    ) {
        let recs: Vec<FileRecord> = entries
            .iter()
            .map(|(p, size, t, n)| {
                let lm = LastModified::from_civil(CivilDateTime::from_unix_seconds(*t).unwrap());
                let mut r = match size {
                    Some(s) => FileRecord::regular(&p[1..], *s, lm),
                    None => FileRecord::directory(&p[1..], lm),
                };
                r.number = Some(*n);
                r
            })
            .collect();
        let out = render_file_print(&recs, &opts);
        let back = parse_file_print_detail(&out).unwrap();
        prop_assert_eq!(back.len(), recs.len());
        for ((a, b), (_, _, t, _)) in recs.iter().zip(back.iter()).zip(entries.iter()) {
            prop_assert_eq!(&a.name, &b.name);
            prop_assert_eq!(a.number, b.number);
            prop_assert_eq!(&a.file_type, &b.file_type);
            prop_assert_eq!(a.size.as_ref().map(|h| &h.text), b.size.as_ref().map(|h| &h.text));
            prop_assert_eq!(b.last_modified.as_ref().unwrap().unix_seconds(), Some(*t));
        }
        prop_assert_eq!(render_file_print(&back, &opts), out);
    }

    #[test]
    fn monitor_round_trip(
        counts in prop::collection::vec(any::<u64>(), 15),
        rates in prop::collection::vec((10u64..10_000, 0u32..=4), 2),
        times in prop::collection::vec(any::<u32>(), 6),
        slot in slot_s(),
    ) {
        let rate = |(tenths, unit): (u64, u32)| if unit == 0 { tenths % 1000 } else { tenths * 10u64.pow(3 * unit) / 10 };
        let t = |i: usize| Some(u64::from(times[i]));
        let c = |i: usize| Some(counts[i]);
        let m = MonitorTraffic {
            slot: Some(slot),
            read_ops: c(0), read_ops_per_second: c(1), read_bytes: c(2),
            read_rate_bps: Some(rate(rates[0])), read_merges: c(3), read_time_ms: t(0),
            write_ops: c(4), write_ops_per_second: c(5), write_bytes: c(6),
            write_rate_bps: Some(rate(rates[1])), write_merges: c(7), write_time_ms: t(1),
            in_flight_ops: c(8), active_time_ms: t(2), wait_time_ms: t(3),
            discard_ops: c(9), discard_bytes: c(10), discard_merges: c(11), discard_time_ms: t(4),
            flush_ops: c(12), flush_time_ms: t(5),
            raw: vec![],
        };
        let out = render_monitor_traffic(&m, LineEnding::Crlf);
        let mut back = parse_monitor_traffic(&out).unwrap();
        back.raw.clear();
        prop_assert_eq!(back, m);
    }

    #[test]
    fn sizes_round_trip(b in any::<u64>()) {
        prop_assert_eq!(parse_grouped(&format_grouped(b)), Some(b));
        let h = format_human_size(b);
        let back = u128::from(parse_human_size(&h).unwrap());
        let b = u128::from(b);
        // within half a tenth of the printed unit
        let unit: u128 = match &h[h.len().saturating_sub(3)..] {
            "KiB" => 1 << 10, "MiB" => 1 << 20, "GiB" => 1 << 30, "TiB" => 1 << 40, _ => 1,
        };
        prop_assert!(back.abs_diff(b) * 20 <= unit, "{} -> {} -> {}", b, h, back);
        if unit == 1 { prop_assert_eq!(back, b); }
        prop_assert_eq!(parse_duration_ms(&format_duration_ms(b as u64)), Some(b as u64));
    }

    #[test]
    fn quoting_round_trips(s in "[ -~\t\n\r]{0,80}") {
        let q = quote_string(&s).unwrap();
        prop_assert_eq!(unquote(&q).unwrap(), s.clone());
        let v = quote_value(&s).unwrap();
        if v.starts_with('"') { prop_assert_eq!(unquote(&v).unwrap(), s); } else { prop_assert_eq!(v, s); }
    }

    #[test]
    fn validators_never_panic_and_accept_only_safe(s in ".{0,300}") {
        if let Ok(slot) = Slot::new(&s) {
            prop_assert!(slot.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        }
        if let Ok(p) = DiskPath::new(&s) {
            prop_assert!(p.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b)));
        }
        if let Ok(n) = Nqn::new(&s) {
            prop_assert!(!n.as_str().contains(['"', ' ', ';', '$', '\\', '[']));
        }
        let _ = RegexPattern::contains(&s);
        let _ = quote_value(&s);
        let _ = unquote(&s);
        let _ = parse_human_size(&s);
        let _ = parse_rate(&s);
        let _ = parse_duration_ms(&s);
        let _ = CivilDateTime::parse(&s);
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_input(s in "(?s).{0,2000}") {
        let _ = parse_disk_print_detail(&s);
        let _ = parse_file_print_detail(&s);
        let _ = parse_monitor_traffic(&s);
        let _ = parse_singleton(&s);
        let _ = classify_error(&s);
    }

    #[test]
    fn parsers_never_panic_on_structured_noise(
        parts in prop::collection::vec(prop_oneof![
            Just(" ".to_owned()), Just("\r\n".to_owned()), Just("\n".to_owned()), Just("\"".to_owned()),
            Just("\\".to_owned()), Just("=".to_owned()), Just("Flags: ".to_owned()),
            Just("               ".to_owned()), Just(" 0 ".to_owned()), Just("size=".to_owned()),
            Just("key=".to_owned()), Just("1 234".to_owned()), Just("é".to_owned()),
            Just(": ".to_owned()), "[a-z0-9.-]{1,8}",
        ], 0..200),
    ) {
        let s: String = parts.concat();
        let _ = parse_disk_print_detail(&s);
        let _ = parse_file_print_detail(&s);
        let _ = parse_monitor_traffic(&s);
        let _ = parse_singleton(&s);
    }

    #[test]
    fn parsers_never_panic_on_mutated_fixtures(
        which in 0usize..8,
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, prop::sample::select(vec![' ', '\n', '\r', '"', '\\', '=', 'a', '0', ':', 'é', '\0'])), 1..12),
        cut in any::<prop::sample::Index>(),
    ) {
        let names = [
            "disk_rds_sanitized.txt", "disk_synth_file.txt", "disk_ax3.txt", "disk_synth_pool.txt",
            "file_doc_example.txt", "file_synth.txt", "monitor_traffic.txt", "system_resource.txt",
        ];
        let mut chars: Vec<char> = fx(names[which]).chars().collect();
        for (idx, op, c) in edits {
            if chars.is_empty() { break; }
            let i = idx.index(chars.len());
            match op {
                0 => { chars.remove(i); }
                1 => chars.insert(i, c),
                2 => chars[i] = c,
                _ => { let j = (i + 5).min(chars.len()); chars.drain(i..j); }
            }
        }
        let mut s: String = chars.into_iter().collect();
        if !s.is_empty() {
            let mut n = cut.index(s.len() + 1);
            while !s.is_char_boundary(n) { n -= 1; }
            if n > s.len() / 2 { s.truncate(n); }
        }
        let _ = parse_disk_print_detail(&s);
        let _ = parse_file_print_detail(&s);
        let _ = parse_monitor_traffic(&s);
        let _ = parse_singleton(&s);
        let _ = classify_error(&s);
        let _ = parse_print_detail(&s);
    }

    #[test]
    fn civil_time_round_trips(t in -62_135_596_800i64..253_402_300_799) {
        let c = CivilDateTime::from_unix_seconds(t).unwrap();
        prop_assert_eq!(c.unix_seconds(), t);
        prop_assert_eq!(CivilDateTime::parse(&c.to_routeros()), Some(c));
    }
}
