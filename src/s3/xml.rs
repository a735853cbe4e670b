//! S3's XML documents: request bodies we parse and response bodies we write (quick-xml + serde).

use serde::{Deserialize, Serialize};

use super::error::{S3Error, S3Result};
use super::xml_text::control_references;
pub use super::xml_text::escape;

pub const S3_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Serializes a response document with the XML declaration.
pub fn to_xml<T: Serialize>(root: &str, value: &T) -> S3Result<String> {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let ser = quick_xml::se::Serializer::with_root(&mut out, Some(root))
        .map_err(|e| S3Error::internal(format!("xml: {e}")))?;
    value
        .serialize(ser)
        .map_err(|e| S3Error::internal(format!("xml: {e}")))?;
    // The serializer writes no line breaks of its own: every control character left is text.
    Ok(control_references(out))
}

/// Parses a request document whose root element must be `root`; anything that does not fit
/// the schema is MalformedXML.
pub fn from_xml<'de, T: Deserialize<'de>>(root: &str, body: &'de [u8]) -> S3Result<T> {
    let text = std::str::from_utf8(body).map_err(|_| S3Error::malformed_xml())?;
    if root_element(text).as_deref() != Some(root) || has_doctype(text) {
        return Err(S3Error::malformed_xml());
    }
    quick_xml::de::from_str(text).map_err(|e| {
        tracing::debug!(error = %e, "malformed request xml");
        S3Error::malformed_xml()
    })
}

/// The local name of the document's root element (namespace prefix dropped).
fn root_element(text: &str) -> Option<String> {
    let mut reader = quick_xml::Reader::from_str(text);
    loop {
        match reader.read_event().ok()? {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                return Some(String::from_utf8_lossy(e.local_name().as_ref()).into_owned())
            }
            quick_xml::events::Event::Eof => return None,
            _ => {}
        }
    }
}

/// S3's request documents never carry a DOCTYPE, and quick-xml's deserializer panics
/// (`unreachable!`) on one between two pieces of an element's text, so a document with one is
/// refused before it is deserialized.
fn has_doctype(text: &str) -> bool {
    let mut reader = quick_xml::Reader::from_str(text);
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::DocType(_)) => return true,
            Ok(quick_xml::events::Event::Eof) | Err(_) => return false,
            Ok(_) => {}
        }
    }
}

// ---- request documents ----

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct CreateBucketConfiguration {
    pub location_constraint: Option<String>,
}

#[derive(Debug, Default)]
pub struct Delete {
    pub quiet: bool,
    pub objects: Vec<DeleteObjectId>,
}

#[derive(Debug, Default)]
pub struct DeleteObjectId {
    pub key: String,
    pub version_id: Option<String>,
}

impl Delete {
    /// Parses a DeleteObjects document by hand: quick-xml's serde deserializer trims text,
    /// and whitespace at either end of a key is part of the key.
    pub fn parse(body: &[u8]) -> S3Result<Delete> {
        use quick_xml::events::Event;
        let text = std::str::from_utf8(body).map_err(|_| S3Error::malformed_xml())?;
        if root_element(text).as_deref() != Some("Delete") {
            return Err(S3Error::malformed_xml());
        }
        let mut reader = quick_xml::Reader::from_str(text);
        let mut doc = Delete::default();
        // Element names from the root down to the current element.
        let mut path: Vec<String> = Vec::new();
        let mut value = String::new();
        loop {
            match reader.read_event().map_err(|_| S3Error::malformed_xml())? {
                Event::Start(e) => {
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    if path.len() == 1 && name == "Object" {
                        doc.objects.push(DeleteObjectId::default());
                    }
                    path.push(name);
                    value.clear();
                }
                Event::Empty(e) => {
                    let name = e.local_name();
                    if path.len() == 1 && name.as_ref() == b"Object" {
                        return Err(S3Error::malformed_xml());
                    }
                }
                Event::Text(t) => {
                    let t = t.unescape().map_err(|_| S3Error::malformed_xml())?;
                    value.push_str(&t);
                }
                Event::CData(c) => value.push_str(&String::from_utf8_lossy(&c)),
                Event::End(_) => {
                    let field = path.pop().unwrap_or_default();
                    match (path.len(), path.last().map(String::as_str), field.as_str()) {
                        (1, Some("Delete"), "Quiet") => {
                            doc.quiet = match value.trim() {
                                "true" => true,
                                "false" => false,
                                _ => return Err(S3Error::malformed_xml()),
                            }
                        }
                        (2, Some("Object"), "Key") => {
                            if let Some(o) = doc.objects.last_mut() {
                                o.key = std::mem::take(&mut value);
                            }
                        }
                        (2, Some("Object"), "VersionId") => {
                            if let Some(o) = doc.objects.last_mut() {
                                o.version_id = Some(value.trim().to_string());
                            }
                        }
                        _ => {}
                    }
                    value.clear();
                }
                Event::Eof => break,
                _ => {}
            }
        }
        if !path.is_empty() || doc.objects.iter().any(|o| o.key.is_empty()) {
            return Err(S3Error::malformed_xml());
        }
        Ok(doc)
    }
}

