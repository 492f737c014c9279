//! Verification throughput of the auditor's crate on its own, without the proxy:
//! `cargo bench -p warden-audit --bench verify` builds logs of the proxy's typical
//! `tools/call` records (about 1,070 bytes: principal, decision, policy and schema hashes,
//! argument commitments, outcome with the result's hash) and of lean ones (about 520
//! bytes), in a memory store with a signed checkpoint per segment, and verifies each on
//! one thread (a current-thread runtime), as an auditor's laptop would.
//!
//! Prints records/s from the median wall time (the runtime's one thread does all the work);
//! the target is 1,000,000 typical records/s per core. `-- --records N` changes
//! the log's size (default 1,000,000), `-- --repeats N` the runs (default 5).

use std::time::Instant;

use warden_audit::verify::verify;

mod sample;

/// Segments of the logs measured.
const PER_SEGMENT: u64 = 10_000;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes --bench; under `cargo test --benches` a smoke pass checks that
    // every log verifies, so the benchmark cannot rot.
    let full = std::env::args().any(|a| a == "--bench");
    let records = arg("--records", if full { 1_000_000 } else { 20_000 });
    let repeats = arg("--repeats", if full { 5 } else { 1 }).max(1) as usize;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{:<24} {:>9} {:>6} {:>10} {:>10} {:>11} {:>7}",
        "log", "records", "B/rec", "best ms", "median ms", "records/s", "MB/s"
    );
    let mut typical = 0.0;
    for (label, lean) in [("typical records", false), ("lean records", true)] {
        let (store, key, at, bytes) = rt.block_on(sample::build(records, PER_SEGMENT, lean));
        let mut walls = Vec::new();
        for _ in 0..repeats {
            let start = Instant::now();
            let report = rt.block_on(verify(&store, &key, None, at));
            walls.push(start.elapsed());
            assert_eq!(report.exit_code(), 0, "{label}: {:?}", report.findings);
            assert_eq!(report.records, records);
        }
        walls.sort();
        let wall = walls[repeats / 2];
        let per_s = records as f64 / wall.as_secs_f64();
        println!(
            "{label:<24} {records:>9} {:>6} {:>10.1} {:>10.1} {per_s:>11.0} {:>7.0}",
            bytes / records,
            walls[0].as_secs_f64() * 1e3,
            wall.as_secs_f64() * 1e3,
            bytes as f64 / wall.as_secs_f64() / 1e6,
        );
        if !lean {
            typical = per_s;
        }
    }
    if !full {
        println!("smoke pass: every log verified (cargo bench -p warden-audit for figures)");
        return;
    }
    let verdict = if typical >= 1_000_000.0 {
        "met"
    } else {
        "MISSED"
    };
    println!("target ≥ 1,000,000 typical records/s per core: {verdict} ({typical:.0}/s)");
}
