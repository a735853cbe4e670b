//! Bucket lifecycle rules: the `?lifecycle` document (parsed, validated as S3 validates it,
//! stored as canonical JSON, written back as XML) and the pure evaluation of which action is
//! due for an object or an upload at a given time. No HTTP, no store: `s3::ops::lifecycle`
//! speaks the protocol and `store::lifecycle` applies what this decides.
//!
//! Times follow S3: an object expires at the first midnight UTC at or after its modification
//! time plus `Days`; an upload is aborted likewise from its initiation; a `Date` rule acts on
//! every matching object from that midnight on.

use serde::{Deserialize, Serialize};

/// S3 allows at most this many rules in one configuration.
pub const MAX_RULES: usize = 1000;
/// S3's limit on a rule's ID.
pub const MAX_ID_LEN: usize = 255;
/// A filter's `And` holds at most this many tags (S3's per-object tag limit).
const MAX_FILTER_TAGS: usize = 10;
pub const DAY_MS: u64 = 86_400_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleConfiguration {
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub enabled: bool,
    pub filter: Filter,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<Expiration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noncurrent_expiration: Option<NoncurrentExpiration>,
    /// `AbortIncompleteMultipartUpload`'s `DaysAfterInitiation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_upload_days: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// Which objects a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// The rule-level `<Prefix>` of the first lifecycle API, kept as such so Get returns the
    /// document's shape.
    LegacyPrefix(String),
    /// `<Filter/>`: every object.
    All,
    Prefix(String),
    Tag(Tag),
    SizeGreaterThan(u64),
    SizeLessThan(u64),
    And {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
        #[serde(default)]
        tags: Vec<Tag>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        greater_than: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        less_than: Option<u64>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expiration {
    Days(u32),
    /// Midnight UTC, in milliseconds since the Unix epoch.
    Date(u64),
    /// Removes a delete marker that has no noncurrent versions left behind it (versioned
    /// buckets only; nothing to do on an unversioned one).
    ExpiredObjectDeleteMarker,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoncurrentExpiration {
    pub noncurrent_days: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newer_noncurrent_versions: Option<u32>,
}

/// Why a document was refused, in the terms S3 answers with.
#[derive(Debug, PartialEq, Eq)]
pub enum ConfigError {
    Malformed,
    InvalidArgument(String),
    InvalidRequest(String),
    /// A valid action Hansa cannot carry out (transitions: it has no storage classes).
    Unsupported(String),
}

/// What an object looks like to the rules.
pub struct ObjectFacts<'a> {
    pub key: &'a str,
    pub size: u64,
    pub modified_ms: u64,
    pub tags: &'a [(String, String)],
}

/// A noncurrent version: when it stopped being current and how many noncurrent versions of
/// the key are newer than it.
pub struct NoncurrentFacts<'a> {
    pub object: ObjectFacts<'a>,
    pub noncurrent_since_ms: u64,
    pub newer_noncurrent: u32,
}

/// One noncurrent version or delete marker of a key, as the rules see it.
#[derive(Clone, Debug)]
pub struct VersionFacts<'a> {
    pub modified_ms: u64,
    pub size: u64,
    pub tags: &'a [(String, String)],
    pub delete_marker: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerdictKind {
    /// `NoncurrentVersionExpiration`: the noncurrent version goes.
    Noncurrent,
    /// The latest version is a delete marker with nothing left under it: it goes.
    ExpiredDeleteMarker,
}

/// A version that is due: its position in the key's versions (newest first) and the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionVerdict {
    pub index: usize,
    pub rule: String,
    pub kind: VerdictKind,
}

/// The first midnight UTC at or after `from + days`.
pub fn due_after(from_ms: u64, days: u32) -> u64 {
    let t = from_ms.saturating_add(u64::from(days) * DAY_MS);
    t.div_ceil(DAY_MS).saturating_mul(DAY_MS)
}

impl Filter {
    fn prefix(&self) -> Option<&str> {
        match self {
            Filter::LegacyPrefix(p) | Filter::Prefix(p) => Some(p),
            Filter::And { prefix, .. } => prefix.as_deref(),
            _ => None,
        }
    }

