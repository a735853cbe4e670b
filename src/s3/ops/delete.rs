//! DeleteObjects: up to 1000 keys in one request, quiet or verbose.

use http::StatusCode;

use super::object::{check_key, delete_key};
use super::support::{check_version_id, existing_bucket, read_small_body};
use crate::store::DeleteOutcome;
use futures::StreamExt;

use crate::s3::ctx::Ctx;
use crate::s3::error::{S3Error, S3Result};
use crate::s3::response::{self, S3Response};
use crate::s3::xml::{self, S3_NS};

const MAX_KEYS: usize = 1000;
const CONCURRENT_DELETES: usize = 16;

pub async fn delete_objects(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?.to_string();
    existing_bucket(ctx, &bucket)?;
    // S3 requires an integrity check on this request: Content-MD5, or (recent SDKs) a
    // x-amz-checksum-* header or trailer.
    let has_digest = ctx.headers.contains_key("content-md5")
        || ctx.headers.keys().any(|h| {
            h.as_str().starts_with("x-amz-checksum-") && h.as_str() != "x-amz-checksum-mode"
        })
        || ctx
            .header("x-amz-trailer")
            .is_some_and(|t| t.starts_with("x-amz-checksum-"));
    if !has_digest {
        return Err(S3Error::invalid_request(
            "Missing required header for this request: Content-MD5",
        ));
    }
    let body = read_small_body(ctx).await?;
    let doc = xml::Delete::parse(&body)?;
    if doc.objects.is_empty() || doc.objects.len() > MAX_KEYS {
        return Err(S3Error::malformed_xml());
    }
    let verdicts = super::policy::DeleteVerdicts::load(ctx, &bucket)?;
    let verdicts = &verdicts;
    // Keys are deleted a few at a time, so their index flushes share group commits instead of
    // costing one flush each; results keep the request's order.
    let ctx_ref: &Ctx = ctx;
    let bucket_ref = bucket.as_str();
    type Outcome = (String, Option<String>, S3Result<DeleteOutcome>);
    let outcomes: Vec<Outcome> = futures::stream::iter(doc.objects)
        .map(|object| async move {
            let version = object.version_id.as_deref();
            let checked = check_key(&object.key)
                .and_then(|()| version.map(check_version_id).transpose())
                .and_then(|_| verdicts.check(&object.key));
            let outcome = match checked {
                Ok(()) => delete_key(ctx_ref, bucket_ref, &object.key, version).await,
                Err(e) => Err(e),
            };
            (object.key, object.version_id, outcome)
        })
        .buffered(CONCURRENT_DELETES)
        .collect()
        .await;
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for (key, version_id, outcome) in outcomes {
        match outcome {
            Ok(_) if doc.quiet => {}
            Ok(done) => deleted.push(xml::DeletedEntry {
                key,
                delete_marker: done.delete_marker.then_some(true),
                // The marker made (no version asked for), or the marker removed.
                delete_marker_version_id: if done.delete_marker {
                    done.version_id
                } else {
                    None
                },
                version_id,
            }),
            Err(e) => errors.push(xml::DeleteErrorEntry {
                key,
                version_id,
                code: e.code.to_string(),
                message: e.message,
            }),
        }
    }
    let doc = xml::DeleteResult {
        xmlns: S3_NS,
        deleted,
        errors,
    };
    Ok(response::xml(
        StatusCode::OK,
        xml::to_xml("DeleteResult", &doc)?,
    ))
}
