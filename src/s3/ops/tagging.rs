//! Tags: Put/Get/DeleteObjectTagging, Put/Get/DeleteBucketTagging, and the tag set the writes
//! take at creation (`x-amz-tagging` on PutObject, CopyObject and CreateMultipartUpload, the
//! `tagging` field of a form upload). An object's tags live in its index record; changing them
//! never rewrites its bytes. A bucket's live in `BucketSetting::Tagging`.

use http::{HeaderMap, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;

use super::support::{existing_bucket, has_body_digest, named_version, read_small_body};
use crate::meta::{BucketSetting, ObjectRecord, Tag};
use crate::s3::ctx::Ctx;
use crate::s3::error::{S3Error, S3Result};
use crate::s3::response::{self, S3Response};
use crate::s3::xml::{self, S3_NS};
use crate::store;

/// S3's limits: 10 tags on an object, 50 on a bucket; keys of 1 to 128 and values of 0 to 256
/// characters, counted as S3 stores them, in UTF-16 code units.
const MAX_OBJECT_TAGS: usize = 10;
const MAX_BUCKET_TAGS: usize = 50;
const MAX_KEY_UNITS: usize = 128;
const MAX_VALUE_UNITS: usize = 256;

/// Whose tag set is checked: the limits and some messages differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagOwner {
    Object,
    Bucket,
}

fn invalid_tag(message: &str) -> S3Error {
    S3Error::new("InvalidTag", StatusCode::BAD_REQUEST, message)
}

/// Letters, digits, white space and `+ - = . _ : / @`: the characters S3 allows in tag keys
/// and values (the pattern `[\p{L}\p{Z}\p{N}_.:/=+\-@]`).
fn allowed(c: char) -> bool {
    c.is_alphabetic()
        || c.is_numeric()
        || (c.is_whitespace() && !c.is_control())
        || matches!(c, '+' | '-' | '=' | '.' | '_' | ':' | '/' | '@')
}

/// Checks a tag set against S3's rules, as S3 answers each: more than 10 tags on an object is
/// `BadRequest` (so S3 answered PutObject and PutObjectTagging), everything else `InvalidTag`.
pub fn validate(tags: &[Tag], owner: TagOwner) -> S3Result<()> {
    match owner {
        TagOwner::Object if tags.len() > MAX_OBJECT_TAGS => {
            return Err(S3Error::new(
                "BadRequest",
                StatusCode::BAD_REQUEST,
                "Object tags cannot be greater than 10",
            ))
        }
        TagOwner::Bucket if tags.len() > MAX_BUCKET_TAGS => {
            return Err(invalid_tag("Bucket tag count cannot be greater than 50"))
        }
        _ => {}
    }
    for (i, tag) in tags.iter().enumerate() {
        let key_units = tag.key.encode_utf16().count();
        if key_units == 0 || !tag.key.chars().all(allowed) {
            return Err(invalid_tag("The TagKey you have provided is invalid"));
        }
        if key_units > MAX_KEY_UNITS {
            return Err(invalid_tag(
                "The TagKey you have provided is too long, max 128",
            ));
        }
        if !tag.value.chars().all(allowed) {
            return Err(invalid_tag("The TagValue you have provided is invalid"));
        }
        if tag.value.encode_utf16().count() > MAX_VALUE_UNITS {
            return Err(invalid_tag(
                "The TagValue you have provided is too long, max 256",
            ));
        }
        // `aws:` is reserved for tags AWS itself sets, in any letter case.
        if tag
            .key
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("aws:"))
        {
            return Err(invalid_tag(match owner {
                TagOwner::Object => "Your TagKey cannot be prefixed with aws:",
                TagOwner::Bucket => "System tags cannot be added/updated by requester",
            }));
        }
        if tags[..i].iter().any(|t| t.key == tag.key) {
            return Err(invalid_tag(
                "Cannot provide multiple Tags with the same key",
            ));
        }
    }
    Ok(())
}

fn bad_header(value: &str) -> S3Error {
    S3Error::invalid_argument(
        "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.",
    )
    .with("ArgumentName", "x-amz-tagging")
    .with("ArgumentValue", value)
}