    fn tags(&self) -> &[Tag] {
        match self {
            Filter::Tag(t) => std::slice::from_ref(t),
            Filter::And { tags, .. } => tags,
            _ => &[],
        }
    }

    fn sizes(&self) -> (Option<u64>, Option<u64>) {
        match self {
            Filter::SizeGreaterThan(n) => (Some(*n), None),
            Filter::SizeLessThan(n) => (None, Some(*n)),
            Filter::And {
                greater_than,
                less_than,
                ..
            } => (*greater_than, *less_than),
            _ => (None, None),
        }
    }

    pub fn matches(&self, object: &ObjectFacts) -> bool {
        let (greater, less) = self.sizes();
        self.prefix().is_none_or(|p| object.key.starts_with(p))
            && self.tags().iter().all(|t| {
                object
                    .tags
                    .iter()
                    .any(|(k, v)| *k == t.key && *v == t.value)
            })
            && greater.is_none_or(|g| object.size > g)
            && less.is_none_or(|l| object.size < l)
    }

    /// An upload has neither tags nor a size yet: only a prefix can select it.
    fn matches_upload(&self, key: &str) -> bool {
        let (greater, less) = self.sizes();
        self.tags().is_empty()
            && greater.is_none()
            && less.is_none()
            && self.prefix().is_none_or(|p| key.starts_with(p))
    }
}

impl LifecycleConfiguration {
    fn enabled(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(|r| r.enabled)
    }

    /// The enabled rule that expires the current `object` at `now`, if any is due.
    pub fn expiring_rule(&self, object: &ObjectFacts, now_ms: u64) -> Option<&Rule> {
        self.enabled().find(|rule| {
            let due = match rule.expiration {
                Some(Expiration::Days(days)) => due_after(object.modified_ms, days),
                Some(Expiration::Date(date)) => date,
                Some(Expiration::ExpiredObjectDeleteMarker) | None => return false,
            };
            now_ms >= due && rule.filter.matches(object)
        })
    }

    /// The enabled rule that aborts an upload of `key` initiated at `initiated_ms`, if due.
    pub fn aborting_rule(&self, key: &str, initiated_ms: u64, now_ms: u64) -> Option<&Rule> {
        self.enabled().find(|rule| {
            rule.abort_upload_days
                .is_some_and(|days| now_ms >= due_after(initiated_ms, days))
                && rule.filter.matches_upload(key)
        })
    }

    /// The enabled rule that removes a noncurrent version, if due: the version has been
    /// noncurrent for `NoncurrentDays` (counted to midnight UTC) and, with
    /// `NewerNoncurrentVersions`, at least that many noncurrent versions are newer.
    pub fn noncurrent_rule(&self, version: &NoncurrentFacts, now_ms: u64) -> Option<&Rule> {
        self.enabled().find(|rule| {
            let Some(nc) = &rule.noncurrent_expiration else {
                return false;
            };
            now_ms >= due_after(version.noncurrent_since_ms, nc.noncurrent_days)
                && nc
                    .newer_noncurrent_versions
                    .is_none_or(|keep| version.newer_noncurrent >= keep)
                && rule.filter.matches(&version.object)
        })
    }

    /// The enabled rule that removes `key`'s latest version, a delete marker made at
    /// `marker_ms` with no other version left under it (an "expired object delete marker"):
    /// `ExpiredObjectDeleteMarker` at once, and, as the AWS guide "Expiring objects" says, an
    /// `Expiration` `Days` / `Date` rule once the marker is old enough for it.
    pub fn marker_rule(&self, key: &str, marker_ms: u64, now_ms: u64) -> Option<&Rule> {
        let marker = ObjectFacts {
            key,
            size: 0,
            modified_ms: marker_ms,
            tags: &[],
        };
        self.enabled().find(|rule| {
            let due = match rule.expiration {
                Some(Expiration::ExpiredObjectDeleteMarker) => true,
                Some(Expiration::Days(days)) => now_ms >= due_after(marker_ms, days),
                Some(Expiration::Date(date)) => now_ms >= date,
                None => false,
            };
            due && rule.filter.matches(&marker)
        })
    }

