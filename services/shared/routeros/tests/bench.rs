//! Parser benchmark (ignored; prints numbers). Run optimised:
//! `cargo test --release -p rds-routeros --test bench -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use rds_routeros::{DiskRecord, Legend, RenderOptions, parse_disk_print_detail, render_disk_print};

#[test]
#[ignore]
fn bench_parse_10000_disk_print_detail() {
    let legend = Legend::rose_storage();
    let disks: Vec<DiskRecord> = (0..10_000u32)
        .map(|i| {
            let slot = format!("pvc-{i:08}-922a-5dd8-b376-c2c6ccb56dd8");
            let nqn = format!("nqn.2000-02.com.mikrotik:{slot}");
            let mut d = DiskRecord::file_disk(
                &legend,
                &slot,
                &format!("/storage-pool/metal-csi/{slot}.img"),
                5 << 30,
                Some((4420, &nqn)),
            );
            d.number = Some(i);
            d
        })
        .collect();
    let text = render_disk_print(&legend, &disks, &RenderOptions::default());
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let parsed = parse_disk_print_detail(&text);
        best = best.min(t.elapsed());
        // Freeing the result is the caller's, not the parse's (timed above without it).
        assert_eq!(parsed.map(|v| v.len()).ok(), Some(10_000));
    }
    let t = Instant::now();
    let raw = rds_routeros::parse_print_detail(&text).map(|p| p.records.len());
    println!(
        "  of which generic record split: {:.1} ms ({raw:?})",
        t.elapsed().as_secs_f64() * 1000.0
    );
    println!(
        "parse a 10,000-disk print detail ({:.1} MiB): best of 5 {:.1} ms (goal <= 50 ms)",
        text.len() as f64 / f64::from(1 << 20),
        best.as_secs_f64() * 1000.0
    );
}