/// Parses `x-amz-tagging`: URL query parameters (`k1=v1&k2=v2`, `+` a space, a key without `=`
/// holding the empty value). A value that is not that form (a second `=` in a pair, bytes that
/// do not decode to UTF-8, a key given twice) is `InvalidArgument`; the tags it names are
/// then checked like any object's.
pub fn parse_header(value: &str) -> S3Result<Vec<Tag>> {
    let mut tags: Vec<Tag> = Vec::new();
    for pair in value.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if v.contains('=') {
            return Err(bad_header(value));
        }
        let decode = |s: &str| {
            let s = s.replace('+', " ");
            percent_encoding::percent_decode_str(&s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| bad_header(value))
        };
        let (key, value_text) = (decode(k)?, decode(v)?);
        if tags.iter().any(|t| t.key == key) {
            return Err(bad_header(value));
        }
        tags.push(Tag {
            key,
            value: value_text,
        });
    }
    validate(&tags, TagOwner::Object)?;
    Ok(tags)
}

/// The tags a write asks for in `x-amz-tagging` (none without the header).
pub fn tags_from_headers(headers: &HeaderMap) -> S3Result<Vec<Tag>> {
    match headers.get("x-amz-tagging") {
        None => Ok(Vec::new()),
        Some(v) => parse_header(v.to_str().map_err(|_| bad_header(""))?),
    }
}

/// Everything but unreserved characters escaped: the query form `parse_header` reads back.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The `x-amz-tagging` form of a tag set (a form upload's `tagging` document becomes this
/// header, so that it is authorized and applied as PutObject's would be).
pub fn to_header(tags: &[Tag]) -> String {
    tags.iter()
        .map(|t| {
            format!(
                "{}={}",
                utf8_percent_encode(&t.key, QUERY_VALUE),
                utf8_percent_encode(&t.value, QUERY_VALUE)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Parses a `<Tagging><TagSet><Tag><Key/><Value/></Tag>…</TagSet></Tagging>` document by hand:
/// quick-xml's serde deserializer trims text, and a tag's white space is part of it. Anything
/// else (another element, a `Tag` without `Key` or `Value` or with two, no `TagSet`) is
/// MalformedXML; the limits are `validate`'s.
pub fn parse_document(body: &[u8]) -> S3Result<Vec<Tag>> {
    use quick_xml::events::Event;
    let malformed = S3Error::malformed_xml;
    let text = std::str::from_utf8(body).map_err(|_| malformed())?;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut path: Vec<String> = Vec::new();
    let mut tags = Vec::new();
    let mut saw_tag_set = false;
    // The `Tag` being read: its key and value once their elements have ended.
    let mut current: Option<(Option<String>, Option<String>)> = None;
    let mut value = String::new();
    loop {
        match reader.read_event().map_err(|_| malformed())? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                match (path.len(), name.as_str()) {
                    (0, "Tagging") => {}
                    (1, "TagSet") if !saw_tag_set => saw_tag_set = true,
                    (2, "Tag") => current = Some((None, None)),
                    (3, "Key" | "Value") => value.clear(),
                    _ => return Err(malformed()),
                }
                path.push(name);
            }
            Event::Empty(e) => {
                let name = e.local_name();
                match (path.len(), name.as_ref()) {
                    (1, b"TagSet") if !saw_tag_set => saw_tag_set = true,
                    (3, b"Key") => set_once(&mut current, true, String::new())?,
                    (3, b"Value") => set_once(&mut current, false, String::new())?,
                    _ => return Err(malformed()),
                }
            }
            Event::Text(t) => {
                let t = t.unescape().map_err(|_| malformed())?;
                if path.len() == 4 {
                    value.push_str(&t);
                } else if !t.trim().is_empty() {
                    return Err(malformed());
                }
            }
            Event::CData(c) => {
                if path.len() != 4 {
                    return Err(malformed());
                }
                value.push_str(std::str::from_utf8(&c).map_err(|_| malformed())?);
            }
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                match name.as_str() {
                    "Key" => set_once(&mut current, true, std::mem::take(&mut value))?,
                    "Value" => set_once(&mut current, false, std::mem::take(&mut value))?,
                    "Tag" => match current.take() {
                        Some((Some(key), Some(value))) => tags.push(Tag { key, value }),
                        _ => return Err(malformed()),
                    },
                    _ => {}
                }
            }
            Event::DocType(_) => return Err(malformed()),
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
        }
    }
    if !path.is_empty() || !saw_tag_set {
        return Err(malformed());
    }
    Ok(tags)
}

/// Sets the current `Tag`'s key (`key`) or value, which may each be given once.
fn set_once(
    current: &mut Option<(Option<String>, Option<String>)>,
    key: bool,
    text: String,
) -> S3Result<()> {
    let (k, v) = current.as_mut().ok_or_else(S3Error::malformed_xml)?;
    let slot = if key { k } else { v };
    if slot.is_some() {
        return Err(S3Error::malformed_xml());
    }
    *slot = Some(text);
    Ok(())
}

#[derive(Serialize)]
struct TaggingDoc<'a> {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "TagSet")]
    tag_set: TagSetDoc<'a>,
}