/// CompleteMultipartUpload's request document.
#[derive(Debug, Deserialize, Default)]
pub struct CompleteMultipartUpload {
    #[serde(rename = "Part", default)]
    pub parts: Vec<CompletedPartEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CompletedPartEntry {
    pub part_number: u32,
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(rename = "ChecksumCRC32")]
    pub checksum_crc32: Option<String>,
    #[serde(rename = "ChecksumCRC32C")]
    pub checksum_crc32c: Option<String>,
    #[serde(rename = "ChecksumSHA1")]
    pub checksum_sha1: Option<String>,
    #[serde(rename = "ChecksumSHA256")]
    pub checksum_sha256: Option<String>,
    #[serde(rename = "ChecksumCRC64NVME")]
    pub checksum_crc64nvme: Option<String>,
}

impl CompletedPartEntry {
    /// The checksum the client named for this part, if any: (algorithm name, value).
    pub fn checksum(&self) -> Option<(&'static str, &str)> {
        [
            ("CRC32", &self.checksum_crc32),
            ("CRC32C", &self.checksum_crc32c),
            ("SHA1", &self.checksum_sha1),
            ("SHA256", &self.checksum_sha256),
            ("CRC64NVME", &self.checksum_crc64nvme),
        ]
        .into_iter()
        .find_map(|(name, v)| v.as_deref().map(|v| (name, v.trim())))
    }
}

// ---- response documents ----

#[derive(Debug, Serialize)]
pub struct Owner {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "DisplayName")]
    pub display_name: String,
}

/// The owner element for a canonical id: Hansa's canonical ids are access key ids, shown as
/// their own display names.
pub fn owner(id: &str) -> Owner {
    Owner {
        id: id.to_string(),
        display_name: id.to_string(),
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAllMyBucketsResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub buckets: Buckets,
    pub owner: Owner,
    /// Present when more buckets follow this page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuation_token: Option<String>,
    /// Echoes the request's `prefix`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Buckets {
    #[serde(rename = "Bucket", default)]
    pub bucket: Vec<BucketEntry>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BucketEntry {
    pub name: String,
    pub creation_date: String,
    pub bucket_region: String,
}

#[derive(Debug, Serialize)]
pub struct LocationConstraint {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    #[serde(rename = "$text")]
    pub region: String,
}

#[derive(Debug, Serialize)]
pub struct VersioningConfiguration {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    #[serde(rename = "Status", skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
}

/// PutBucketVersioning's document.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct VersioningRequest {
    pub status: Option<String>,
    #[serde(rename = "MfaDelete", alias = "MFADelete")]
    pub mfa_delete: Option<String>,
}

/// ListObjectVersions' answer; `entries` keep S3's order (keys ascending, each key's newest
/// version first), versions and delete markers interleaved.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListVersionsResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub name: String,
    pub prefix: String,
    pub key_marker: String,
    pub version_id_marker: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_key_marker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_version_id_marker: Option<String>,
    pub max_keys: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding_type: Option<String>,
    #[serde(rename = "$value")]
    pub entries: Vec<VersionElement>,
    #[serde(rename = "CommonPrefixes")]
    pub common_prefixes: Vec<CommonPrefix>,
}

