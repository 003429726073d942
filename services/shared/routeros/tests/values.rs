//! Value formatting examples from docs/routeros.md §4.5/§4.6/§4.10 and hostile-input timing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rds_routeros::*;

#[test]
fn human_sizes_match_observed_values() {
    let gib = 1u64 << 30;
    let mib = 1u64 << 20;
    assert_eq!(format_human_size(0), "0");
    assert_eq!(format_human_size(10239), "10239");
    assert_eq!(format_human_size(10240), "10.0KiB");
    assert_eq!(format_human_size(1_970_278), "1924.1KiB");
    assert_eq!(format_human_size(gib), "1024.0MiB");
    assert_eq!(format_human_size(5 * gib), "5120.0MiB");
    assert_eq!(format_human_size(10 * gib), "10.0GiB");
    assert_eq!(format_human_size(10 * gib + mib), "10.0GiB"); // lossy, docs/routeros.md §4.6
    assert_eq!(format_human_size(50 * gib), "50.0GiB");
    assert_eq!(format_human_size(1167 * mib), "1167.0MiB");
    assert_eq!(format_human_size(256 * mib), "256.0MiB");
    assert_eq!(format_human_size(20 * 1024 * gib), "20.0TiB");
    assert_eq!(format_human_size(u64::MAX), "16777216.0TiB");
    assert_eq!(parse_human_size("5120.0MiB"), Some(5 * gib));
    assert_eq!(parse_human_size("10.0GiB"), Some(10 * gib));
    assert_eq!(parse_human_size("11.1MiB"), Some(11_639_194));
    assert_eq!(parse_human_size("0"), Some(0));
    assert_eq!(parse_human_size("10"), Some(10)); // never "10.0GiB" → 10 bytes misread the other way
    assert_eq!(parse_human_size("10.0 GiB"), None);
    assert_eq!(parse_human_size("1G"), None);
    assert_eq!(parse_human_size(""), None);
}

#[test]
fn grouped_numbers() {
    assert_eq!(format_grouped(0), "0");
    assert_eq!(format_grouped(512), "512");
    assert_eq!(format_grouped(1008), "1 008");
    assert_eq!(format_grouped(53_687_091_200), "53 687 091 200");
    assert_eq!(format_grouped(7_681_574_174_720), "7 681 574 174 720");
    assert_eq!(parse_grouped("124 948 316 160"), Some(124_948_316_160));
    assert_eq!(parse_grouped("4420"), Some(4420));
    assert_eq!(parse_grouped("1 2x"), None);
    assert_eq!(parse_grouped("99999999999999999999999"), None);
}

#[test]
fn rates_and_durations() {
    assert_eq!(format_rate(0), "0bps");
    assert_eq!(format_rate(999), "999bps");
    assert_eq!(format_rate(12_800_000), "12.8Mbps");
    assert_eq!(format_rate(1_500), "1.5kbps");
    assert_eq!(parse_rate("12.8Mbps"), Some(12_800_000));
    assert_eq!(parse_rate("0bps"), Some(0));
    assert_eq!(parse_rate("3.2Gbps"), Some(3_200_000_000));
    assert_eq!(parse_rate("fast"), None);
    assert_eq!(format_duration_ms(0), "0ms");
    assert_eq!(format_duration_ms(1_230), "1s230ms");
    assert_eq!(
        parse_duration_ms("2d3h4m5s"),
        Some(((2 * 24 + 3) * 3600 + 4 * 60 + 5) * 1000)
    );
    assert_eq!(parse_duration_ms("1w"), Some(604_800_000));
    assert_eq!(parse_duration_ms("5x"), None);
}

#[test]
fn last_modified_formats() {
    let v7 = LastModified::parse("2025-11-11 14:32:41");
    let v6 = LastModified::parse("nov/11/2025 14:32:41");
    assert_eq!(v7.civil, v6.civil);
    assert_eq!(v7.unix_seconds(), Some(1_762_871_561));
    assert_eq!(LastModified::parse("yesterday").civil, None);
}

#[test]
fn hostile_long_lines_parse_quickly() {
    let start = std::time::Instant::now();
    let long = "a".repeat(200_000);
    let _ = parse_disk_print_detail(&long);
    let _ = parse_disk_print_detail(&format!("type=file model={long} x"));
    let _ = parse_disk_print_detail(&format!(" 0 type=file model=\"{}", "a ".repeat(100_000)));
    let many = "               x\n".repeat(50_000);
    let _ = parse_disk_print_detail(&format!(" 0 type=file\n{many}"));
    let _ = parse_singleton(&format!("{}: x\n", "a".repeat(100_000)));
    assert!(start.elapsed().as_secs() < 10, "took {:?}", start.elapsed());
}
