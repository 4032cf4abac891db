//! The running decision of a streamed verification.

use std::collections::VecDeque;

/// Mean score over the last `window` frames, compared with a threshold.
#[derive(Clone, Debug)]
pub struct RunningDecision {
    window: usize,
    threshold: f32,
    scores: VecDeque<f32>,
}

impl RunningDecision {
    /// A decision over windows of `window` (at least 1) frames.
    pub fn new(window: usize, threshold: f32) -> RunningDecision {
        RunningDecision {
            window: window.max(1),
            threshold,
            scores: VecDeque::new(),
        }
    }

    /// Adds a frame's score; returns `(running score, match, frames in window)`.
    pub fn push(&mut self, score: f32) -> (f32, bool, usize) {
        if self.scores.len() == self.window {
            self.scores.pop_front();
        }
        self.scores.push_back(score);
        let mean = self.scores.iter().sum::<f32>() / self.scores.len() as f32;
        (
            mean,
            biomatch_matcher::is_match(mean, self.threshold),
            self.scores.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_of_the_last_frames_decides() {
        let mut d = RunningDecision::new(3, 0.5);
        assert_eq!(d.push(0.9), (0.9, true, 1));
        assert!(!d.push(0.0).1);
        d.push(0.3);
        let (mean, ok, n) = d.push(0.9);
        assert!((mean - 0.4).abs() < 1e-6 && !ok && n == 3);
        let (mean, ok, _) = d.push(0.9);
        assert!((mean - 0.7).abs() < 1e-6 && ok);
    }
}
