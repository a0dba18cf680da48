//! Log2 histograms as eBPF programs keep them: slot 0 counts value 0, slot k ≥ 1 counts values in
//! [2^(k-1), 2^k), and the last slot also takes everything larger (IG's and biolatency's layout).

use crate::Histogram;

/// Width of one slot in the map value: IG's gadgets use u32, ours u64 (no wrap in long runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotWidth {
    U32,
    U64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Log2Histogram {
    pub slots: Vec<u64>,
}

impl Log2Histogram {
    /// IG's slot count (`MAX_SLOTS` in profile_blockio): values up to 2^26 µs ≈ 67 s.
    pub const IG_SLOTS: usize = 27;

    /// Decodes a map value holding only the slot array, guessing the slot width from its size:
    /// 27 slots of u64 or of u32. Use [`Log2Histogram::from_le_bytes`] when the layout is known.
    pub fn from_le_slots(value: &[u8]) -> Result<Self, String> {
        let width = match value.len() {
            n if n == Self::IG_SLOTS * 8 => SlotWidth::U64,
            n if n == Self::IG_SLOTS * 4 => SlotWidth::U32,
            n => {
                return Err(format!(
                    "map value of {n} bytes is not a log2 histogram of {} u32 or u64 slots",
                    Self::IG_SLOTS
                ));
            }
        };
        Self::from_le_bytes(value, width)
    }

    /// Decodes a slot array of the given width.
    pub fn from_le_bytes(value: &[u8], width: SlotWidth) -> Result<Self, String> {
        let slots = match width {
            SlotWidth::U64 => value
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
            SlotWidth::U32 => value
                .chunks_exact(4)
                .map(|c| u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        };
        Ok(Log2Histogram { slots })
    }

    /// Adds another histogram slot by slot (for summing per-device entries).
    pub fn add(&mut self, other: &Log2Histogram) {
        if self.slots.len() < other.slots.len() {
            self.slots.resize(other.slots.len(), 0);
        }
        for (mine, theirs) in self.slots.iter_mut().zip(&other.slots) {
            *mine = mine.saturating_add(*theirs);
        }
    }

    pub fn total(&self) -> u64 {
        self.slots
            .iter()
            .fold(0u64, |acc, c| acc.saturating_add(*c))
    }

    /// Exclusive upper bound of slot `k`: 2^k (slot 0 holds only 0, so its bound is 1).
    pub fn upper_bound(k: usize) -> u64 {
        1u64.checked_shl(k as u32).unwrap_or(u64::MAX)
    }

    /// The WIT histogram for this slot array. Always [`Self::IG_SLOTS`] buckets at least, so the
    /// printed rows and exported `le` bounds do not change as values arrive.
    pub fn to_histogram(&self, field: &str, labels: Vec<(String, String)>) -> Histogram {
        let n = self.slots.len().max(Self::IG_SLOTS);
        let mut counts = self.slots.clone();
        counts.resize(n, 0);
        Histogram {
            field: field.to_string(),
            labels,
            upper_bounds: (0..n).map(Self::upper_bound).collect(),
            counts,
            sum: None,
        }
    }
}

/// A map value that is `gadget_histogram_slot__u32 field[27]` (IG's gadgets), for
/// [`crate::MapSnapshot::records`].
///
/// ```
/// use gadget_sdk::{FromBytes, Reader, Slots32};
/// let mut value = vec![0u8; 27 * 4];
/// value[4] = 3; // slot 1: three values in [1, 2)
/// let h = Slots32::from_bytes(&mut Reader::new(&value))?;
/// assert_eq!(h.0.total(), 3);
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slots32(pub Log2Histogram);

/// A map value that is `gadget_histogram_slot__u64 field[27]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slots64(pub Log2Histogram);

impl crate::FromBytes for Slots32 {
    const SIZE: usize = Log2Histogram::IG_SLOTS * 4;
    fn from_bytes(r: &mut crate::Reader) -> Result<Self, String> {
        Log2Histogram::from_le_bytes(r.bytes(Self::SIZE)?, SlotWidth::U32).map(Slots32)
    }
}

impl crate::FromBytes for Slots64 {
    const SIZE: usize = Log2Histogram::IG_SLOTS * 8;
    fn from_bytes(r: &mut crate::Reader) -> Result<Self, String> {
        Log2Histogram::from_le_bytes(r.bytes(Self::SIZE)?, SlotWidth::U64).map(Slots64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le_u32(v: &[u32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn decodes_both_widths() {
        let mut slots = vec![0u32; 27];
        slots[5] = 7;
        let h32 = Log2Histogram::from_le_slots(&le_u32(&slots)).unwrap();
        let bytes64: Vec<u8> = slots
            .iter()
            .flat_map(|x| u64::from(*x).to_le_bytes())
            .collect();
        let h64 = Log2Histogram::from_le_slots(&bytes64).unwrap();
        assert_eq!(h32, h64);
        assert_eq!(h32.total(), 7);
    }

    #[test]
    fn rejects_odd_sizes() {
        assert!(Log2Histogram::from_le_slots(&[0u8; 12]).is_err());
    }

    #[test]
    fn bounds_are_powers_of_two() {
        let h = Log2Histogram::default().to_histogram("latency", vec![]);
        assert_eq!(h.upper_bounds.len(), 27);
        assert_eq!(h.upper_bounds[0], 1);
        assert_eq!(h.upper_bounds[1], 2);
        assert_eq!(h.upper_bounds[26], 1 << 26);
    }

    #[test]
    fn add_sums_slotwise() {
        let mut a = Log2Histogram { slots: vec![1, 2] };
        a.add(&Log2Histogram {
            slots: vec![1, 1, 5],
        });
        assert_eq!(a.slots, vec![2, 3, 5]);
    }
}