#[derive(Serialize)]
struct TagSetDoc<'a> {
    #[serde(rename = "Tag")]
    tags: Vec<TagDoc<'a>>,
}

#[derive(Serialize)]
struct TagDoc<'a> {
    #[serde(rename = "Key")]
    key: &'a str,
    #[serde(rename = "Value")]
    value: &'a str,
}

fn tagging_response(tags: &[Tag]) -> S3Result<S3Response> {
    let doc = TaggingDoc {
        xmlns: S3_NS,
        tag_set: TagSetDoc {
            tags: tags
                .iter()
                .map(|t| TagDoc {
                    key: &t.key,
                    value: &t.value,
                })
                .collect(),
        },
    };
    Ok(response::xml(StatusCode::OK, xml::to_xml("Tagging", &doc)?))
}

/// `x-amz-tagging-count` on GetObject and HeadObject, when the object has tags.
pub fn set_count_header(r: &mut S3Response, record: &ObjectRecord) {
    if !record.tags.is_empty() {
        response::set_header(r, "x-amz-tagging-count", &record.tags.len().to_string());
    }
}

pub async fn put_object_tagging(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = existing_bucket(ctx, ctx.bucket()?)?.name;
    let key = ctx.key()?.to_string();
    let (_, version) = named_version(ctx, &bucket, &key)?;
    let version = version.map(str::to_string);
    let body = read_small_body(ctx).await?;
    let tags = parse_document(&body)?;
    validate(&tags, TagOwner::Object)?;
    let record = set_tags(ctx, &bucket, &key, version, tags).await?;
    let mut r = response::empty(StatusCode::OK);
    super::support::version_header(ctx, &mut r, &bucket, record.shown_version_id())?;
    Ok(r)
}

pub async fn get_object_tagging(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = existing_bucket(ctx, ctx.bucket()?)?.name;
    let key = ctx.key()?;
    let (record, _) = named_version(ctx, &bucket, key)?;
    let mut r = tagging_response(&record.tags)?;
    super::support::version_header(ctx, &mut r, &bucket, record.shown_version_id())?;
    Ok(r)
}

pub async fn delete_object_tagging(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = existing_bucket(ctx, ctx.bucket()?)?.name;
    let key = ctx.key()?.to_string();
    let (_, version) = named_version(ctx, &bucket, &key)?;
    let version = version.map(str::to_string);
    let record = set_tags(ctx, &bucket, &key, version, Vec::new()).await?;
    let mut r = response::empty(StatusCode::NO_CONTENT);
    super::support::version_header(ctx, &mut r, &bucket, record.shown_version_id())?;
    Ok(r)
}

async fn set_tags(
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    version: Option<String>,
    tags: Vec<Tag>,
) -> S3Result<ObjectRecord> {
    Ok(store::set_object_tags(&ctx.gw.store, bucket, key, version.as_deref(), tags).await?)
}
pub async fn put_bucket_tagging(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = existing_bucket(ctx, ctx.bucket()?)?.name;
    if !has_body_digest(&ctx.headers) {
        return Err(S3Error::invalid_request(
            "Missing required header for this request: Content-MD5",
        ));
    }
    let body = read_small_body(ctx).await?;
    let tags = parse_document(&body)?;
    validate(&tags, TagOwner::Bucket)?;
    // An empty set leaves the bucket without one, as DeleteBucketTagging does.
    let stored = if tags.is_empty() {
        None
    } else {
        Some(serde_json::to_string(&tags).map_err(|e| S3Error::internal(format!("tags: {e}")))?)
    };
    store::set_bucket_setting(
        &ctx.gw.store,
        &bucket,
        BucketSetting::Tagging,
        stored.as_deref(),
    )
    .await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}