    /// What is due among a key's versions in a bucket with versioning. `current` is the
    /// modification time of its current object (`None` when a delete marker is the latest or
    /// there is nothing); `versions` are its noncurrent versions and delete markers, newest
    /// first, as the index keeps them. Noncurrent versions (delete markers among them: S3
    /// counts them as versions) whose successor was made `NoncurrentDays` ago go, beyond the
    /// newest `NewerNoncurrentVersions`; the latest delete marker goes when every version
    /// under it goes too and a rule removes expired markers. Current objects are not judged
    /// here (`expiring_rule`).
    pub fn version_verdicts(
        &self,
        key: &str,
        current: Option<u64>,
        versions: &[VersionFacts],
        now_ms: u64,
    ) -> Vec<VersionVerdict> {
        let mut out = Vec::new();
        // Without a current object the newest entry is the latest version, not noncurrent.
        let first_noncurrent = usize::from(current.is_none());
        for (i, version) in versions.iter().enumerate().skip(first_noncurrent) {
            let successor_ms = match i.checked_sub(1) {
                Some(newer) => versions[newer].modified_ms,
                None => current.unwrap_or(version.modified_ms),
            };
            let facts = NoncurrentFacts {
                object: ObjectFacts {
                    key,
                    size: version.size,
                    modified_ms: version.modified_ms,
                    tags: version.tags,
                },
                noncurrent_since_ms: successor_ms,
                newer_noncurrent: u32::try_from(i - first_noncurrent).unwrap_or(u32::MAX),
            };
            if let Some(rule) = self.noncurrent_rule(&facts, now_ms) {
                out.push(VersionVerdict {
                    index: i,
                    rule: rule.id.clone(),
                    kind: VerdictKind::Noncurrent,
                });
            }
        }
        if let (None, Some(latest)) = (current, versions.first()) {
            let all_under_go = out.len() + 1 == versions.len();
            if latest.delete_marker && all_under_go {
                if let Some(rule) = self.marker_rule(key, latest.modified_ms, now_ms) {
                    out.push(VersionVerdict {
                        index: 0,
                        rule: rule.id.clone(),
                        kind: VerdictKind::ExpiredDeleteMarker,
                    });
                }
            }
        }
        out
    }

    /// Whether any enabled rule acts on noncurrent versions or delete markers (only in
    /// buckets with versioning).
    pub fn acts_on_versions(&self) -> bool {
        self.enabled()
            .any(|r| r.noncurrent_expiration.is_some() || r.expiration.is_some())
    }

