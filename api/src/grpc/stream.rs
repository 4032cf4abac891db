//! StreamVerify: frames in, a running decision out, until the policy
//! decides, the frame or time limit passes, or the client ends the stream.

use std::time::Duration;

use biomatch_proto::v1 as pb;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::{Status, Streaming};

use super::{MatcherGrpc, convert};
use crate::error::ServiceError;
use crate::service::{GalleryKey, MAX_WINDOW, Policy, PolicyState, StreamOutcome, StreamStep, Target, VerifyInput};

/// A stream's settings from its config message.
struct Settings {
    subject: String,
    threshold: Option<f32>,
    target_fmr: Option<f64>,
    policy: Policy,
    max_frames: usize,
    deadline: Option<Instant>,
}

/// The running state once the first frame fixed the gallery.
struct Running {
    key: GalleryKey,
    threshold: f32,
    state: PolicyState,
    last_score: f32,
    last_step: Option<StreamStep>,
}

fn invalid(m: impl Into<String>) -> Status {
    ServiceError::InvalidArgument(m.into()).into()
}

fn settings(c: pb::StreamVerifyConfig) -> Result<Settings, Status> {
    crate::service::validate::id("config.subject_id", &c.subject_id)?;
    let window = |w: u32, field: &str| match w {
        0 => Ok(5),
        w if w as usize > MAX_WINDOW => Err(invalid(format!("{field} {w} exceeds {MAX_WINDOW}"))),
        w => Ok(w as usize),
    };
    let policy = match c.policy {
        None => Policy::Mean {
            window: window(c.window, "config.window")?,
            final_when_full: false,
        },
        Some(pb::stream_verify_config::Policy::Mean(m)) => Policy::Mean {
            window: window(m.window, "config.mean.window")?,
            final_when_full: m.final_when_full,
        },
        Some(pb::stream_verify_config::Policy::KOfN(p)) => Policy::KOfN {
            k: p.k as usize,
            n: p.n as usize,
        },
        Some(pb::stream_verify_config::Policy::Sprt(p)) => Policy::Sprt {
            alpha: p.alpha,
            beta: p.beta,
            genuine: (p.genuine_mean, p.genuine_std),
            impostor: (p.impostor_mean, p.impostor_std),
        },
    };
    // Settings that do not wait for the calibration are checked now, before
    // any frame.
    policy.check_settings()?;
    Ok(Settings {
        subject: c.subject_id,
        threshold: c.threshold,
        target_fmr: c.target_fmr,
        policy,
        max_frames: c.max_frames as usize,
        deadline: (c.timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(u64::from(c.timeout_ms))),
    })
}

fn response(frame_index: u64, score: f32, threshold: f32, step: StreamStep) -> pb::StreamVerifyResponse {
    pb::StreamVerifyResponse {
        frame_index,
        score,
        running_score: step.running,
        decision: if step.leaning_match {
            pb::StreamDecision::StreamMatch
        } else {
            pb::StreamDecision::StreamNoMatch
        } as i32,
        frames_in_window: step.frames as u32,
        outcome: match step.outcome {
            StreamOutcome::Undecided => pb::StreamOutcome::Undecided,
            StreamOutcome::Accepted => pb::StreamOutcome::StreamAccepted,
            StreamOutcome::Rejected => pb::StreamOutcome::StreamRejected,
            StreamOutcome::TimedOut => pb::StreamOutcome::StreamTimedOut,
            StreamOutcome::Inconclusive => pb::StreamOutcome::StreamInconclusive,
        } as i32,
        threshold,
    }
}

/// Serves one StreamVerify call, sending answers on `tx`.
pub(super) async fn run(
    this: MatcherGrpc,
    mut inbound: Streaming<pb::StreamVerifyRequest>,
    tx: mpsc::Sender<Result<pb::StreamVerifyResponse, Status>>,
) {
    let mut settings: Option<Settings> = None;
    let mut running: Option<Running> = None;
    let mut frame_index = 0u64;
    loop {
        let deadline = settings.as_ref().and_then(|s| s.deadline);
        let next = match deadline {
            Some(d) => tokio::time::timeout_at(d, inbound.next()).await,
            None => Ok(inbound.next().await),
        };
        let msg = match next {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(_) => {
                // The deadline passed with no final decision.
                let (score, threshold, last) = match &running {
                    Some(r) => (r.last_score, r.threshold, r.last_step),
                    None => (0.0, 0.0, None),
                };
                let step = StreamStep {
                    outcome: StreamOutcome::TimedOut,
                    ..last.unwrap_or(StreamStep {
                        running: 0.0,
                        leaning_match: false,
                        frames: 0,
                        outcome: StreamOutcome::Undecided,
                    })
                };
                let _ = tx.send(Ok(response(frame_index, score, threshold, step))).await;
                break;
            }
        };
        let result = async {
            let m = msg?;
            this.check_size(&m)?;
            match (m.config, &settings) {
                (Some(c), None) => settings = Some(settings_or(c)?),
                (Some(_), Some(_)) => return Err(invalid("config may only be sent on the first message")),
                (None, None) => return Err(invalid("the first message must carry config")),
                (None, Some(_)) => {}
            }
            let Some(frame) = m.frame else {
                return Ok::<_, Status>(None);
            };
            let s = settings.as_ref().expect("configured above");
            let (probe, _) = convert::template(&this.svc, Some(frame), "frame")?;
            let key = probe.key();
            if running.is_none() {
                let threshold = this.svc.decision_threshold(key, s.threshold, s.target_fmr)?;
                let policy = this.svc.resolve_policy(key, s.policy.clone())?;
                running = Some(Running {
                    key,
                    threshold,
                    state: PolicyState::new(policy, threshold, s.max_frames),
                    last_score: 0.0,
                    last_step: None,
                });
            }
            let r = running.as_mut().expect("set above");
            if key != r.key {
                return Err(invalid(format!(
                    "frame {frame_index} is for gallery {} but the stream verifies in {}",
                    key.name(),
                    r.key.name()
                )));
            }
            let out = this
                .svc
                .verify(VerifyInput {
                    probe,
                    target: Target::Subject(s.subject.clone()),
                    threshold: Some(r.threshold),
                    target_fmr: None,
                })
                .await?;
            let step = r.state.push(out.score);
            r.last_score = out.score;
            r.last_step = Some(step);
            let resp = response(frame_index, out.score, r.threshold, step);
            frame_index += 1;
            Ok(Some(resp))
        }
        .await;
        match result {
            Ok(Some(resp)) => {
                let done = resp.outcome != pb::StreamOutcome::Undecided as i32;
                if tx.send(Ok(resp)).await.is_err() || done {
                    break;
                }
            }
            Ok(None) => {}
            Err(status) => {
                let _ = tx.send(Err(status)).await;
                break;
            }
        }
    }
}

fn settings_or(c: pb::StreamVerifyConfig) -> Result<Settings, Status> {
    if c.threshold.is_some() && c.target_fmr.is_some() {
        return Err(invalid("give config.threshold or config.target_fmr, not both"));
    }
    settings(c)
}