pub async fn get_bucket_tagging(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    let tags = store::bucket_setting(&ctx.gw.store, bucket, BucketSetting::Tagging)?
        .and_then(|json| serde_json::from_str::<Vec<Tag>>(&json).ok())
        .filter(|tags| !tags.is_empty())
        .ok_or_else(|| {
            S3Error::new(
                "NoSuchTagSet",
                StatusCode::NOT_FOUND,
                "The TagSet does not exist",
            )
            .with("BucketName", bucket)
        })?;
    tagging_response(&tags)
}

pub async fn delete_bucket_tagging(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    store::set_bucket_setting(&ctx.gw.store, bucket, BucketSetting::Tagging, None).await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &str, value: &str) -> Tag {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }

    fn code(result: S3Result<Vec<Tag>>) -> &'static str {
        result.expect_err("refused").code
    }

    #[test]
    fn header_form() {
        assert_eq!(
            parse_header("b=2&a=1").unwrap(),
            vec![tag("b", "2"), tag("a", "1")]
        );
        // A key without `=` holds the empty value; `+` and %20 are spaces; empty pairs skip.
        assert_eq!(
            parse_header("foo=bar&&bar&x+y=a%20b%2Bc").unwrap(),
            vec![tag("foo", "bar"), tag("bar", ""), tag("x y", "a b+c")]
        );
        assert_eq!(parse_header("").unwrap(), vec![]);
        assert_eq!(
            parse_header("k=%C3%A9t%C3%A9").unwrap(),
            vec![tag("k", "été")]
        );
        for bad in [
            "a=b=c",
            "a=1&a=2",
            "k=%ff",
            "TagSet=[{Key=string,Value=string}]",
        ] {
            assert_eq!(code(parse_header(bad)), "InvalidArgument", "{bad}");
        }
        // Well-formed, but the tags break S3's rules.
        assert_eq!(
            code(parse_header("TagSet%3D%5B%7BKey%3Dstring%7D%5D")),
            "InvalidTag"
        );
        assert_eq!(code(parse_header("=v")), "InvalidTag");
        let eleven: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
        assert_eq!(code(parse_header(&eleven.join("&"))), "BadRequest");
    }

    #[test]
    fn header_round_trip() {
        let tags = vec![tag("a b", "x+y=z"), tag("ü/@:", ""), tag("k", "100%")];
        // `%` is not an allowed character, so this set is only encoded, not parsed back.
        assert_eq!(
            to_header(&tags),
            "a%20b=x%2By%3Dz&%C3%BC%2F%40%3A=&k=100%25"
        );
        let ok = vec![tag("a b", "x+y=z"), tag("ü/@:", "")];
        assert_eq!(parse_header(&to_header(&ok)).unwrap(), ok);
    }

    #[test]
    fn limits() {
        let ok = |tags: Vec<Tag>, owner| validate(&tags, owner).is_ok();
        let k128 = "k".repeat(128);
        let v256 = "v".repeat(256);
        assert!(ok(vec![tag(&k128, &v256)], TagOwner::Object));
        assert!(!ok(vec![tag(&"k".repeat(129), "")], TagOwner::Object));
        assert!(!ok(vec![tag("k", &"v".repeat(257))], TagOwner::Object));
        // Counted in UTF-16 units: 64 characters outside the BMP are 128 units.
        assert!(ok(vec![tag(&"𝐀".repeat(64), "")], TagOwner::Object));
        assert!(!ok(vec![tag(&"𝐀".repeat(65), "")], TagOwner::Object));
        assert!(ok(
            vec![tag("Ünïcode 名前 +-=._:/@", "値 1")],
            TagOwner::Object
        ));
        for bad in ["a*b", "a\tb", "a%", "a,b", "a<b"] {
            assert!(!ok(vec![tag(bad, "v")], TagOwner::Object), "{bad}");
            assert!(!ok(vec![tag("k", bad)], TagOwner::Object), "{bad}");
        }
        assert!(!ok(vec![tag("aws:x", "v")], TagOwner::Object));
        assert!(!ok(vec![tag("AWS:x", "v")], TagOwner::Bucket));
        assert!(ok(vec![tag("awsx", "aws:v")], TagOwner::Object));
        assert!(!ok(vec![tag("a", "1"), tag("a", "2")], TagOwner::Bucket));
        let many = |n: usize| {
            (0..n)
                .map(|i| tag(&format!("k{i}"), "v"))
                .collect::<Vec<_>>()
        };
        assert!(ok(many(10), TagOwner::Object));
        assert_eq!(
            validate(&many(11), TagOwner::Object).unwrap_err().code,
            "BadRequest"
        );
        assert!(ok(many(50), TagOwner::Bucket));
        assert_eq!(
            validate(&many(51), TagOwner::Bucket).unwrap_err().code,
            "InvalidTag"
        );
    }

    #[test]
    fn documents() {
        let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
            <Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>
              <Tag><Key> spaced </Key><Value>a &amp; b</Value></Tag>
              <Tag><Value></Value><Key>empty</Key></Tag>
              <Tag><Key>e2</Key><Value/></Tag>
            </TagSet></Tagging>"#;
        assert_eq!(
            parse_document(doc).unwrap(),
            vec![tag(" spaced ", "a & b"), tag("empty", ""), tag("e2", "")]
        );
        assert_eq!(
            parse_document(b"<Tagging><TagSet/></Tagging>").unwrap(),
            vec![]
        );
        for bad in [
            &b"<Tagging></Tagging>"[..],
            b"<Tagging/>",
            b"<Tags><TagSet/></Tags>",
            b"<Tagging><TagSet><Tag><Key>k</Key></Tag></TagSet></Tagging>",
            b"<Tagging><TagSet><Tag><Value>v</Value></Tag></TagSet></Tagging>",
            b"<Tagging><TagSet><Tag><Key>k</Key><Key>j</Key><Value/></Tag></TagSet></Tagging>",
            b"<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value><Other/></Tag></TagSet></Tagging>",
            b"<Tagging><TagSet><Key>k</Key></TagSet></Tagging>",
            b"<Tagging><TagSet></TagSet><TagSet></TagSet></Tagging>",
            b"<Tagging><TagSet>text</TagSet></Tagging>",
            b"<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet>",
            b"<!DOCTYPE x><Tagging><TagSet/></Tagging>",
            b"",
            b"\xff",
        ] {
            assert_eq!(
                parse_document(bad).unwrap_err().code,
                "MalformedXML",
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Whatever a client sends as a document or a header, the parsers answer (no panic).
        #[test]
        fn parsers_are_total(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            text in "\\PC{0,120}",
        ) {
            let _ = parse_document(&bytes);
            let _ = parse_header(&text);
            let doc = format!(
                "<Tagging><TagSet><Tag><Key>{text}</Key><Value>{text}</Value></Tag></TagSet></Tagging>"
            );
            let _ = parse_document(doc.as_bytes());
        }

        /// Every valid tag set survives the header form (a form upload's tags take that way).
        #[test]
        fn valid_sets_round_trip_through_the_header_form(
            set in proptest::collection::btree_map(
                "[a-zA-Z0-9 +=._:/@é名-]{1,24}",
                "[a-zA-Z0-9 +=._:/@é名-]{0,40}",
                0..=10,
            ),
        ) {
            let tags: Vec<Tag> = set.into_iter().map(|(key, value)| Tag { key, value }).collect();
            proptest::prop_assume!(validate(&tags, TagOwner::Object).is_ok());
            proptest::prop_assert_eq!(parse_header(&to_header(&tags)).unwrap(), tags);
        }
    }

    #[test]
    fn the_response_document_reads_back() {
        let tags = vec![tag("k<&>", "v \"1\""), tag("e", "")];
        let r = tagging_response(&tags).unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let doc = TaggingDoc {
            xmlns: S3_NS,
            tag_set: TagSetDoc {
                tags: tags
                    .iter()
                    .map(|t| TagDoc {
                        key: &t.key,
                        value: &t.value,
                    })
                    .collect(),
            },
        };
        let text = xml::to_xml("Tagging", &doc).unwrap();
        assert_eq!(parse_document(text.as_bytes()).unwrap(), tags);
        let empty = TaggingDoc {
            xmlns: S3_NS,
            tag_set: TagSetDoc { tags: vec![] },
        };
        let text = xml::to_xml("Tagging", &empty).unwrap();
        assert_eq!(parse_document(text.as_bytes()).unwrap(), vec![]);
    }
}
