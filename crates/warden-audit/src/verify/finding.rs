//! What a verification found: one [`Finding`] per problem (named as in audit/FORMAT.md §7),
//! each in one of three classes that decide the exit status.

use serde::Serialize;

/// The checks of audit/FORMAT.md §7, by the name the format gives their failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// An object whose key is neither a segment nor a checkpoint.
    Orphan,
    /// Segments do not tile the log (a missing range, or an overlap).
    Gap,
    /// A line (or a signed checkpoint body) is not in the exact form the format requires.
    NonCanonical,
    /// A record's `index` is not its position.
    Index,
    /// A record or checkpoint names another log.
    Origin,
    /// A record's `prev` is not the previous record's leaf hash.
    Chain,
    /// A checkpoint does not carry a valid signature by the key.
    Signature,
    /// A checkpoint covers more records than the store holds.
    MissingRecords,
    /// A checkpoint's root is not the tree hash of the records.
    Root,
    /// Two checkpoints of one size with different roots.
    Fork,
    /// A checkpoint's object key disagrees with its signed body.
    Key,
    /// Records going back in time, or a silence longer than twice the heartbeat.
    TimeGap,
    /// The newest checkpoint is older than twice the heartbeat.
    Stale,
    /// Records after the newest checkpoint.
    Unsealed,
    /// The log is shorter than the auditor's saved state.
    Truncated,
    /// The log no longer extends the auditor's saved state.
    Rollback,
    /// No records at all.
    Empty,
    /// The store, an object or the saved state could not be read.
    Unreadable,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Something was changed, removed or added: exit status 1.
    Tampered,
    /// Nothing was changed, but something could not be confirmed: exit status 2.
    Incomplete,
    /// The store, the key or the saved state could not be read: exit status 3.
    CouldNotVerify,
}

impl FindingKind {
    /// The class of this kind of finding.
    pub fn class(self) -> Class {
        match self {
            FindingKind::Stale | FindingKind::Unsealed | FindingKind::Empty => Class::Incomplete,
            FindingKind::Unreadable => Class::CouldNotVerify,
            _ => Class::Tampered,
        }
    }

    /// The name used in human output.
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::Orphan => "orphan",
            FindingKind::Gap => "gap",
            FindingKind::NonCanonical => "non-canonical",
            FindingKind::Index => "index",
            FindingKind::Origin => "origin",
            FindingKind::Chain => "chain",
            FindingKind::Signature => "signature",
            FindingKind::MissingRecords => "missing records",
            FindingKind::Root => "root",
            FindingKind::Fork => "fork",
            FindingKind::Key => "key",
            FindingKind::TimeGap => "time gap",
            FindingKind::Stale => "stale",
            FindingKind::Unsealed => "unsealed",
            FindingKind::Truncated => "truncated",
            FindingKind::Rollback => "rollback",
            FindingKind::Empty => "empty",
            FindingKind::Unreadable => "unreadable",
        }
    }
}

impl Class {
    /// The name used in human output.
    pub fn name(self) -> &'static str {
        match self {
            Class::Tampered => "tampered",
            Class::Incomplete => "incomplete",
            Class::CouldNotVerify => "could not verify",
        }
    }
}

/// One problem: its kind, the object it concerns and the record range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// The key of the segment (or checkpoint, or other object) concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// The first record index concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first: Option<u64>,
    /// The last record index concerned (inclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<u64>,
    pub detail: String,
}

impl Finding {
    /// A finding about no particular object or record.
    pub fn new(kind: FindingKind, detail: impl Into<String>) -> Finding {
        Finding {
            kind,
            segment: None,
            first: None,
            last: None,
            detail: detail.into(),
        }
    }

    /// The same finding about object `key`.
    pub fn at(mut self, key: impl ToString) -> Finding {
        self.segment = Some(key.to_string());
        self
    }

    /// The same finding about records `first ..= last`.
    pub fn records(mut self, first: u64, last: u64) -> Finding {
        self.first = Some(first);
        self.last = Some(last);
        self
    }

    /// The finding's class.
    pub fn class(&self) -> Class {
        self.kind.class()
    }
}

impl std::fmt::Display for Finding {
    /// `tampered: chain in segments/….jsonl records 5..5: detail`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.class().name(), self.kind.name())?;
        if let Some(key) = &self.segment {
            write!(f, " in {key}")?;
        }
        match (self.first, self.last) {
            (Some(a), Some(b)) if a == b => write!(f, " record {a}")?,
            (Some(a), Some(b)) => write!(f, " records {a}..{b}")?,
            (Some(a), None) => write!(f, " from record {a}")?,
            _ => {}
        }
        write!(f, ": {}", self.detail)
    }
}

/// Findings in order of discovery; record-level findings of one kind about consecutive
/// records of one segment are merged into one range.
#[derive(Debug, Default)]
pub struct Findings(pub Vec<Finding>);

impl Findings {
    /// Adds a finding.
    pub fn push(&mut self, finding: Finding) {
        self.0.push(finding);
    }

    /// Adds a finding about record `index` of segment `key`, extending a recent finding of
    /// the same kind about the record just before in that segment.
    pub fn record(
        &mut self,
        kind: FindingKind,
        key: &str,
        index: u64,
        detail: impl FnOnce() -> String,
    ) {
        let recent = self.0.iter_mut().rev().take(8).find(|f| {
            f.kind == kind
                && f.segment.as_deref() == Some(key)
                && f.last.is_some_and(|l| l.checked_add(1) == Some(index))
        });
        if let Some(finding) = recent {
            finding.last = Some(index);
            return;
        }
        self.push(Finding::new(kind, detail()).at(key).records(index, index));
    }
}
