//! The gRPC adapter: validates and converts each request, calls the service
//! layer once, converts the answer. No matching logic lives here.

mod calibration;
pub(crate) mod convert;
pub(crate) mod guard;
mod import;
mod jobs;
mod stream;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use biomatch_proto::v1 as pb;
use futures::{FutureExt, Stream, StreamExt};
use pb::matcher_server::Matcher;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, info_span};

use crate::error::ServiceError;
use crate::service::{EnrollInput, IdentifyInput, MatchService, Target, VerifyInput};
pub use jobs::{JobsGrpc, job_to_pb};

/// Records gathered into one durable batch on EnrollStream at most.
const STREAM_BATCH: usize = 512;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The `biomatch.v1.Matcher` service.
#[derive(Clone)]
pub struct MatcherGrpc {
    svc: Arc<MatchService>,
    max_message_bytes: usize,
}

impl MatcherGrpc {
    /// An adapter over `svc` that refuses messages over `max_message_bytes`.
    pub fn new(svc: Arc<MatchService>, max_message_bytes: usize) -> MatcherGrpc {
        MatcherGrpc { svc, max_message_bytes }
    }

    fn check_size<M: Message>(&self, m: &M) -> Result<(), ServiceError> {
        let n = m.encoded_len();
        if n > self.max_message_bytes {
            return Err(ServiceError::InvalidArgument(format!(
                "message is {n} bytes, over the limit of {} bytes (server.max_message_bytes)",
                self.max_message_bytes
            )));
        }
        Ok(())
    }

    fn enroll_input(&self, r: pb::EnrollRequest) -> Result<EnrollInput, ServiceError> {
        self.check_size(&r)?;
        let (template, quality) = convert::template(&self.svc, r.template, "template")?;
        Ok(EnrollInput {
            subject_id: r.subject_id,
            record_id: (!r.record_id.is_empty()).then_some(r.record_id),
            template,
            quality,
            metadata: r.metadata.into_iter().collect(),
        })
    }
}

fn ack_error(index: u64, record_id: String, e: ServiceError) -> pb::EnrollError {
    pb::EnrollError {
        index,
        record_id,
        code: e.code() as i32,
        message: e.to_string(),
    }
}

#[tonic::async_trait]
impl Matcher for MatcherGrpc {
    async fn enroll(&self, request: Request<pb::EnrollRequest>) -> Result<Response<pb::EnrollResponse>, Status> {
        let input = self.enroll_input(request.into_inner())?;
        let out = self.svc.enroll(input).instrument(info_span!("enroll")).await?;
        Ok(Response::new(pb::EnrollResponse {
            record_id: out.record_id,
            gallery: out.gallery,
        }))
    }

    type EnrollStreamStream = BoxStream<pb::EnrollAck>;

