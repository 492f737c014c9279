//! The physical floor of a durable record, shared by the audit and end-to-end benches: a
//! bare fsync on the disk the log is on, in the two ways a file can take a line.
//!
//! - Appended: the file grows, so `fdatasync` also commits the new size (on ext4, a
//!   journal commit besides the data).
//! - Written over space already on disk (zeros written ahead and synced, as the WAL does):
//!   no metadata changes, so `fdatasync` flushes the data alone.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

fn line(bytes: usize) -> Vec<u8> {
    let mut line = vec![b'x'; bytes];
    line[bytes - 1] = b'\n';
    line
}

/// One bare fsync: a line of `bytes` bytes appended to `file`, then `fdatasync`.
pub fn bare_fsync(file: &mut std::fs::File, bytes: usize) -> Duration {
    let line = line(bytes);
    let start = Instant::now();
    file.write_all(&line).unwrap();
    file.sync_data().unwrap();
    start.elapsed()
}

/// A file of zeros written ahead and synced, for [`Overwrite::fsync`].
pub struct Overwrite {
    file: std::fs::File,
    size: u64,
    at: u64,
}

impl Overwrite {
    pub fn create(path: &Path, size: u64) -> Overwrite {
        let mut file = std::fs::File::create(path).unwrap();
        let zeros = vec![0u8; 64 * 1024];
        let mut left = size;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            file.write_all(&zeros[..n]).unwrap();
            left -= n as u64;
        }
        file.sync_all().unwrap();
        Overwrite { file, size, at: 0 }
    }

    /// One bare fsync: a line of `bytes` bytes written after the previous one (from the
    /// start again at the end), then `fdatasync`.
    pub fn fsync(&mut self, bytes: usize) -> Duration {
        let line = line(bytes);
        if self.at + bytes as u64 > self.size {
            self.at = 0;
        }
        let start = Instant::now();
        self.file.write_all_at(&line, self.at).unwrap();
        self.file.sync_data().unwrap();
        let took = start.elapsed();
        self.at += bytes as u64;
        took
    }
}
