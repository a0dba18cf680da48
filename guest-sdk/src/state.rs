//! State across snapshots. The eBPF side keeps counts cumulative (reads never race with
//! increments); a guest that wants per-interval numbers keeps the previous snapshot here.
//!
//! ```
//! use gadget_sdk::{Deltas, top_n};
//!
//! let mut bytes = Deltas::default();
//! // First snapshot at t = 1 s: pid 7 wrote 4096 bytes so far, pid 9 wrote 100.
//! bytes.update([(7u32, 4096u64), (9, 100)], 1_000_000_000);
//! // Second at t = 3 s.
//! bytes.update([(7, 12288), (9, 100)], 3_000_000_000);
//! assert_eq!(bytes.delta(&7), Some(8192));
//! assert_eq!(bytes.rate(&7), Some(4096.0)); // per second
//! let top = top_n(bytes.iter_deltas(), 1, |(_, d)| *d);
//! assert_eq!(top, vec![(7, 8192)]);
//! ```

use std::collections::BTreeMap;

/// Cumulative counters per key → what changed since the previous snapshot, and how fast.
#[derive(Debug, Clone)]
pub struct Deltas<K: Ord> {
    previous: BTreeMap<K, u64>,
    current: BTreeMap<K, u64>,
    /// When the previous and current snapshots were taken; `None` until there was one.
    previous_ns: Option<u64>,
    current_ns: Option<u64>,
}

impl<K: Ord> Default for Deltas<K> {
    fn default() -> Self {
        Deltas {
            previous: BTreeMap::new(),
            current: BTreeMap::new(),
            previous_ns: None,
            current_ns: None,
        }
    }
}

impl<K: Ord + Clone> Deltas<K> {
    /// Records a snapshot's cumulative values, taken at `taken_at_ns`
    /// ([`crate::MapSnapshot::taken_at_ns`]). Keys that vanished are forgotten.
    pub fn update(&mut self, values: impl IntoIterator<Item = (K, u64)>, taken_at_ns: u64) {
        self.previous = std::mem::take(&mut self.current);
        self.previous_ns = self.current_ns.replace(taken_at_ns);
        self.current = values.into_iter().collect();
    }

    /// Increase since the previous snapshot; a key seen for the first time counts from zero.
    /// A counter that went backwards (its map entry was recreated) counts from zero as well.
    pub fn delta(&self, key: &K) -> Option<u64> {
        let now = *self.current.get(key)?;
        let before = self.previous.get(key).copied().unwrap_or(0);
        Some(if now >= before { now - before } else { now })
    }

    /// [`Deltas::delta`] per second; `None` until two snapshots were seen.
    pub fn rate(&self, key: &K) -> Option<f64> {
        let elapsed = self.current_ns?.checked_sub(self.previous_ns?)?;
        if elapsed == 0 {
            return None;
        }
        Some(self.delta(key)? as f64 * 1e9 / elapsed as f64)
    }

    /// The latest cumulative value.
    pub fn total(&self, key: &K) -> Option<u64> {
        self.current.get(key).copied()
    }

    /// (key, delta) for every current key.
    pub fn iter_deltas(&self) -> impl Iterator<Item = (K, u64)> + '_ {
        self.current
            .keys()
            .filter_map(|k| Some((k.clone(), self.delta(k)?)))
    }
}

/// The `n` items with the largest `score`, largest first; ties keep their input order.
pub fn top_n<T, S: Ord>(
    items: impl IntoIterator<Item = T>,
    n: usize,
    score: impl Fn(&T) -> S,
) -> Vec<T> {
    let mut v: Vec<T> = items.into_iter().collect();
    v.sort_by_key(|t| std::cmp::Reverse(score(t)));
    v.truncate(n);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_restart_from_zero_and_forget_vanished_keys() {
        let mut d = Deltas::default();
        d.update([("a", 10u64)], 0);
        assert_eq!(d.delta(&"a"), Some(10));
        assert_eq!(d.rate(&"a"), None);
        d.update([("a", 4), ("b", 1)], 500_000_000);
        assert_eq!(d.delta(&"a"), Some(4), "went backwards: recreated entry");
        assert_eq!(d.delta(&"b"), Some(1));
        assert_eq!(d.rate(&"b"), Some(2.0));
        d.update([("b", 1)], 1_000_000_000);
        assert_eq!(d.delta(&"a"), None);
        assert_eq!(d.delta(&"b"), Some(0));
    }

    #[test]
    fn top_n_is_stable() {
        assert_eq!(top_n([1, 5, 3, 5], 3, |x| *x), vec![5, 5, 3]);
        assert_eq!(top_n(Vec::<u8>::new(), 3, |x| *x), Vec::<u8>::new());
    }
}