    async fn enroll_stream(
        &self,
        request: Request<Streaming<pb::EnrollRequest>>,
    ) -> Result<Response<Self::EnrollStreamStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let this = self.clone();
        tokio::spawn(
            async move {
                let mut index = 0u64;
                let mut total = 0u64;
                loop {
                    // Wait for one message, then take whatever else has already
                    // arrived: under load batches fill up, when idle each
                    // record is acknowledged without delay.
                    let first = match inbound.next().await {
                        None => break,
                        Some(Err(s)) => {
                            let _ = tx.send(Err(s)).await;
                            break;
                        }
                        Some(Ok(m)) => m,
                    };
                    let mut batch = vec![first];
                    let mut ended = false;
                    while batch.len() < STREAM_BATCH {
                        match inbound.next().now_or_never() {
                            Some(Some(Ok(m))) => batch.push(m),
                            Some(Some(Err(_))) | Some(None) => {
                                ended = true;
                                break;
                            }
                            None => break,
                        }
                    }
                    let mut errors = Vec::new();
                    let mut inputs = Vec::new();
                    let mut positions = Vec::new();
                    for m in batch {
                        let rid = m.record_id.clone();
                        match this.enroll_input(m) {
                            Ok(i) => {
                                inputs.push(i);
                                positions.push((index, rid));
                            }
                            Err(e) => errors.push(ack_error(index, rid, e)),
                        }
                        index += 1;
                    }
                    let mut record_ids = Vec::new();
                    for ((pos, rid), r) in positions.into_iter().zip(this.svc.enroll_batch(inputs).await) {
                        match r {
                            Ok(o) => record_ids.push(o.record_id),
                            Err(e) => errors.push(ack_error(pos, rid, e)),
                        }
                    }
                    errors.sort_by_key(|e| e.index);
                    total += record_ids.len() as u64;
                    let ack = pb::EnrollAck {
                        record_ids,
                        errors,
                        acknowledged_total: total,
                    };
                    if tx.send(Ok(ack)).await.is_err() || ended {
                        break;
                    }
                }
            }
            .instrument(info_span!("enroll_stream")),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn verify(&self, request: Request<pb::VerifyRequest>) -> Result<Response<pb::VerifyResponse>, Status> {
        let r = request.into_inner();
        self.check_size(&r)?;
        let target = match r.target {
            Some(pb::verify_request::Target::SubjectId(s)) => Target::Subject(s),
            Some(pb::verify_request::Target::RecordId(id)) => Target::Record(id),
            None => {
                return Err(
                    ServiceError::InvalidArgument("target (subject_id or record_id) is required".into()).into(),
                );
            }
        };
        if let Some(parts) = calibration::multi_parts(&self.svc, &r.probe, "probe")? {
            let Target::Subject(subject) = target else {
                return Err(ServiceError::InvalidArgument(
                    "a MULTI probe verifies against a subject_id, not one record".into(),
                )
                .into());
            };
            let out = self
                .svc
                .verify_multi(parts, subject, r.threshold, r.target_fmr)
                .instrument(info_span!("verify_multi"))
                .await?;
            return Ok(Response::new(calibration::fused_verify_to_pb(out)));
        }
        let (probe, _) = convert::template(&self.svc, r.probe, "probe")?;
        let out = self
            .svc
            .verify(VerifyInput {
                probe,
                target,
                threshold: r.threshold,
                target_fmr: r.target_fmr,
            })
            .instrument(info_span!("verify"))
            .await?;
        Ok(Response::new(pb::VerifyResponse {
            score: out.score,
            r#match: out.matched,
            threshold: out.threshold,
            record_id: out.record_id,
            compared: out.compared,
            distance: out.iris.map_or(0.0, |i| i.distance),
            rotation: out.iris.map_or(0, |i| i.shift),
            fmr: out.fmr,
            modalities: Vec::new(),
        }))
    }

    async fn identify(&self, request: Request<pb::IdentifyRequest>) -> Result<Response<pb::IdentifyResponse>, Status> {
        let r = request.into_inner();
        self.check_size(&r)?;
        let filter = r.metadata_filter.into_iter().collect::<BTreeMap<_, _>>();
        if let Some(parts) = calibration::multi_parts(&self.svc, &r.probe, "probe")? {
            let out = self
                .svc
                .identify_multi(parts, r.top_k as usize, r.threshold, r.target_fmr, filter)
                .instrument(info_span!("identify_multi"))
                .await?;
            return Ok(Response::new(pb::IdentifyResponse {
                candidates: out
                    .candidates
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| calibration::fused_candidate_to_pb(c, i as u32 + 1))
                    .collect(),
                gallery_size: 0,
                gallery: "multi".into(),
            }));
        }
        let search = convert::search_options(r.search_mode, r.ef, r.oversample)?;
        let (probe, _) = convert::template(&self.svc, r.probe, "probe")?;
        let out = self
            .svc
            .identify(IdentifyInput {
                probe,
                top_k: r.top_k as usize,
                threshold: r.threshold,
                target_fmr: r.target_fmr,
                filter,
                search,
                penetration: (r.penetration != 0.0).then_some(r.penetration),
            })
            .instrument(info_span!("identify"))
            .await?;
        Ok(Response::new(pb::IdentifyResponse {
            candidates: out
                .candidates
                .into_iter()
                .enumerate()
                .map(|(i, c)| pb::Candidate {
                    subject_id: c.subject_id,
                    record_id: c.record_id,
                    score: c.score,
                    rank: i as u32 + 1,
                    distance: c.iris.map_or(0.0, |m| m.distance),
                    rotation: c.iris.map_or(0, |m| m.shift),
                    fmr: c.fmr,
                    modalities: Vec::new(),
                })
                .collect(),
            gallery_size: out.gallery_size,
            gallery: out.gallery,
        }))
    }

    type StreamVerifyStream = BoxStream<pb::StreamVerifyResponse>;

