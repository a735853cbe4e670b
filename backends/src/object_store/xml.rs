//! The provider documents the native requests send and read (S3's multipart protocol, also
//! spoken by GCS's XML API; Azure's block lists and errors), as quick-xml + serde types.
//!
//! Only the fields Hansa uses are declared; serde skips the rest (namespaces, owners, storage
//! classes), so providers that add elements still parse.

use crate::error::{BackendError, Result};
use quick_xml::events::Event;
use serde::{Deserialize, Serialize};

/// The answer to CreateMultipartUpload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct InitiateMultipartUploadResult {
    pub upload_id: String,
}

/// The body of CompleteMultipartUpload.
#[derive(Debug, Serialize)]
#[serde(rename = "CompleteMultipartUpload")]
pub(super) struct CompleteMultipartUpload {
    #[serde(rename = "Part")]
    pub parts: Vec<CompletePart>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CompletePart {
    pub part_number: u32,
    /// Quoted, as S3 hands ETags out.
    #[serde(rename = "ETag")]
    pub etag: String,
}

/// One page of ListMultipartUploads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListMultipartUploadsResult {
    #[serde(default)]
    pub is_truncated: bool,
    #[serde(default)]
    pub next_key_marker: Option<String>,
    #[serde(default)]
    pub next_upload_id_marker: Option<String>,
    #[serde(default, rename = "Upload")]
    pub uploads: Vec<ListedUpload>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListedUpload {
    pub key: String,
    pub upload_id: String,
    /// RFC 3339 (`2024-05-01T12:00:00.000Z`).
    #[serde(default)]
    pub initiated: String,
}

/// S3's and Azure's error document (`<Error><Code>…</Code>…</Error>`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorDocument {
    #[serde(default)]
    code: String,
}

/// The body of Azure's Put Block List: every block by `Latest`, which finds a block whether it
/// is still uncommitted or was committed by an earlier attempt, so a commit can be repeated.
#[derive(Debug, Serialize)]
#[serde(rename = "BlockList")]
pub(super) struct BlockList {
    #[serde(rename = "Latest")]
    pub latest: Vec<String>,
}

/// A request document with its XML declaration.
pub(super) fn to_document<T: Serialize>(value: &T) -> Result<String> {
    let body = quick_xml::se::to_string(value)
        .map_err(|e| BackendError::other(format!("cannot write an XML document: {e}")))?;
    Ok(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}"
    ))
}

/// A provider's answer as `T`; a malformed answer is the provider's failure to answer usefully
/// (another replica may do better), hence `Unavailable`.
pub(super) fn from_document<T: for<'de> Deserialize<'de>>(body: &[u8], what: &str) -> Result<T> {
    let text = std::str::from_utf8(body)
        .map_err(|_| BackendError::unavailable(format!("{what}: the answer is not UTF-8")))?;
    quick_xml::de::from_str(text)
        .map_err(|e| BackendError::unavailable(format!("{what}: unreadable answer: {e}")))
}

/// The local name of the document's root element.
fn root_element(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let mut reader = quick_xml::Reader::from_str(text);
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) | Event::Empty(e) => {
                return Some(String::from_utf8_lossy(e.local_name().as_ref()).into_owned())
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// The error code of an `<Error>` document (S3 sends one with a 200 when a completion fails
/// after the answer started); `None` for any other document.
pub(super) fn error_code(body: &[u8]) -> Option<String> {
    if root_element(body).as_deref() != Some("Error") {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    quick_xml::de::from_str::<ErrorDocument>(text)
        .ok()
        .map(|doc| doc.code.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initiate_result_gives_the_upload_id() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>b</Bucket><Key>a&amp;b</Key><UploadId>id&amp;1</UploadId>
</InitiateMultipartUploadResult>"#;
        let doc: InitiateMultipartUploadResult = from_document(xml, "create").expect("parse");
        assert_eq!(doc.upload_id, "id&1");
        assert!(from_document::<InitiateMultipartUploadResult>(b"<R/>", "create").is_err());
        assert!(from_document::<InitiateMultipartUploadResult>(b"\xff", "create").is_err());
    }

    #[test]
    fn errors_are_told_from_results() {
        let error = b"<Error><Code> NoSuchUpload </Code><Message>gone</Message></Error>";
        assert_eq!(error_code(error).as_deref(), Some("NoSuchUpload"));
        let result = b"<?xml version=\"1.0\"?><CompleteMultipartUploadResult><ETag>x</ETag>\
                       </CompleteMultipartUploadResult>";
        assert_eq!(error_code(result), None);
        assert_eq!(error_code(b""), None);
        assert_eq!(error_code(b"not xml"), None);
    }

    #[test]
    fn completion_lists_parts_with_quoted_etags() {
        let doc = CompleteMultipartUpload {
            parts: vec![
                CompletePart {
                    part_number: 2,
                    etag: "\"a<b\"".into(),
                },
                CompletePart {
                    part_number: 9,
                    etag: "\"c\"".into(),
                },
            ],
        };
        let xml = to_document(&doc).expect("write");
        assert!(xml.starts_with("<?xml"), "{xml}");
        // Read back with a general XML reader: the escaping is undone exactly.
        #[derive(Deserialize)]
        struct Back {
            #[serde(rename = "Part")]
            parts: Vec<BackPart>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct BackPart {
            part_number: u32,
            #[serde(rename = "ETag")]
            etag: String,
        }
        let back: Back = quick_xml::de::from_str(&xml).expect("parse");
        let parts: Vec<_> = back
            .parts
            .iter()
            .map(|p| (p.part_number, p.etag.as_str()))
            .collect();
        assert_eq!(parts, [(2, "\"a<b\""), (9, "\"c\"")]);
        assert_eq!(
            root_element(xml.as_bytes()).as_deref(),
            Some("CompleteMultipartUpload")
        );
    }

    #[test]
    fn upload_listings_page() {
        let xml = br#"<ListMultipartUploadsResult>
  <Bucket>b</Bucket><KeyMarker></KeyMarker>
  <NextKeyMarker>p/k2</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>
  <IsTruncated>true</IsTruncated>
  <Upload><Key>p/k1</Key><UploadId>u1</UploadId><Initiated>2024-05-01T12:00:00.000Z</Initiated></Upload>
  <Upload><Key>p/k2</Key><UploadId>u2</UploadId><Initiated>2024-05-01T12:00:01.000Z</Initiated></Upload>
</ListMultipartUploadsResult>"#;
        let page: ListMultipartUploadsResult = from_document(xml, "list").expect("parse");
        assert!(page.is_truncated);
        assert_eq!(page.next_key_marker.as_deref(), Some("p/k2"));
        assert_eq!(page.next_upload_id_marker.as_deref(), Some("u2"));
        let ids: Vec<_> = page.uploads.iter().map(|u| u.upload_id.as_str()).collect();
        assert_eq!(ids, ["u1", "u2"]);
        let empty: ListMultipartUploadsResult =
            from_document(b"<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>", "list")
                .expect("parse an empty page");
        assert!(!empty.is_truncated && empty.uploads.is_empty());
    }

    #[test]
    fn block_lists_name_every_block() {
        let xml = to_document(&BlockList {
            latest: vec!["AAA=".into(), "BBB=".into()],
        })
        .expect("write");
        assert!(
            xml.ends_with("<BlockList><Latest>AAA=</Latest><Latest>BBB=</Latest></BlockList>"),
            "{xml}"
        );
    }
}
