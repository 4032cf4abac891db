//! The running decision of a streamed verification: frame scores in, a
//! leaning and, once the policy allows, a final accept or reject out.
//!
//! Three policies, because deployments want different things from a video
//! or audio stream:
//! - mean of the last `window` scores, for continuous presence monitoring
//!   (optionally final once the first window is full);
//! - k of the first n frames matching, the rule access-control gates use;
//! - Wald's sequential probability ratio test, which stops as soon as the
//!   evidence reaches the asked error rates and so needs the fewest frames
//!   on average.

use std::collections::VecDeque;

use biomatch_matcher::is_match;

use crate::error::ServiceError;

/// Most frames a window or n may cover.
pub const MAX_WINDOW: usize = 1000;

/// How frame scores add up to a decision.
#[derive(Clone, Debug, PartialEq)]
pub enum Policy {
    /// Mean of the last `window` scores against the threshold.
    Mean {
        /// Frames averaged.
        window: usize,
        /// The first full window is final.
        final_when_full: bool,
    },
    /// Accept once `k` of the first `n` frames match.
    KOfN {
        /// Matching frames needed.
        k: usize,
        /// Frames considered.
        n: usize,
    },
    /// Sequential probability ratio test with Gaussian score models.
    Sprt {
        /// Wanted false accept probability.
        alpha: f64,
        /// Wanted false reject probability.
        beta: f64,
        /// Genuine score mean and standard deviation.
        genuine: (f64, f64),
        /// Impostor score mean and standard deviation.
        impostor: (f64, f64),
    },
}

impl Policy {
    /// Checks the settings; errors name the proto fields.
    pub fn validated(self) -> Result<Policy, ServiceError> {
        let bad = |m: String| Err(ServiceError::InvalidArgument(m));
        match &self {
            Policy::Mean { window, .. } if *window == 0 || *window > MAX_WINDOW => {
                bad(format!("config.mean.window {window} is outside 1 to {MAX_WINDOW}"))
            }
            Policy::KOfN { k, n } if *n == 0 || *n > MAX_WINDOW => {
                bad(format!("config.k_of_n.n {n} is outside 1 to {MAX_WINDOW}"))
            }
            Policy::KOfN { k, n } if *k == 0 || k > n => bad(format!("config.k_of_n.k {k} is outside 1 to n ({n})")),
            Policy::Sprt { alpha, beta, .. } if !(*alpha > 0.0 && *alpha < 0.5 && *beta > 0.0 && *beta < 0.5) => bad(
                format!("config.sprt alpha {alpha} and beta {beta} must both lie strictly between 0 and 0.5"),
            ),
            Policy::Sprt { genuine, impostor, .. }
                if ![genuine.0, genuine.1, impostor.0, impostor.1]
                    .iter()
                    .all(|v| v.is_finite())
                    || genuine.1 <= 0.0
                    || impostor.1 <= 0.0 =>
            {
                bad("config.sprt score models need finite means and positive standard deviations".into())
            }
            Policy::Sprt { genuine, impostor, .. } if genuine.0 <= impostor.0 => bad(format!(
                "config.sprt genuine mean {} must exceed the impostor mean {}",
                genuine.0, impostor.0
            )),
            _ => Ok(self),
        }
    }
}

impl Policy {
    /// Whether an SPRT policy leaves a score model (standard deviation 0)
    /// to be filled in from the gallery's calibration.
    pub fn needs_models(&self) -> bool {
        matches!(self, Policy::Sprt { genuine, impostor, .. } if genuine.1 == 0.0 || impostor.1 == 0.0)
    }

    /// Checks what can be checked before the models are known: everything,
    /// with placeholder models standing in for those left to the calibration.
    pub fn check_settings(&self) -> Result<(), ServiceError> {
        let mut p = self.clone();
        if let Policy::Sprt { genuine, impostor, .. } = &mut p
            && self.needs_models()
        {
            (*genuine, *impostor) = ((1.0, 1.0), (0.0, 1.0));
        }
        p.validated().map(drop)
    }
}

/// Whether the decision is final.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamOutcome {
    /// More frames are needed.
    Undecided,
    /// Verified; the stream ends.
    Accepted,
    /// Not verified; the stream ends.
    Rejected,
    /// The time limit passed first; the stream ends.
    TimedOut,
    /// The frame limit passed first; the stream ends.
    Inconclusive,
}