#[derive(Debug, Serialize)]
pub enum VersionElement {
    Version(ListedVersion),
    DeleteMarker(ListedDeleteMarker),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListedVersion {
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub last_modified: String,
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<String>,
    pub size: u64,
    pub storage_class: &'static str,
    pub owner: Owner,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListedDeleteMarker {
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub last_modified: String,
    pub owner: Owner,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccessControlPolicy {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub owner: Owner,
    pub access_control_list: AccessControlList,
}

#[derive(Debug, Serialize)]
pub struct AccessControlList {
    #[serde(rename = "Grant")]
    pub grant: Vec<Grant>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Grant {
    pub grantee: Grantee,
    pub permission: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Grantee {
    #[serde(rename = "@xmlns:xsi")]
    pub xmlns_xsi: &'static str,
    #[serde(rename = "@xsi:type")]
    pub xsi_type: &'static str,
    #[serde(rename = "ID", skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "DisplayName", skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// A group grantee's URI.
    #[serde(rename = "URI", skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListObjectEntry {
    pub key: String,
    pub last_modified: String,
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<String>,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    pub storage_class: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CommonPrefix {
    pub prefix: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListBucketResultV1 {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub name: String,
    pub prefix: String,
    pub marker: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    pub max_keys: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding_type: Option<String>,
    #[serde(rename = "Contents")]
    pub contents: Vec<ListObjectEntry>,
    #[serde(rename = "CommonPrefixes")]
    pub common_prefixes: Vec<CommonPrefix>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListBucketResultV2 {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub name: String,
    pub prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    pub max_keys: usize,
    pub key_count: usize,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuation_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_continuation_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_after: Option<String>,
    #[serde(rename = "Contents")]
    pub contents: Vec<ListObjectEntry>,
    #[serde(rename = "CommonPrefixes")]
    pub common_prefixes: Vec<CommonPrefix>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CopyObjectResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub last_modified: String,
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(flatten)]
    pub checksums: ChecksumElements,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    #[serde(rename = "Deleted")]
    pub deleted: Vec<DeletedEntry>,
    #[serde(rename = "Error")]
    pub errors: Vec<DeleteErrorEntry>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeletedEntry {
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_marker: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_marker_version_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteErrorEntry {
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {

    #[test]
    fn control_characters_become_character_references() {
        assert_eq!(
            escape("a\u{1}b\rc\td\ne<\u{7f}"),
            "a&#x1;b&#xD;c\td\ne&lt;\u{7f}"
        );
        assert_eq!(escape("\0"), "&#x0;");
        let doc = super::LocationConstraint {
            xmlns: S3_NS,
            region: "k\u{1f}".into(),
        };
        let xml = to_xml("LocationConstraint", &doc).unwrap();
        assert!(
            xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<"),
            "{xml}"
        );
        assert!(xml.ends_with(">k&#x1F;</LocationConstraint>"), "{xml}");
    }

    #[test]
    fn copy_object_result_carries_the_checksum() {
        use crate::checksum::{Checksum, ChecksumAlgorithm};
        let c = Checksum::compute(ChecksumAlgorithm::Sha256, b"abc");
        let doc = CopyObjectResult {
            xmlns: S3_NS,
            last_modified: "2026-01-01T00:00:00.000Z".into(),
            etag: "e".into(),
            checksums: ChecksumElements::of(Some(&c)),
        };
        let xml = to_xml("CopyObjectResult", &doc).unwrap();
        assert!(
            xml.ends_with(&format!(
                "<ETag>e</ETag><ChecksumSHA256>{}</ChecksumSHA256></CopyObjectResult>",
                c.value
            )),
            "{xml}"
        );
    }

    #[test]
    fn multipart_documents() {
        use crate::checksum::{Checksum, ChecksumAlgorithm};
        let c = Checksum::compute(ChecksumAlgorithm::Crc32, b"abc");
        let doc = CopyPartResult {
            xmlns: S3_NS,
            last_modified: "2026-01-01T00:00:00.000Z".into(),
            etag: "\"e\"".into(),
            checksums: ChecksumElements::of(Some(&c)),
        };
        let xml = to_xml("CopyPartResult", &doc).unwrap();
        assert!(
            xml.contains(&format!(
                "<ETag>&quot;e&quot;</ETag><ChecksumCRC32>{}</ChecksumCRC32></CopyPartResult>",
                c.value
            )) || xml.contains(&format!(
                "<ETag>\"e\"</ETag><ChecksumCRC32>{}</ChecksumCRC32></CopyPartResult>",
                c.value
            )),
            "{xml}"
        );
        let done = CompleteMultipartUploadResult {
            xmlns: S3_NS,
            location: "http://h/b/k".into(),
            bucket: "b".into(),
            key: "k".into(),
            etag: "x-2".into(),
            checksums: ChecksumElements::of(Some(&Checksum {
                value: "v-2".into(),
                ..c.clone()
            })),
            checksum_type: Some("COMPOSITE"),
        };
        let xml = to_xml("CompleteMultipartUploadResult", &done).unwrap();
        assert!(
            xml.ends_with("<ETag>x-2</ETag><ChecksumCRC32>v-2</ChecksumCRC32><ChecksumType>COMPOSITE</ChecksumType></CompleteMultipartUploadResult>"),
            "{xml}"
        );
        let parsed: CompleteMultipartUpload = from_xml(
            "CompleteMultipartUpload",
            b"<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Part><PartNumber>1</PartNumber><ETag>\"a\"</ETag><ChecksumCRC32>q==</ChecksumCRC32></Part><Part><ETag>b</ETag><PartNumber>2</PartNumber></Part></CompleteMultipartUpload>",
        )
        .unwrap();
        assert_eq!(parsed.parts.len(), 2);
        assert_eq!(parsed.parts[0].checksum(), Some(("CRC32", "q==")));
        assert_eq!(
            (parsed.parts[1].part_number, parsed.parts[1].etag.as_str()),
            (2, "b")
        );
        assert!(from_xml::<CompleteMultipartUpload>(
            "CompleteMultipartUpload",
            b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>b</ETag></Part></CompleteMultipartUpload>"
        )
        .is_err());
    }
    use super::*;

    #[test]
    fn delete_document_parses_and_rejects_garbage() {
        let doc = br#"<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>
            <Object><Key>a&amp;b</Key></Object><Object><Key>c</Key><VersionId>null</VersionId></Object></Delete>"#;
        let d = Delete::parse(doc).unwrap();
        assert!(d.quiet);
        assert_eq!(d.objects.len(), 2);
        assert_eq!(d.objects[0].key, "a&b");
        assert_eq!(d.objects[1].version_id.as_deref(), Some("null"));
        let spaced =
            b"<Delete><Object><Key> lead</Key></Object><Object><Key>tab\t</Key></Object></Delete>";
        let d = Delete::parse(spaced).unwrap();
        assert_eq!(d.objects[0].key, " lead");
        assert_eq!(d.objects[1].key, "tab\t");
        assert!(!d.quiet);
        assert_eq!(
            Delete::parse(b"<Delete><Object>").unwrap_err().code,
            "MalformedXML"
        );
        assert_eq!(Delete::parse(b"\xff\xfe").unwrap_err().code, "MalformedXML");
        let foreign = b"<Other><Object><Key>k</Key></Object></Other>";
        assert_eq!(Delete::parse(foreign).unwrap_err().code, "MalformedXML");
    }

    #[test]
    fn doctype_inside_text_is_malformed_not_a_panic() {
        // Found by fuzz/fuzz_targets/xml.rs: quick-xml's deserializer hit `unreachable!` on
        // text, a DOCTYPE, then more text inside one element.
        let crash = br#"<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/1003-0-301/"><LocationConstraint>eu-wD<!DOCTYPE Delete [?!ENTITY a "aaaa">]><Delete><ObjB<Cest-1</LocationConst"#;
        let e =
            from_xml::<CreateBucketConfiguration>("CreateBucketConfiguration", crash).unwrap_err();
        assert_eq!(e.code, "MalformedXML");
        let split = b"<CreateBucketConfiguration><LocationConstraint>eu<!DOCTYPE x>-west-1</LocationConstraint></CreateBucketConfiguration>";
        let e =
            from_xml::<CreateBucketConfiguration>("CreateBucketConfiguration", split).unwrap_err();
        assert_eq!(e.code, "MalformedXML");
        let part = b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>a<!DOCTYPE x>b</ETag></Part></CompleteMultipartUpload>";
        let e = from_xml::<CompleteMultipartUpload>("CompleteMultipartUpload", part).unwrap_err();
        assert_eq!(e.code, "MalformedXML");
        // Text split by a comment, a processing instruction or CDATA is still one value.
        for split in [
            "eu<!--c-->-west-1",
            "eu<?pi x?>-west-1",
            "eu<![CDATA[-west]]>-1",
        ] {
            let doc = format!("<CreateBucketConfiguration><LocationConstraint>{split}</LocationConstraint></CreateBucketConfiguration>");
            let _ =
                from_xml::<CreateBucketConfiguration>("CreateBucketConfiguration", doc.as_bytes());
        }
    }

    #[test]
    fn list_result_serializes_with_namespace_and_repeated_elements() {
        let doc = ListBucketResultV2 {
            xmlns: S3_NS,
            name: "b".into(),
            prefix: "".into(),
            delimiter: Some("/".into()),
            max_keys: 1000,
            key_count: 1,
            is_truncated: false,
            encoding_type: None,
            continuation_token: None,
            next_continuation_token: None,
            start_after: None,
            contents: vec![ListObjectEntry {
                key: "a<b".into(),
                last_modified: "2026-01-01T00:00:00.000Z".into(),
                etag: "\"x\"".into(),
                checksum_algorithm: None,
                size: 1,
                owner: None,
                storage_class: "STANDARD",
            }],
            common_prefixes: vec![
                CommonPrefix {
                    prefix: "p/".into(),
                },
                CommonPrefix {
                    prefix: "q/".into(),
                },
            ],
        };
        let xml = to_xml("ListBucketResult", &doc).unwrap();
        assert!(
            xml.contains(r#"<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">"#),
            "{xml}"
        );
        assert!(xml.contains("<Key>a&lt;b</Key>"), "{xml}");
        assert!(xml.contains("<CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes><CommonPrefixes><Prefix>q/</Prefix></CommonPrefixes>"), "{xml}");
        assert!(!xml.contains("EncodingType"), "{xml}");
    }
}

/// The `ChecksumXXX` elements of a document: at most one is set.
#[derive(Debug, Serialize, Default)]
pub struct ChecksumElements {
    #[serde(skip_serializing_if = "Option::is_none", rename = "ChecksumCRC32")]
    pub crc32: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", rename = "ChecksumCRC32C")]
    pub crc32c: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", rename = "ChecksumSHA1")]
    pub sha1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", rename = "ChecksumSHA256")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", rename = "ChecksumCRC64NVME")]
    pub crc64nvme: Option<String>,
}

impl ChecksumElements {
    pub fn of(checksum: Option<&crate::checksum::Checksum>) -> Self {
        use crate::checksum::ChecksumAlgorithm::*;
        let mut out = Self::default();
        if let Some(c) = checksum {
            let value = Some(c.value.clone());
            match c.algorithm {
                Crc32 => out.crc32 = value,
                Crc32c => out.crc32c = value,
                Sha1 => out.sha1 = value,
                Sha256 => out.sha256 = value,
                Crc64Nvme => out.crc64nvme = value,
            }
        }
        out
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InitiateMultipartUploadResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CompleteMultipartUploadResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub location: String,
    pub bucket: String,
    pub key: String,
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(flatten)]
    pub checksums: ChecksumElements,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum_type: Option<&'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CopyPartResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub last_modified: String,
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(flatten)]
    pub checksums: ChecksumElements,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PartEntry {
    pub part_number: u32,
    pub last_modified: String,
    #[serde(rename = "ETag")]
    pub etag: String,
    pub size: u64,
    #[serde(flatten)]
    pub checksums: ChecksumElements,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListPartsResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub part_number_marker: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_part_number_marker: Option<u32>,
    pub max_parts: usize,
    pub is_truncated: bool,
    #[serde(rename = "Part")]
    pub parts: Vec<PartEntry>,
    pub initiator: Owner,
    pub owner: Owner,
    pub storage_class: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum_type: Option<&'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UploadEntry {
    pub key: String,
    pub upload_id: String,
    pub initiator: Owner,
    pub owner: Owner,
    pub storage_class: &'static str,
    pub initiated: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum_type: Option<&'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListMultipartUploadsResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    pub bucket: String,
    pub key_marker: String,
    pub upload_id_marker: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_key_marker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_upload_id_marker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    pub prefix: String,
    pub max_uploads: usize,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding_type: Option<String>,
    #[serde(rename = "Upload")]
    pub uploads: Vec<UploadEntry>,
    #[serde(rename = "CommonPrefixes")]
    pub common_prefixes: Vec<CommonPrefix>,
}
