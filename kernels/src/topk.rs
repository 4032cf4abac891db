//! Bounded selection of the best-scoring hits.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// One scored gallery row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    /// Similarity; higher is better.
    pub score: f32,
    /// Row identifier given by the caller.
    pub id: u64,
}

impl Hit {
    /// Total order, best first: higher score, then lower id. The id breaks
    /// ties so that results do not depend on how rayon split the work.
    fn better_than(&self, other: &Hit) -> Ordering {
        self.score.total_cmp(&other.score).then_with(|| other.id.cmp(&self.id))
    }
}

/// Heap entry ordered so that the *worst* kept hit sits at the top.
#[derive(Clone, Copy, Debug)]
struct Worst(Hit);

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.better_than(&self.0)
    }
}

/// The `k` best hits seen so far.
#[derive(Clone, Debug)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
}

impl TopK {
    /// An empty selection that keeps at most `k` hits.
    pub fn new(k: usize) -> TopK {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.min(4096) + 1),
        }
    }

    /// How many hits it keeps at most.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of hits kept.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when no hit is kept.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The score a new hit must exceed to enter: the worst kept score once
    /// `k` hits are kept, negative infinity before.
    #[inline]
    pub fn threshold(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.heap.peek().map_or(f32::NEG_INFINITY, |w| w.0.score)
        }
    }

    /// Offers a hit; it is kept when it beats the worst kept one.
    #[inline]
    pub fn push(&mut self, score: f32, id: u64) {
        if self.k == 0 || score.is_nan() {
            return;
        }
        let hit = Hit { score, id };
        if self.heap.len() < self.k {
            self.heap.push(Worst(hit));
        } else if let Some(mut worst) = self.heap.peek_mut()
            && hit.better_than(&worst.0) == Ordering::Greater
        {
            *worst = Worst(hit);
        }
    }

    /// Folds another selection into this one.
    pub fn merge(mut self, other: TopK) -> TopK {
        for w in other.heap {
            self.push(w.0.score, w.0.id);
        }
        self
    }

    /// The kept hits, best first.
    pub fn into_sorted_vec(self) -> Vec<Hit> {
        let mut v: Vec<Hit> = self.heap.into_iter().map(|w| w.0).collect();
        v.sort_by(|a, b| b.better_than(a));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_best_k_in_order() {
        let mut t = TopK::new(3);
        for (i, s) in [0.1, 0.9, 0.5, 0.7, 0.2, 0.95].iter().enumerate() {
            t.push(*s, i as u64);
        }
        let v = t.into_sorted_vec();
        let ids: Vec<u64> = v.iter().map(|h| h.id).collect();
        assert_eq!(ids, vec![5, 1, 3]);
    }

    #[test]
    fn ties_prefer_the_lower_id_whatever_the_order() {
        let mut a = TopK::new(2);
        let mut b = TopK::new(2);
        for id in [4u64, 2, 9, 1] {
            a.push(1.0, id);
        }
        for id in [1u64, 9, 2, 4] {
            b.push(1.0, id);
        }
        let ids = |t: TopK| t.into_sorted_vec().iter().map(|h| h.id).collect::<Vec<_>>();
        assert_eq!(ids(a), vec![1, 2]);
        assert_eq!(ids(b), vec![1, 2]);
    }

    #[test]
    fn merge_equals_single_pass_and_nan_is_ignored() {
        let scores: Vec<f32> = (0..100).map(|i| ((i * 37) % 101) as f32).collect();
        let mut whole = TopK::new(7);
        let mut left = TopK::new(7);
        let mut right = TopK::new(7);
        for (i, s) in scores.iter().enumerate() {
            whole.push(*s, i as u64);
            if i < 50 {
                left.push(*s, i as u64)
            } else {
                right.push(*s, i as u64)
            }
        }
        left.push(f32::NAN, 1000);
        assert_eq!(left.merge(right).into_sorted_vec(), whole.into_sorted_vec());
    }
}