impl StreamOutcome {
    /// True for every outcome that ends the stream.
    pub fn is_final(self) -> bool {
        self != StreamOutcome::Undecided
    }
}

/// The state after one frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StreamStep {
    /// Mean score, matching frames, or log likelihood ratio, by policy.
    pub running: f32,
    /// Which way the policy leans.
    pub leaning_match: bool,
    /// Frames the running statistic covers.
    pub frames: usize,
    /// Whether it is final.
    pub outcome: StreamOutcome,
}

/// A policy applied to a stream's scores.
#[derive(Clone, Debug)]
pub struct PolicyState {
    policy: Policy,
    threshold: f32,
    max_frames: usize,
    window: VecDeque<f32>,
    seen: usize,
    matches: usize,
    llr: f64,
}

impl PolicyState {
    /// A fresh state; `max_frames` 0 means no frame limit.
    pub fn new(policy: Policy, threshold: f32, max_frames: usize) -> PolicyState {
        PolicyState {
            policy,
            threshold,
            max_frames,
            window: VecDeque::new(),
            seen: 0,
            matches: 0,
            llr: 0.0,
        }
    }

    /// Adds one frame's score.
    pub fn push(&mut self, score: f32) -> StreamStep {
        self.seen += 1;
        let mut step = match &self.policy {
            Policy::Mean {
                window,
                final_when_full,
            } => {
                if self.window.len() == *window {
                    self.window.pop_front();
                }
                self.window.push_back(score);
                let mean = self.window.iter().sum::<f32>() / self.window.len() as f32;
                let ok = is_match(mean, self.threshold);
                let outcome = match (*final_when_full && self.window.len() == *window, ok) {
                    (false, _) => StreamOutcome::Undecided,
                    (true, true) => StreamOutcome::Accepted,
                    (true, false) => StreamOutcome::Rejected,
                };
                StreamStep {
                    running: mean,
                    leaning_match: ok,
                    frames: self.window.len(),
                    outcome,
                }
            }
            Policy::KOfN { k, n } => {
                self.matches += usize::from(is_match(score, self.threshold));
                let outcome = if self.matches >= *k {
                    StreamOutcome::Accepted
                } else if self.matches + n.saturating_sub(self.seen) < *k {
                    StreamOutcome::Rejected
                } else {
                    StreamOutcome::Undecided
                };
                StreamStep {
                    running: self.matches as f32,
                    leaning_match: self.matches >= *k,
                    frames: self.seen.min(*n),
                    outcome,
                }
            }
            Policy::Sprt {
                alpha,
                beta,
                genuine,
                impostor,
            } => {
                self.llr += frame_llr(f64::from(score), *genuine, *impostor);
                let accept_at = ((1.0 - beta) / alpha).ln();
                let reject_at = (beta / (1.0 - alpha)).ln();
                let outcome = if self.llr >= accept_at {
                    StreamOutcome::Accepted
                } else if self.llr <= reject_at {
                    StreamOutcome::Rejected
                } else {
                    StreamOutcome::Undecided
                };
                StreamStep {
                    running: self.llr as f32,
                    leaning_match: self.llr > 0.0,
                    frames: self.seen,
                    outcome,
                }
            }
        };
        if step.outcome == StreamOutcome::Undecided && self.max_frames > 0 && self.seen >= self.max_frames {
            step.outcome = StreamOutcome::Inconclusive;
        }
        step
    }
}

