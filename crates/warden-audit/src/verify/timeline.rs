//! Silences in the log (audit/FORMAT.md §7 item 4): records and checkpoints together,
//! ordered by time, must never be further apart than twice the heartbeat — the writer
//! checkpoints at least once per heartbeat, so a longer silence is a deleted stretch or a
//! silenced writer. A silence that starts at a `stop` record is a clean shutdown.
//!
//! Records arrive in index order with (nearly) increasing times, so the gaps between
//! consecutive event times are maintained as the events stream in, without keeping them:
//! an event past the latest one may open a gap, an earlier one can only split a gap.

use super::finding::{Finding, FindingKind};
use crate::show::rfc3339;

/// What sits at either end of a silence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The record with this index.
    Record(u64),
    /// The checkpoint of this size.
    Checkpoint(u64),
}

#[derive(Debug, Clone)]
struct Gap {
    from: (u64, Event),
    to: (u64, Event),
    /// The latest record (by time) at or before the start.
    record_before: Option<u64>,
    /// Starts at a clean shutdown.
    exempt: bool,
}

/// The events seen so far and the silences between them.
#[derive(Debug)]
pub struct Timeline {
    /// `(time_us, heartbeat_s, size)` of the valid checkpoints, by time.
    checkpoints: Vec<(u64, u64, u64)>,
    /// Checkpoints already merged into the event stream.
    merged: usize,
    /// Silences shorter than this are never reported (twice the smallest heartbeat).
    threshold_us: u64,
    low: Option<(u64, Event)>,
    high: Option<(u64, Event)>,
    /// The latest record by time: `(time_us, index, stop)`.
    latest: Option<(u64, u64, bool)>,
    /// Silences longer than `threshold_us`, by start.
    gaps: Vec<Gap>,
}

impl Timeline {
    /// A timeline over these checkpoints (`(time_us, heartbeat_s, size)`); with none, no
    /// heartbeat is known and nothing is checked.
    pub fn new(mut checkpoints: Vec<(u64, u64, u64)>) -> Timeline {
        checkpoints.sort();
        let smallest = checkpoints.iter().map(|c| c.1).min();
        Timeline {
            threshold_us: smallest.map_or(u64::MAX, |h| h.saturating_mul(2_000_000)),
            checkpoints,
            merged: 0,
            low: None,
            high: None,
            latest: None,
            gaps: Vec::new(),
        }
    }

    /// Adds a record.
    pub fn record(&mut self, time_us: u64, index: u64, stop: bool) {
        if self.checkpoints.is_empty() {
            return;
        }
        while let Some(&(time, _, size)) = self.checkpoints.get(self.merged) {
            if time > time_us {
                break;
            }
            self.merged += 1;
            self.event(time, Event::Checkpoint(size), None);
        }
        self.event(time_us, Event::Record(index), Some(stop));
        if self.latest.is_none_or(|(t, _, _)| time_us >= t) {
            self.latest = Some((time_us, index, stop));
        }
    }

    /// The silences longer than twice the heartbeat in force, as findings. `segment_of`
    /// names the segment holding a record.
    pub fn finish(mut self, segment_of: impl Fn(u64) -> Option<String>) -> Vec<Finding> {
        while let Some(&(time, _, size)) = self.checkpoints.get(self.merged) {
            self.merged += 1;
            self.event(time, Event::Checkpoint(size), None);
        }
        let mut out = Vec::new();
        for gap in &self.gaps {
            let (from, to) = (gap.from.0, gap.to.0);
            // The heartbeat of the checkpoint that ended the silence (or the last one).
            let after = self.checkpoints.partition_point(|c| c.0 < to);
            let heartbeat = self
                .checkpoints
                .get(after)
                .or(self.checkpoints.last())
                .map_or(0, |c| c.1);
            if gap.exempt || to - from <= heartbeat.saturating_mul(2_000_000) {
                continue;
            }
            let detail = format!(
                "nothing was logged for {} s, from {} ({}) to {} ({}), more than twice the {heartbeat} s heartbeat: records were deleted or the writer was silenced",
                (to - from) / 1_000_000,
                rfc3339(from),
                describe(gap.from.1),
                rfc3339(to),
                describe(gap.to.1),
            );
            let mut finding = Finding::new(FindingKind::TimeGap, detail);
            let after = match gap.to.1 {
                Event::Record(i) => Some(i),
                Event::Checkpoint(_) => None,
            };
            if let Some(key) = after.or(gap.record_before).and_then(&segment_of) {
                finding = finding.at(key);
            }
            finding.first = gap.record_before.or(after);
            finding.last = after.or(gap.record_before);
            out.push(finding);
        }
        out
    }

