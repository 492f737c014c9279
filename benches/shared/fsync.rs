//! The physical floor of a durable record, shared by the audit and end-to-end benches: a
//! bare fsync on the disk the log is on.

use std::io::Write;
use std::time::{Duration, Instant};

/// One bare fsync: a line of `bytes` bytes appended to `file`, then `fdatasync`.
pub fn bare_fsync(file: &mut std::fs::File, bytes: usize) -> Duration {
    let mut line = vec![b'x'; bytes];
    line[bytes - 1] = b'\n';
    let start = Instant::now();
    file.write_all(&line).unwrap();
    file.sync_data().unwrap();
    start.elapsed()
}