    /// Whether any enabled rule acts on current objects or uploads (a bucket with none is not
    /// walked).
    pub fn acts_on_current(&self) -> bool {
        self.enabled().any(|r| {
            matches!(
                r.expiration,
                Some(Expiration::Days(_) | Expiration::Date(_))
            )
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(text: &str) -> Option<LifecycleConfiguration> {
        serde_json::from_str(text).ok()
    }

    /// Parses and validates a `LifecycleConfiguration` document. Rules without an ID get one.
    pub fn parse(body: &[u8]) -> Result<LifecycleConfiguration, ConfigError> {
        let root = parse_tree(body)?;
        if root.name != "LifecycleConfiguration" {
            return Err(ConfigError::Malformed);
        }
        let mut rules = Vec::new();
        for node in &root.children {
            if node.name != "Rule" {
                return Err(ConfigError::Malformed);
            }
            rules.push(parse_rule(node)?);
        }
        if rules.is_empty() {
            return Err(ConfigError::Malformed);
        }
        if rules.len() > MAX_RULES {
            return Err(ConfigError::InvalidArgument(format!(
                "Lifecycle configuration allows a maximum of {MAX_RULES} rules"
            )));
        }
        let mut ids = std::collections::HashSet::new();
        for rule in &rules {
            if !ids.insert(rule.id.as_str()) {
                return Err(ConfigError::InvalidArgument(
                    "Rule ID must be unique. Found same ID for more than one rule".into(),
                ));
            }
        }
        Ok(LifecycleConfiguration { rules })
    }

    pub fn to_xml(&self) -> String {
        let mut out = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LifecycleConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
        );
        for rule in &self.rules {
            out.push_str("<Rule>");
            element(&mut out, "ID", &rule.id);
            write_filter(&mut out, &rule.filter);
            element(
                &mut out,
                "Status",
                if rule.enabled { "Enabled" } else { "Disabled" },
            );
            if let Some(expiration) = &rule.expiration {
                out.push_str("<Expiration>");
                match expiration {
                    Expiration::Days(d) => element(&mut out, "Days", &d.to_string()),
                    Expiration::Date(ms) => element(&mut out, "Date", &format_date(*ms)),
                    Expiration::ExpiredObjectDeleteMarker => {
                        element(&mut out, "ExpiredObjectDeleteMarker", "true")
                    }
                }
                out.push_str("</Expiration>");
            }
            if let Some(nc) = &rule.noncurrent_expiration {
                out.push_str("<NoncurrentVersionExpiration>");
                element(&mut out, "NoncurrentDays", &nc.noncurrent_days.to_string());
                if let Some(n) = nc.newer_noncurrent_versions {
                    element(&mut out, "NewerNoncurrentVersions", &n.to_string());
                }
                out.push_str("</NoncurrentVersionExpiration>");
            }
            if let Some(days) = rule.abort_upload_days {
                out.push_str("<AbortIncompleteMultipartUpload>");
                element(&mut out, "DaysAfterInitiation", &days.to_string());
                out.push_str("</AbortIncompleteMultipartUpload>");
            }
            out.push_str("</Rule>");
        }
        out.push_str("</LifecycleConfiguration>");
        out
    }
}

fn element(out: &mut String, name: &str, text: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    out.push_str(&quick_xml::escape::escape(text));
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn write_tag(out: &mut String, tag: &Tag) {
    out.push_str("<Tag>");
    element(out, "Key", &tag.key);
    element(out, "Value", &tag.value);
    out.push_str("</Tag>");
}

fn write_filter(out: &mut String, filter: &Filter) {
    match filter {
        Filter::LegacyPrefix(p) => element(out, "Prefix", p),
        Filter::All => out.push_str("<Filter></Filter>"),
        Filter::Prefix(p) => {
            out.push_str("<Filter>");
            element(out, "Prefix", p);
            out.push_str("</Filter>");
        }
        Filter::Tag(t) => {
            out.push_str("<Filter>");
            write_tag(out, t);
            out.push_str("</Filter>");
        }
        Filter::SizeGreaterThan(n) => {
            out.push_str("<Filter>");
            element(out, "ObjectSizeGreaterThan", &n.to_string());
            out.push_str("</Filter>");
        }
        Filter::SizeLessThan(n) => {
            out.push_str("<Filter>");
            element(out, "ObjectSizeLessThan", &n.to_string());
            out.push_str("</Filter>");
        }
        Filter::And {
            prefix,
            tags,
            greater_than,
            less_than,
        } => {
            out.push_str("<Filter><And>");
            if let Some(p) = prefix {
                element(out, "Prefix", p);
            }
            for t in tags {
                write_tag(out, t);
            }
            if let Some(n) = greater_than {
                element(out, "ObjectSizeGreaterThan", &n.to_string());
            }
            if let Some(n) = less_than {
                element(out, "ObjectSizeLessThan", &n.to_string());
            }
            out.push_str("</And></Filter>");
        }
    }
}

fn format_date(ms: u64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].000Z");
    time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// An element of the document: its local name, its text and its child elements.
#[derive(Debug, Default)]
struct Node {
    name: String,
    text: String,
    children: Vec<Node>,
}

impl Node {
    /// The one child called `name`; two of them are malformed.
    fn child(&self, name: &str) -> Result<Option<&Node>, ConfigError> {
        let mut found = self.children.iter().filter(|c| c.name == name);
        let first = found.next();
        if found.next().is_some() {
            return Err(ConfigError::Malformed);
        }
        Ok(first)
    }

    /// Refuses children other than `known` (and, with them, misspelt or foreign elements).
    fn only(&self, known: &[&str]) -> Result<(), ConfigError> {
        if self
            .children
            .iter()
            .all(|c| known.contains(&c.name.as_str()))
        {
            Ok(())
        } else {
            Err(ConfigError::Malformed)
        }
    }

    fn leaf_text(&self) -> Result<&str, ConfigError> {
        if self.children.is_empty() {
            Ok(&self.text)
        } else {
            Err(ConfigError::Malformed)
        }
    }
}

/// Elements nest at most this deep in a valid document (root, Rule, Filter, And, Tag, Key).
const MAX_DEPTH: usize = 8;

fn parse_tree(body: &[u8]) -> Result<Node, ConfigError> {
    use quick_xml::events::Event;
    let text = std::str::from_utf8(body).map_err(|_| ConfigError::Malformed)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let name_of = |raw: &[u8]| String::from_utf8_lossy(raw).into_owned();
    loop {
        match reader.read_event().map_err(|_| ConfigError::Malformed)? {
            Event::Start(e) => {
                if root.is_some() || stack.len() >= MAX_DEPTH {
                    return Err(ConfigError::Malformed);
                }
                stack.push(Node {
                    name: name_of(e.local_name().as_ref()),
                    ..Node::default()
                });
            }
            Event::Empty(e) => {
                let node = Node {
                    name: name_of(e.local_name().as_ref()),
                    ..Node::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None if root.is_none() => root = Some(node),
                    None => return Err(ConfigError::Malformed),
                }
            }
            Event::Text(t) => {
                let t = t.unescape().map_err(|_| ConfigError::Malformed)?;
                match stack.last_mut() {
                    Some(node) => node.text.push_str(&t),
                    None if t.trim().is_empty() => {}
                    None => return Err(ConfigError::Malformed),
                }
            }
            Event::CData(c) => {
                let t = std::str::from_utf8(&c).map_err(|_| ConfigError::Malformed)?;
                match stack.last_mut() {
                    Some(node) => node.text.push_str(t),
                    None => return Err(ConfigError::Malformed),
                }
            }
            Event::End(_) => {
                let mut node = stack.pop().ok_or(ConfigError::Malformed)?;
                if !node.children.is_empty() {
                    if !node.text.trim().is_empty() {
                        return Err(ConfigError::Malformed);
                    }
                    node.text.clear();
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::DocType(_) => return Err(ConfigError::Malformed),
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(ConfigError::Malformed);
    }
    root.ok_or(ConfigError::Malformed)
}

/// A whole number; anything else in a number's place is malformed, as on S3.
fn number(node: &Node) -> Result<i64, ConfigError> {
    node.leaf_text()?
        .trim()
        .parse::<i64>()
        .map_err(|_| ConfigError::Malformed)
}

fn positive_days(node: &Node, message: &str) -> Result<u32, ConfigError> {
    let n = number(node)?;
    if n <= 0 {
        return Err(ConfigError::InvalidArgument(message.to_string()));
    }
    u32::try_from(n).map_err(|_| ConfigError::InvalidArgument(message.to_string()))
}

fn size(node: &Node) -> Result<u64, ConfigError> {
    let n = number(node)?;
    u64::try_from(n).map_err(|_| {
        ConfigError::InvalidArgument(format!("'{}' should be a non-negative number", node.name))
    })
}

fn parse_tag(node: &Node) -> Result<Tag, ConfigError> {
    node.only(&["Key", "Value"])?;
    let key = node.child("Key")?.ok_or(ConfigError::Malformed)?;
    let value = node.child("Value")?.ok_or(ConfigError::Malformed)?;
    Ok(Tag {
        key: key.leaf_text()?.to_string(),
        value: value.leaf_text()?.to_string(),
    })
}

fn parse_filter(node: &Node) -> Result<Filter, ConfigError> {
    const PREDICATES: &[&str] = &[
        "Prefix",
        "Tag",
        "ObjectSizeGreaterThan",
        "ObjectSizeLessThan",
        "And",
    ];
    node.only(PREDICATES)?;
    if !node.text.trim().is_empty() {
        return Err(ConfigError::Malformed);
    }
    // Outside `And` a filter names one predicate.
    let Some(only) = node.children.first() else {
        return Ok(Filter::All);
    };
    if node.children.len() > 1 {
        return Err(ConfigError::Malformed);
    }
    Ok(match only.name.as_str() {
        "Prefix" => Filter::Prefix(only.leaf_text()?.to_string()),
        "Tag" => Filter::Tag(parse_tag(only)?),
        "ObjectSizeGreaterThan" => Filter::SizeGreaterThan(size(only)?),
        "ObjectSizeLessThan" => Filter::SizeLessThan(size(only)?),
        _ => {
            only.only(&PREDICATES[..4])?;
            let prefix = match only.child("Prefix")? {
                Some(p) => Some(p.leaf_text()?.to_string()),
                None => None,
            };
            let tags = only
                .children
                .iter()
                .filter(|c| c.name == "Tag")
                .map(parse_tag)
                .collect::<Result<Vec<_>, _>>()?;
            if tags.len() > MAX_FILTER_TAGS {
                return Err(ConfigError::InvalidArgument(format!(
                    "A Filter may contain at most {MAX_FILTER_TAGS} Tags"
                )));
            }
            let greater_than = only.child("ObjectSizeGreaterThan")?.map(size).transpose()?;
            let less_than = only.child("ObjectSizeLessThan")?.map(size).transpose()?;
            if only.children.is_empty() {
                return Err(ConfigError::Malformed);
            }
            if let (Some(g), Some(l)) = (greater_than, less_than) {
                if g >= l {
                    return Err(ConfigError::InvalidArgument(
                        "ObjectSizeGreaterThan must be less than ObjectSizeLessThan".into(),
                    ));
                }
            }
            Filter::And {
                prefix,
                tags,
                greater_than,
                less_than,
            }
        }
    })
}

fn parse_date(node: &Node) -> Result<u64, ConfigError> {
    let text = node.leaf_text()?.trim();
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| ConfigError::Malformed)?;
    let ms = parsed.unix_timestamp_nanos() / 1_000_000;
    if ms < 0 || ms % i128::from(DAY_MS) != 0 {
        return Err(ConfigError::InvalidArgument(
            "'Date' must be at midnight GMT".into(),
        ));
    }
    u64::try_from(ms).map_err(|_| ConfigError::Malformed)
}

/// `None` for an `Expiration` that asks for nothing: `ExpiredObjectDeleteMarker` `false`,
/// which tools send beside `Days` or alone, and which S3 takes as no marker clean-up.
fn parse_expiration(node: &Node) -> Result<Option<Expiration>, ConfigError> {
    node.only(&["Days", "Date", "ExpiredObjectDeleteMarker"])?;
    let mut asked = Vec::new();
    for child in &node.children {
        if child.name == "ExpiredObjectDeleteMarker" {
            match child.leaf_text()?.trim() {
                "true" => asked.push(child),
                "false" => {}
                _ => return Err(ConfigError::Malformed),
            }
        } else {
            asked.push(child);
        }
    }
    // Repeated elements and more than one of Days, Date and a marker clean-up are malformed.
    if node.children.len() > 2 || asked.len() > 1 {
        return Err(ConfigError::Malformed);
    }
    let Some(only) = asked.first() else {
        return if node.children.is_empty() {
            Err(ConfigError::Malformed)
        } else {
            Ok(None)
        };
    };
    Ok(Some(match only.name.as_str() {
        "Days" => Expiration::Days(positive_days(
            only,
            "'Days' for Expiration action must be a positive integer",
        )?),
        "Date" => Expiration::Date(parse_date(only)?),
        _ => Expiration::ExpiredObjectDeleteMarker,
    }))
}

fn parse_rule(node: &Node) -> Result<Rule, ConfigError> {
    node.only(&[
        "ID",
        "Prefix",
        "Filter",
        "Status",
        "Expiration",
        "NoncurrentVersionExpiration",
        "AbortIncompleteMultipartUpload",
        "Transition",
        "NoncurrentVersionTransition",
    ])?;
    let id = match node.child("ID")? {
        Some(id) => {
            let id = id.leaf_text()?.to_string();
            if id.chars().count() > MAX_ID_LEN {
                return Err(ConfigError::InvalidArgument(format!(
                    "ID length should not exceed allowed limit of {MAX_ID_LEN}"
                )));
            }
            id
        }
        None => String::new(),
    };
    // S3 names a rule sent without an ID (an empty one counts as absent).
    let id = if id.is_empty() {
        uuid::Uuid::new_v4().simple().to_string()
    } else {
        id
    };
    let enabled = match node.child("Status")?.map(Node::leaf_text).transpose()? {
        Some("Enabled") => true,
        Some("Disabled") => false,
        _ => return Err(ConfigError::Malformed),
    };
    let filter = match (node.child("Filter")?, node.child("Prefix")?) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::InvalidArgument(
                "The Filter and Prefix elements are mutually exclusive".into(),
            ))
        }
        (Some(f), None) => parse_filter(f)?,
        (None, Some(p)) => Filter::LegacyPrefix(p.leaf_text()?.to_string()),
        (None, None) => return Err(ConfigError::Malformed),
    };
    let expiration = match node.child("Expiration")? {
        Some(e) => parse_expiration(e)?,
        None => None,
    };
    let noncurrent_expiration = match node.child("NoncurrentVersionExpiration")? {
        Some(nc) => {
            nc.only(&["NoncurrentDays", "NewerNoncurrentVersions"])?;
            let days = nc.child("NoncurrentDays")?.ok_or(ConfigError::Malformed)?;
            let newer = match nc.child("NewerNoncurrentVersions")? {
                Some(n) => Some(positive_days(
                    n,
                    "'NewerNoncurrentVersions' for NoncurrentVersionExpiration action must be a positive integer",
                )?),
                None => None,
            };
            Some(NoncurrentExpiration {
                noncurrent_days: positive_days(
                    days,
                    "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer",
                )?,
                newer_noncurrent_versions: newer,
            })
        }
        None => None,
    };
    let abort_upload_days = match node.child("AbortIncompleteMultipartUpload")? {
        Some(abort) => {
            abort.only(&["DaysAfterInitiation"])?;
            let days = abort
                .child("DaysAfterInitiation")?
                .ok_or(ConfigError::Malformed)?;
            Some(positive_days(
                days,
                "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer",
            )?)
        }
        None => None,
    };
    let transitions = node
        .children
        .iter()
        .any(|c| c.name == "Transition" || c.name == "NoncurrentVersionTransition");
    if transitions {
        return Err(ConfigError::Unsupported(
            "Transition and NoncurrentVersionTransition actions are not supported: Hansa has no storage classes to move objects to"
                .into(),
        ));
    }
    if expiration.is_none() && noncurrent_expiration.is_none() && abort_upload_days.is_none() {
        return Err(ConfigError::InvalidRequest(
            "At least one action needs to be specified in a rule".into(),
        ));
    }
    if abort_upload_days.is_some() {
        if !filter.tags().is_empty() {
            return Err(ConfigError::InvalidRequest(
                "AbortIncompleteMultipartUpload cannot be specified with Tags".into(),
            ));
        }
        if filter.sizes() != (None, None) {
            return Err(ConfigError::InvalidRequest(
                "AbortIncompleteMultipartUpload cannot be specified with an object size filter"
                    .into(),
            ));
        }
    }
    if expiration == Some(Expiration::ExpiredObjectDeleteMarker) && !filter.tags().is_empty() {
        return Err(ConfigError::InvalidRequest(
            "ExpiredObjectDeleteMarker cannot be specified with Tags".into(),
        ));
    }
    Ok(Rule {
        id,
        enabled,
        filter,
        expiration,
        noncurrent_expiration,
        abort_upload_days,
    })
}

#[cfg(test)]
mod tests;
