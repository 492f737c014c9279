//! The retry budget of a backend: retries may add at most `ratio` extra calls over the
//! calls made (plus a small reserve), so a struggling backend is not buried under retries.

use std::sync::atomic::{AtomicI64, Ordering};

/// Milli-tokens: each first attempt deposits `ratio * 1000`, each retry withdraws 1000.
#[derive(Debug)]
pub struct RetryBudget {
    balance: AtomicI64,
    deposit: i64,
    cap: i64,
}

impl RetryBudget {
    pub fn new(ratio: f64, reserve: u32) -> RetryBudget {
        let cap = i64::from(reserve.max(1)) * 1_000;
        RetryBudget {
            balance: AtomicI64::new(cap),
            deposit: (ratio.clamp(0.0, 1.0) * 1_000.0) as i64,
            cap,
        }
    }

    /// A first attempt was made.
    pub fn deposit(&self) {
        let _ = self
            .balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some((b + self.deposit).min(self.cap))
            });
    }

    /// Takes one retry from the budget, if there is one.
    pub fn withdraw(&self) -> bool {
        self.balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                (b >= 1_000).then_some(b - 1_000)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_bounded_by_the_calls_made() {
        let b = RetryBudget::new(0.2, 2);
        assert!(b.withdraw() && b.withdraw(), "the reserve");
        assert!(!b.withdraw());
        for _ in 0..4 {
            b.deposit();
        }
        assert!(!b.withdraw(), "4 calls earn 0.8 of a retry");
        b.deposit();
        assert!(b.withdraw(), "5 calls earn one");
        for _ in 0..1_000 {
            b.deposit();
        }
        assert!(
            b.withdraw() && b.withdraw() && !b.withdraw(),
            "capped at the reserve"
        );
    }
}
