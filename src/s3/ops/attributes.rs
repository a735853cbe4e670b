//! GetObjectAttributes: `GET /bucket/key?attributes`, the object's metadata without its body,
//! limited to the attributes named in `x-amz-object-attributes`.

use http::StatusCode;
use serde::Serialize;

use super::support::existing_bucket;
use crate::checksum::{Checksum, ChecksumAlgorithm};
use crate::meta::ObjectRecord;
use crate::s3::ctx::Ctx;
use crate::s3::error::{S3Error, S3Result};
use crate::s3::response::{self, http_date, S3Response};
use crate::s3::xml::{self, S3_NS};
use crate::store;

const ATTRIBUTES_HEADER: &str = "x-amz-object-attributes";
/// S3's page of parts when `x-amz-max-parts` is absent.
const DEFAULT_MAX_PARTS: u32 = 1000;

/// One attribute a client may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attribute {
    ETag,
    Checksum,
    ObjectParts,
    StorageClass,
    ObjectSize,
}

impl Attribute {
    fn parse(name: &str) -> Option<Attribute> {
        Some(match name {
            "ETag" => Attribute::ETag,
            "Checksum" => Attribute::Checksum,
            "ObjectParts" => Attribute::ObjectParts,
            "StorageClass" => Attribute::StorageClass,
            "ObjectSize" => Attribute::ObjectSize,
            _ => return None,
        })
    }
}

/// The attributes asked for: every `x-amz-object-attributes` header, comma-separated names.
fn requested(headers: &http::HeaderMap) -> S3Result<Vec<Attribute>> {
    let mut out = Vec::new();
    for value in headers.get_all(ATTRIBUTES_HEADER) {
        let text = value.to_str().map_err(|_| invalid_attributes())?;
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let attribute = Attribute::parse(name).ok_or_else(invalid_attributes)?;
            if !out.contains(&attribute) {
                out.push(attribute);
            }
        }
    }
    if out.is_empty() {
        return Err(S3Error::invalid_argument(
            "The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty",
        )
        .with("ArgumentName", ATTRIBUTES_HEADER));
    }
    Ok(out)
}

fn invalid_attributes() -> S3Error {
    S3Error::invalid_argument("Invalid attribute name specified.")
        .with("ArgumentName", ATTRIBUTES_HEADER)
}

/// `x-amz-max-parts` and `x-amz-part-number-marker`: non-negative integers.
struct PartsPage {
    max: u32,
    marker: u32,
}