/// One frame's log likelihood ratio, genuine over impostor, with Gaussian
/// models. The score is first clamped between the two means: there the ratio
/// grows with the score whatever the spreads, whereas outside it two
/// Gaussians of unequal spread would let a very low score count for the
/// genuine side. Each frame's evidence is therefore bounded, and a decision
/// rests on several frames unless the models are far apart.
fn frame_llr(score: f64, (mg, sg): (f64, f64), (mi, si): (f64, f64)) -> f64 {
    let s = score.clamp(mi, mg);
    (si / sg).ln() - (s - mg).powi(2) / (2.0 * sg * sg) + (s - mi).powi(2) / (2.0 * si * si)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(p: Policy, threshold: f32, max_frames: usize, scores: &[f32]) -> Vec<StreamStep> {
        let mut st = PolicyState::new(p.validated().unwrap(), threshold, max_frames);
        scores.iter().map(|&s| st.push(s)).collect()
    }

    #[test]
    fn mean_of_the_last_frames_decides() {
        let mean = Policy::Mean {
            window: 3,
            final_when_full: false,
        };
        let steps = run(mean, 0.5, 0, &[0.9, 0.0, 0.3, 0.9, 0.9]);
        assert!(steps[0].leaning_match && steps[0].frames == 1);
        assert!(!steps[1].leaning_match);
        assert!((steps[3].running - 0.4).abs() < 1e-6 && !steps[3].leaning_match && steps[3].frames == 3);
        assert!((steps[4].running - 0.7).abs() < 1e-6 && steps[4].leaning_match);
        assert!(steps.iter().all(|s| s.outcome == StreamOutcome::Undecided));
        let fin = Policy::Mean {
            window: 2,
            final_when_full: true,
        };
        let steps = run(fin, 0.5, 0, &[0.9, 0.2]);
        assert_eq!(steps[0].outcome, StreamOutcome::Undecided);
        assert_eq!(steps[1].outcome, StreamOutcome::Accepted);
    }

    #[test]
    fn k_of_n_accepts_early_and_rejects_when_k_is_out_of_reach() {
        let p = Policy::KOfN { k: 2, n: 4 };
        let steps = run(p.clone(), 0.5, 0, &[0.6, 0.1, 0.7]);
        assert_eq!(steps[1].outcome, StreamOutcome::Undecided);
        assert_eq!(steps[2].outcome, StreamOutcome::Accepted);
        let steps = run(p, 0.5, 0, &[0.1, 0.2, 0.3]);
        assert_eq!(steps[1].outcome, StreamOutcome::Undecided);
        assert_eq!(
            steps[2].outcome,
            StreamOutcome::Rejected,
            "one frame left cannot make two"
        );
    }

    fn sprt() -> Policy {
        Policy::Sprt {
            alpha: 1e-3,
            beta: 1e-2,
            genuine: (0.7, 0.1),
            impostor: (0.0, 0.05),
        }
    }

    #[test]
    fn sprt_stops_on_the_evidence() {
        // Genuine-looking frames accept, impostor-looking frames reject,
        // each within a few frames; ambiguous ones keep it open.
        let steps = run(sprt(), 0.5, 0, &[0.65; 10]);
        let at = steps.iter().position(|s| s.outcome.is_final()).unwrap();
        assert_eq!(steps[at].outcome, StreamOutcome::Accepted);
        assert!(at < 5, "{at}");
        let steps = run(sprt(), 0.5, 0, &[0.02; 10]);
        let at = steps.iter().position(|s| s.outcome.is_final()).unwrap();
        assert_eq!(steps[at].outcome, StreamOutcome::Rejected);
        // A score far below the impostor mean must not count for genuine.
        let steps = run(sprt(), 0.5, 0, &[-5.0]);
        assert!(steps[0].running < 0.0);
        let steps = run(sprt(), 0.5, 0, &[0.2, 0.3]);
        assert_eq!(steps[1].outcome, StreamOutcome::Undecided);
    }

    #[test]
    fn frame_limit_makes_an_open_stream_inconclusive() {
        let mean = Policy::Mean {
            window: 5,
            final_when_full: false,
        };
        let steps = run(mean, 0.5, 3, &[0.9, 0.9, 0.9]);
        assert_eq!(steps[2].outcome, StreamOutcome::Inconclusive);
        // A final decision on the last allowed frame stands.
        let steps = run(Policy::KOfN { k: 1, n: 5 }, 0.5, 1, &[0.9]);
        assert_eq!(steps[0].outcome, StreamOutcome::Accepted);
    }

    #[test]
    fn bad_settings_are_refused() {
        for p in [
            Policy::Mean {
                window: 0,
                final_when_full: false,
            },
            Policy::KOfN { k: 3, n: 2 },
            Policy::KOfN { k: 0, n: 2 },
            Policy::Sprt {
                alpha: 0.0,
                beta: 0.1,
                genuine: (0.7, 0.1),
                impostor: (0.0, 0.1),
            },
            Policy::Sprt {
                alpha: 0.01,
                beta: 0.1,
                genuine: (0.0, 0.1),
                impostor: (0.5, 0.1),
            },
            Policy::Sprt {
                alpha: 0.01,
                beta: 0.1,
                genuine: (0.7, 0.0),
                impostor: (0.0, 0.1),
            },
        ] {
            assert!(p.clone().validated().is_err(), "{p:?}");
        }
    }
}