    async fn stream_verify(
        &self,
        request: Request<Streaming<pb::StreamVerifyRequest>>,
    ) -> Result<Response<Self::StreamVerifyStream>, Status> {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(stream::run(self.clone(), request.into_inner(), tx).instrument(info_span!("stream_verify")));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delete(&self, request: Request<pb::DeleteRequest>) -> Result<Response<pb::DeleteResponse>, Status> {
        let r = request.into_inner();
        let target = match r.target {
            Some(pb::delete_request::Target::RecordId(id)) => Target::Record(id),
            Some(pb::delete_request::Target::SubjectId(s)) => Target::Subject(s),
            None => {
                return Err(
                    ServiceError::InvalidArgument("target (record_id or subject_id) is required".into()).into(),
                );
            }
        };
        let ids = self
            .svc
            .delete(target, r.purge)
            .instrument(info_span!("delete"))
            .await?;
        Ok(Response::new(pb::DeleteResponse {
            deleted: ids.len() as u64,
            record_ids: ids,
        }))
    }

    async fn get_record(&self, request: Request<pb::GetRecordRequest>) -> Result<Response<pb::Record>, Status> {
        let r = request.into_inner();
        let v = self
            .svc
            .get_record(&r.record_id, r.include_template)
            .instrument(info_span!("get_record"))
            .await?;
        Ok(Response::new(convert::record(v, &self.svc.config().iris_code_version)?))
    }

    type ListRecordsStream = BoxStream<pb::ListRecordsResponse>;

    async fn list_records(
        &self,
        request: Request<pb::ListRecordsRequest>,
    ) -> Result<Response<Self::ListRecordsStream>, Status> {
        let r = request.into_inner();
        let modality = match r.modality {
            0 => None,
            v => Some(convert::modality(v, "modality")?),
        };
        let page_size = match r.page_size {
            0 => 1000,
            n if n > 10_000 => return Err(ServiceError::InvalidArgument(format!("page_size {n} exceeds 10000")).into()),
            n => n as usize,
        };
        let subject = (!r.subject_id.is_empty()).then_some(r.subject_id);
        let svc = self.svc.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(
            async move {
                let mut after = (!r.page_token.is_empty()).then_some(r.page_token);
                let mut pages = 0u32;
                loop {
                    let page = match svc
                        .list(modality, subject.clone(), after.clone(), page_size, r.include_templates)
                        .await
                    {
                        Ok(p) => p,
                        Err(e) => {
                            let _ = tx.send(Err(e.into())).await;
                            break;
                        }
                    };
                    pages += 1;
                    let last = page.next_token.is_none() || (r.max_pages > 0 && pages >= r.max_pages);
                    after = page.next_token.clone();
                    let records: Result<Vec<pb::Record>, ServiceError> = page
                        .records
                        .into_iter()
                        .map(|r| convert::record(r, &svc.config().iris_code_version))
                        .collect();
                    let records = match records {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = tx.send(Err(e.into())).await;
                            break;
                        }
                    };
                    let msg = pb::ListRecordsResponse {
                        records,
                        next_page_token: page.next_token.unwrap_or_default(),
                    };
                    if tx.send(Ok(msg)).await.is_err() || last {
                        break;
                    }
                }
            }
            .instrument(info_span!("list_records")),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn gallery_stats(
        &self,
        _: Request<pb::GalleryStatsRequest>,
    ) -> Result<Response<pb::GalleryStatsResponse>, Status> {
        let infos = self.svc.stats();
        let total = infos.iter().map(|i| i.stats.records).sum();
        Ok(Response::new(pb::GalleryStatsResponse {
            galleries: infos
                .into_iter()
                .map(|i| pb::GalleryInfo {
                    name: i.name,
                    modality: i.key.map_or(0, |k| convert::modality_to_pb(k.modality) as i32),
                    dimension: i.key.map_or(0, |k| k.dim as u32),
                    records: i.stats.records,
                    subjects: i.stats.subjects,
                    pending_deletes: i.stats.pending_deletes,
                    segments: i.stats.segments,
                    unflushed_records: i.stats.unflushed,
                    disk_bytes: i.stats.disk_bytes,
                    error: i.error.unwrap_or_default(),
                    indexed_segments: i.stats.indexed_segments,
                    indexed_records: i.stats.indexed_records,
                })
                .collect(),
            total_records: total,
        }))
    }

    async fn calibrate(&self, request: Request<pb::CalibrateRequest>) -> Result<Response<pb::Calibration>, Status> {
        let r = request.into_inner();
        self.check_size(&r)?;
        let input = calibration::calibrate_input(r)?;
        let c = self.svc.calibrate(input).instrument(info_span!("calibrate")).await?;
        Ok(Response::new(calibration::calibration_to_pb(&c)))
    }

    async fn optimize_gallery(
        &self,
        request: Request<pb::OptimizeGalleryRequest>,
    ) -> Result<Response<pb::OptimizeGalleryResponse>, Status> {
        let r = request.into_inner();
        let modality = convert::modality(r.modality, "modality")?;
        let out = self
            .svc
            .optimize(modality, (r.dimension > 0).then_some(r.dimension as usize))
            .instrument(info_span!("optimize_gallery"))
            .await?;
        let rep = out.report;
        Ok(Response::new(pb::OptimizeGalleryResponse {
            gallery: out.gallery,
            segments_before: rep.segments_before as u32,
            segments_after: rep.segments_after as u32,
            records: rep.rows as u64,
            indexed_segments: rep.indexed_segments as u32,
            purged: rep.purged as u64,
            seconds: rep.seconds,
        }))
    }

    async fn get_calibration(
        &self,
        request: Request<pb::GetCalibrationRequest>,
    ) -> Result<Response<pb::Calibration>, Status> {
        let r = request.into_inner();
        let modality = convert::modality(r.modality, "modality")?;
        let c = self
            .svc
            .get_calibration(modality, (r.dimension > 0).then_some(r.dimension as usize))?;
        Ok(Response::new(calibration::calibration_to_pb(&c)))
    }
}