fn parts_page(ctx: &Ctx) -> S3Result<PartsPage> {
    let number = |name: &'static str, default: u32| -> S3Result<u32> {
        match ctx.header(name) {
            None => Ok(default),
            Some(text) => text.trim().parse::<u32>().map_err(|_| {
                S3Error::invalid_argument(format!("Invalid value for header {name}"))
                    .with("ArgumentName", name)
                    .with("ArgumentValue", text)
            }),
        }
    };
    Ok(PartsPage {
        max: number("x-amz-max-parts", DEFAULT_MAX_PARTS)?.min(DEFAULT_MAX_PARTS),
        marker: number("x-amz-part-number-marker", 0)?,
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetObjectAttributesResponse {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "ETag", skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checksum: Option<ChecksumElement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object_parts: Option<ObjectParts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    storage_class: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object_size: Option<u64>,
}

/// `<ChecksumCRC32>` and its siblings: one element named after the algorithm.
#[derive(Debug, Default, Serialize)]
struct ChecksumValues {
    #[serde(rename = "ChecksumCRC32", skip_serializing_if = "Option::is_none")]
    crc32: Option<String>,
    #[serde(rename = "ChecksumCRC32C", skip_serializing_if = "Option::is_none")]
    crc32c: Option<String>,
    #[serde(rename = "ChecksumCRC64NVME", skip_serializing_if = "Option::is_none")]
    crc64nvme: Option<String>,
    #[serde(rename = "ChecksumSHA1", skip_serializing_if = "Option::is_none")]
    sha1: Option<String>,
    #[serde(rename = "ChecksumSHA256", skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
}

impl ChecksumValues {
    fn of(checksum: &Checksum) -> Self {
        let mut out = ChecksumValues::default();
        let value = Some(checksum.value.clone());
        match checksum.algorithm {
            ChecksumAlgorithm::Crc32 => out.crc32 = value,
            ChecksumAlgorithm::Crc32c => out.crc32c = value,
            ChecksumAlgorithm::Crc64Nvme => out.crc64nvme = value,
            ChecksumAlgorithm::Sha1 => out.sha1 = value,
            ChecksumAlgorithm::Sha256 => out.sha256 = value,
        }
        out
    }
}

#[derive(Debug, Serialize)]
struct ChecksumElement {
    #[serde(flatten)]
    values: ChecksumValues,
    #[serde(rename = "ChecksumType")]
    checksum_type: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ObjectParts {
    /// The model's `TotalPartsCount`; S3 names the element `PartsCount`.
    parts_count: usize,
    part_number_marker: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_part_number_marker: Option<u32>,
    max_parts: u32,
    is_truncated: bool,
    #[serde(rename = "Part", default)]
    part: Vec<PartElement>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct PartElement {
    part_number: u32,
    size: u64,
    #[serde(flatten)]
    checksum: ChecksumValues,
}

pub async fn get_object_attributes(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    let key = ctx.key()?;
    let attributes = requested(&ctx.headers)?;
    let page = parts_page(ctx)?;
    let version = super::support::version_param(ctx)?;
    // No object is stored with a customer-provided key, so such a key fits none of them.
    if ctx.headers.keys().any(|name| {
        name.as_str()
            .starts_with("x-amz-server-side-encryption-customer-")
    }) {
        return Err(S3Error::invalid_request(
            "The encryption parameters are not applicable to this object.",
        ));
    }
    existing_bucket(ctx, bucket)?;
    let record = match store::object_version(&ctx.gw.store, bucket, key, version)? {
        store::VersionView::Object { record, .. } => *record,
        marker => {
            return Err(super::support::delete_marker_error(
                key,
                version.is_some(),
                &marker,
            ))
        }
    };
    let doc = document(&record, &attributes, &page);
    let mut r = response::xml(
        StatusCode::OK,
        xml::to_xml("GetObjectAttributesResponse", &doc)?,
    );
    response::set_header(&mut r, "last-modified", &http_date(record.modified_ms));
    if version.is_some() {
        response::set_header(&mut r, "x-amz-version-id", record.shown_version_id());
    } else {
        super::support::version_header(ctx, &mut r, bucket, record.shown_version_id())?;
    }
    Ok(r)
}

fn document(
    record: &ObjectRecord,
    attributes: &[Attribute],
    page: &PartsPage,
) -> GetObjectAttributesResponse {
    let wants = |a: Attribute| attributes.contains(&a);
    GetObjectAttributesResponse {
        xmlns: S3_NS,
        // Unlike GetObject's header, S3 sends this ETag without quotes.
        etag: wants(Attribute::ETag).then(|| record.etag.clone()),
        checksum: record
            .checksum
            .as_ref()
            .filter(|_| wants(Attribute::Checksum))
            .map(|c| ChecksumElement {
                values: ChecksumValues::of(c),
                checksum_type: record.checksum_type.map_or("FULL_OBJECT", |t| t.name()),
            }),
        // Only an object assembled from parts has parts to show.
        object_parts: (wants(Attribute::ObjectParts) && !record.parts.is_empty())
            .then(|| object_parts(record, page)),
        storage_class: wants(Attribute::StorageClass).then_some("STANDARD"),
        object_size: wants(Attribute::ObjectSize).then_some(record.size),
    }
}

fn object_parts(record: &ObjectRecord, page: &PartsPage) -> ObjectParts {
    let after = page.marker as usize;
    let listed: Vec<PartElement> = record
        .parts
        .iter()
        .enumerate()
        .skip(after)
        .take(page.max as usize)
        .map(|(index, part)| PartElement {
            part_number: index as u32 + 1,
            size: part.size,
            checksum: part
                .checksum
                .as_ref()
                .map(ChecksumValues::of)
                .unwrap_or_default(),
        })
        .collect();
    let last = listed.last().map(|p| p.part_number);
    let is_truncated = last.is_some_and(|n| (n as usize) < record.parts.len());
    ObjectParts {
        parts_count: record.parts.len(),
        part_number_marker: page.marker,
        next_part_number_marker: last,
        max_parts: page.max,
        is_truncated,
        part: listed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::PartSummary;

    fn record(parts: usize) -> ObjectRecord {
        ObjectRecord {
            size: 30,
            etag: "abc-3".into(),
            checksum: Some(Checksum {
                algorithm: ChecksumAlgorithm::Crc32,
                value: "AAAAAA==-3".into(),
            }),
            attributes: Default::default(),
            modified_ms: 0,
            version_id: "v".into(),
            owner: "o".into(),
            replicas: Vec::new(),
            parts: (0..parts)
                .map(|i| PartSummary {
                    size: 10,
                    checksum: (i == 0).then(|| Checksum {
                        algorithm: ChecksumAlgorithm::Crc32,
                        value: "NhCmhg==".into(),
                    }),
                })
                .collect(),
            checksum_type: None,
            integrity: None,
            acl: None,
            tags: vec![],
            lock: Default::default(),
            versioned: false,
        }
    }

    fn render(record: &ObjectRecord, attributes: &[Attribute], max: u32, marker: u32) -> String {
        let doc = document(record, attributes, &PartsPage { max, marker });
        xml::to_xml("GetObjectAttributesResponse", &doc).unwrap()
    }

    #[test]
    fn only_the_requested_elements() {
        let xml = render(&record(3), &[Attribute::ObjectSize], 1000, 0);
        assert!(xml.contains("<ObjectSize>30</ObjectSize>"), "{xml}");
        for absent in ["ETag", "Checksum", "ObjectParts", "StorageClass"] {
            assert!(!xml.contains(absent), "{absent} in {xml}");
        }
        let xml = render(
            &record(0),
            &[Attribute::ETag, Attribute::ObjectParts],
            1000,
            0,
        );
        assert!(xml.contains("<ETag>abc-3</ETag>"), "{xml}");
        assert!(
            !xml.contains("ObjectParts"),
            "single-part objects have none: {xml}"
        );
    }

    #[test]
    fn parts_are_paged() {
        let xml = render(&record(3), &[Attribute::ObjectParts], 2, 0);
        assert!(xml.contains("<PartsCount>3</PartsCount><PartNumberMarker>0</PartNumberMarker><NextPartNumberMarker>2</NextPartNumberMarker><MaxParts>2</MaxParts><IsTruncated>true</IsTruncated><Part><PartNumber>1</PartNumber><Size>10</Size><ChecksumCRC32>NhCmhg==</ChecksumCRC32></Part><Part><PartNumber>2</PartNumber><Size>10</Size></Part></ObjectParts>"), "{xml}");
        let xml = render(&record(3), &[Attribute::ObjectParts], 2, 2);
        assert!(xml.contains("<NextPartNumberMarker>3</NextPartNumberMarker><MaxParts>2</MaxParts><IsTruncated>false</IsTruncated><Part><PartNumber>3</PartNumber>"), "{xml}");
        let xml = render(&record(3), &[Attribute::ObjectParts], 2, 7);
        assert!(
            xml.contains("<IsTruncated>false</IsTruncated></ObjectParts>"),
            "{xml}"
        );
    }

    #[test]
    fn attribute_names_are_checked() {
        let headers = |values: &[&str]| {
            let mut map = http::HeaderMap::new();
            for v in values {
                map.append(ATTRIBUTES_HEADER, v.parse().unwrap());
            }
            map
        };
        assert_eq!(
            requested(&headers(&["ETag, ObjectSize", "ETag"])).unwrap(),
            vec![Attribute::ETag, Attribute::ObjectSize]
        );
        assert_eq!(
            requested(&headers(&[])).unwrap_err().code,
            "InvalidArgument"
        );
        assert_eq!(
            requested(&headers(&[" , "])).unwrap_err().code,
            "InvalidArgument"
        );
        assert_eq!(
            requested(&headers(&["etag"])).unwrap_err().code,
            "InvalidArgument"
        );
    }
}