    fn event(&mut self, time: u64, event: Event, stop: Option<bool>) {
        let here = (time, event);
        let this_record = match event {
            Event::Record(i) => Some(i),
            Event::Checkpoint(_) => None,
        };
        match (self.low, self.high) {
            (Some(_), Some(high)) if time > high.0 => {
                if time - high.0 > self.threshold_us {
                    self.gaps.push(Gap {
                        from: high,
                        to: here,
                        record_before: self.latest.map(|l| l.1),
                        exempt: self.latest.is_some_and(|l| l.2),
                    });
                }
                self.high = Some(here);
            }
            (Some(low), Some(_)) if time < low.0 => {
                if low.0 - time > self.threshold_us {
                    let gap = Gap {
                        from: here,
                        to: low,
                        record_before: this_record,
                        exempt: stop == Some(true),
                    };
                    self.gaps.insert(0, gap);
                }
                self.low = Some(here);
            }
            (Some(_), Some(_)) => self.split(here, this_record, stop),
            _ => {
                self.low = Some(here);
                self.high = Some(here);
            }
        }
    }

    /// An event inside the covered span splits the silence it falls in, if any.
    fn split(&mut self, here: (u64, Event), record: Option<u64>, stop: Option<bool>) {
        let time = here.0;
        let at = self.gaps.partition_point(|g| g.from.0 < time);
        let Some(i) = at.checked_sub(1) else { return };
        let gap = self.gaps[i].clone();
        if time >= gap.to.0 {
            return;
        }
        let mut parts = Vec::with_capacity(2);
        if time - gap.from.0 > self.threshold_us {
            parts.push(Gap {
                from: gap.from,
                to: here,
                record_before: gap.record_before,
                exempt: gap.exempt,
            });
        }
        if gap.to.0 - time > self.threshold_us {
            parts.push(Gap {
                from: here,
                to: gap.to,
                record_before: record.or(gap.record_before),
                exempt: stop.unwrap_or(gap.exempt),
            });
        }
        self.gaps.splice(i..=i, parts);
    }
}

fn describe(event: Event) -> String {
    match event {
        Event::Record(i) => format!("record {i}"),
        Event::Checkpoint(size) => format!("checkpoint of {size} records"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    fn gaps(checkpoints: Vec<(u64, u64, u64)>, records: &[(u64, bool)]) -> Vec<(u64, u64)> {
        let mut t = Timeline::new(checkpoints);
        for (i, &(time, stop)) in records.iter().enumerate() {
            t.record(time, i as u64, stop);
        }
        t.finish(|_| None)
            .into_iter()
            .map(|f| (f.first.unwrap_or(u64::MAX), f.last.unwrap_or(u64::MAX)))
            .collect()
    }

    #[test]
    fn regular_logs_have_no_gap() {
        let cps = (0..10).map(|i| (i * 60 * S, 60, i)).collect();
        let recs: Vec<(u64, bool)> = (0..100).map(|i| (i * 5 * S, false)).collect();
        assert!(gaps(cps, &recs).is_empty());
    }

    #[test]
    fn a_long_silence_is_found_and_a_checkpoint_inside_splits_it() {
        let recs = [(0, false), (10 * S, false), (200 * S, false)];
        assert_eq!(gaps(vec![(0, 60, 0)], &recs), vec![(1, 2)]);
        // A checkpoint at 100 s leaves two silences of 90 and 100 s (threshold 120 s).
        assert!(gaps(vec![(0, 60, 0), (100 * S, 60, 2)], &recs).is_empty());
    }

    #[test]
    fn a_stop_record_ends_the_log_cleanly() {
        let recs = [(0, false), (10 * S, true), (5000 * S, false)];
        assert!(gaps(vec![(11 * S, 60, 2)], &recs).is_empty());
        let recs = [(0, false), (10 * S, false), (5000 * S, false)];
        assert_eq!(gaps(vec![(11 * S, 60, 2)], &recs).len(), 1);
    }

    #[test]
    fn an_earlier_record_fills_a_silence() {
        // Times may go back a little: a record placed inside a silence closes it.
        let recs = [(0, false), (200 * S, false), (100 * S, false)];
        assert!(gaps(vec![(0, 60, 0)], &recs).is_empty());
    }
}
