//! The policy document of a browser form upload (S3 POST object): its expiration and the
//! conditions every form field must meet. Pure: the S3 layer parses the form, verifies the
//! signature over the base64 document and maps refusals to S3's errors.

use std::time::SystemTime;

use serde_json::Value;

/// A decoded POST policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostPolicy {
    pub expiration: SystemTime,
    pub conditions: Vec<Condition>,
}

/// One entry of the policy's `conditions`. Field names are kept lower-case: S3 matches form
/// field names case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// `{"field": "value"}` or `["eq", "$field", "value"]`.
    Eq {
        field: String,
        value: String,
        text: String,
    },
    /// `["starts-with", "$field", "prefix"]`; an empty prefix allows any value.
    StartsWith {
        field: String,
        prefix: String,
        text: String,
    },
    /// `["content-length-range", min, max]`, checked against the file as it streams.
    LengthRange { min: u64, max: u64 },
}

/// Why a policy refuses a form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyError {
    /// Not a policy document S3 would accept (`InvalidPolicyDocument`); the message follows
    /// "Invalid Policy: ".
    Malformed(&'static str),
    Expired,
    /// The condition as the client wrote it, for S3's message.
    ConditionFailed(String),
    /// The form fields no condition covers.
    ExtraFields(Vec<String>),
}

impl PolicyError {
    /// S3's message for an `AccessDenied` refusal or an `InvalidPolicyDocument`.
    pub fn message(&self) -> String {
        match self {
            PolicyError::Malformed(why) => format!("Invalid Policy: {why}"),
            PolicyError::Expired => "Invalid according to Policy: Policy expired.".to_string(),
            PolicyError::ConditionFailed(text) => {
                format!("Invalid according to Policy: Policy Condition failed: {text}")
            }
            PolicyError::ExtraFields(names) => format!(
                "Invalid according to Policy: Extra input fields: {}",
                names.join(", ")
            ),
        }
    }
}

/// Form fields the policy never needs to name: the policy itself, the signature, the file,
/// and S3's `x-ignore-` prefix.
fn exempt(field: &str) -> bool {
    matches!(
        field,
        "policy" | "x-amz-signature" | "signature" | "awsaccesskeyid" | "file"
    ) || field.starts_with("x-ignore-")
}

impl PostPolicy {
    /// Parses the decoded (not base64) JSON document.
    pub fn parse(json: &[u8]) -> Result<PostPolicy, PolicyError> {
        let doc: Value =
            serde_json::from_slice(json).map_err(|_| PolicyError::Malformed("Invalid JSON."))?;
        let doc = doc
            .as_object()
            .ok_or(PolicyError::Malformed("Invalid JSON."))?;
        let expiration = doc
            .get("expiration")
            .ok_or(PolicyError::Malformed("Policy missing expiration."))?
            .as_str()
            .and_then(parse_iso8601)
            .ok_or(PolicyError::Malformed(
                "Invalid 'expiration' value: must be an ISO 8601 date and time.",
            ))?;
        let list = doc
            .get("conditions")
            .ok_or(PolicyError::Malformed("Policy missing conditions."))?
            .as_array()
            .ok_or(PolicyError::Malformed("Invalid JSON."))?;
        let mut conditions = Vec::new();
        for entry in list {
            conditions.extend(parse_condition(entry)?);
        }
        Ok(PostPolicy {
            expiration,
            conditions,
        })
    }

    /// Checks the form's fields (lower-case names, values as sent, `bucket` included as S3
    /// adds it: a policy must name its bucket) at `now`. The content-length range, if any, is returned for the caller to
    /// check as the file streams.
    pub fn check(
        &self,
        fields: &[(String, String)],
        now: SystemTime,
    ) -> Result<Option<(u64, u64)>, PolicyError> {
        if now >= self.expiration {
            return Err(PolicyError::Expired);
        }
        let value_of = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map_or("", |(_, v)| v.as_str())
        };
        let mut range = None;
        for condition in &self.conditions {
            match condition {
                Condition::Eq { field, value, text } => {
                    if value_of(field) != value {
                        return Err(PolicyError::ConditionFailed(text.clone()));
                    }
                }
                Condition::StartsWith {
                    field,
                    prefix,
                    text,
                } => {
                    if !value_of(field).starts_with(prefix.as_str()) {
                        return Err(PolicyError::ConditionFailed(text.clone()));
                    }
                }
                Condition::LengthRange { min, max } => range = Some((*min, *max)),
            }
        }
        let extra: Vec<String> = fields
            .iter()
            .map(|(n, _)| n)
            .filter(|n| !exempt(n))
            .filter(|n| {
                !self
                    .conditions
                    .iter()
                    .any(|c| c.field() == Some(n.as_str()))
            })
            .cloned()
            .collect();
        if !extra.is_empty() {
            return Err(PolicyError::ExtraFields(extra));
        }
        Ok(range)
    }
}

impl Condition {
    fn field(&self) -> Option<&str> {
        match self {
            Condition::Eq { field, .. } | Condition::StartsWith { field, .. } => Some(field),
            Condition::LengthRange { .. } => None,
        }
    }
}

fn parse_condition(entry: &Value) -> Result<Vec<Condition>, PolicyError> {
    const BAD: PolicyError = PolicyError::Malformed("Invalid JSON.");
    match entry {
        // `{}` names no field: S3 refuses it rather than ignoring it.
        Value::Object(map) if map.is_empty() => Err(BAD),
        Value::Object(map) => map
            .iter()
            .map(|(name, value)| {
                let value = value.as_str().ok_or(BAD)?;
                Ok(Condition::Eq {
                    field: name.to_ascii_lowercase(),
                    value: value.to_string(),
                    text: format!("[\"eq\", \"${name}\", \"{value}\"]"),
                })
            })
            .collect(),
        Value::Array(items) => {
            let op = items.first().and_then(Value::as_str).ok_or(BAD)?;
            if op.eq_ignore_ascii_case("content-length-range") {
                let bound = |i: usize| {
                    let v = items.get(i).ok_or(BAD)?;
                    v.as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                        .ok_or(BAD)
                };
                if items.len() != 3 {
                    return Err(BAD);
                }
                return Ok(vec![Condition::LengthRange {
                    min: bound(1)?,
                    max: bound(2)?,
                }]);
            }
            let [_, Value::String(name), Value::String(value)] = items.as_slice() else {
                return Err(BAD);
            };
            let field = name
                .strip_prefix('$')
                .ok_or(PolicyError::Malformed(
                    "Condition field names must start with '$'.",
                ))?
                .to_ascii_lowercase();
            let text = format!("[\"{op}\", \"{name}\", \"{value}\"]");
            let value = value.clone();
            if op.eq_ignore_ascii_case("eq") {
                Ok(vec![Condition::Eq { field, value, text }])
            } else if op.eq_ignore_ascii_case("starts-with") {
                Ok(vec![Condition::StartsWith {
                    field,
                    prefix: value,
                    text,
                }])
            } else {
                Err(PolicyError::Malformed("Invalid condition operator."))
            }
        }
        _ => Err(BAD),
    }
}

/// `2026-12-04T16:00:00.000Z` and the other RFC 3339 forms S3 accepts.
fn parse_iso8601(text: &str) -> Option<SystemTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(text: &str) -> SystemTime {
        parse_iso8601(text).unwrap()
    }

    fn policy(conditions: &str) -> PostPolicy {
        PostPolicy::parse(
            format!(r#"{{"expiration": "2030-01-01T00:00:00.000Z", "conditions": {conditions}}}"#)
                .as_bytes(),
        )
        .unwrap()
    }

    fn fields(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn now() -> SystemTime {
        at("2026-12-04T12:00:00Z")
    }

    #[test]
    fn exact_eq_and_starts_with_conditions_pass_and_return_the_range() {
        let p = policy(
            r#"[{"bucket": "b1"}, ["starts-with", "$key", "user/"], ["eq", "$Content-Type", "text/plain"],
                ["content-length-range", 1, 100], ["starts-with", "$x-amz-meta-tag", ""]]"#,
        );
        let form = fields(&[
            ("bucket", "b1"),
            ("key", "user/a.txt"),
            ("content-type", "text/plain"),
            ("x-amz-meta-tag", "anything"),
            ("policy", "…"),
            ("x-amz-signature", "…"),
            ("x-ignore-me", "x"),
        ]);
        assert_eq!(p.check(&form, now()), Ok(Some((1, 100))));
    }

    #[test]
    fn a_failed_condition_is_named_as_written() {
        let p = policy(r#"[["starts-with", "$key", "user/"]]"#);
        let e = p.check(&fields(&[("key", "other/a")]), now()).unwrap_err();
        assert_eq!(
            e.message(),
            r#"Invalid according to Policy: Policy Condition failed: ["starts-with", "$key", "user/"]"#
        );
        let p = policy(r#"[{"acl": "public-read"}]"#);
        let e = p.check(&fields(&[("acl", "private")]), now()).unwrap_err();
        assert!(matches!(e, PolicyError::ConditionFailed(t) if t.contains("$acl")));
        // A condition on a field the form lacks fails (unless it allows anything).
        let p = policy(r#"[["eq", "$success_action_status", "201"]]"#);
        assert!(p.check(&fields(&[]), now()).is_err());
        let p = policy(r#"[["starts-with", "$Content-Type", ""]]"#);
        assert_eq!(p.check(&fields(&[]), now()), Ok(None));
    }

    #[test]
    fn unnamed_fields_are_extra_input() {
        let p = policy(r#"[["starts-with", "$key", ""]]"#);
        let e = p
            .check(&fields(&[("key", "k"), ("acl", "public-read")]), now())
            .unwrap_err();
        assert_eq!(e, PolicyError::ExtraFields(vec!["acl".to_string()]));
        assert_eq!(
            e.message(),
            "Invalid according to Policy: Extra input fields: acl"
        );
        // The bucket is a field like the others: a policy that does not name it is refused.
        let e = p
            .check(&fields(&[("key", "k"), ("bucket", "b1")]), now())
            .unwrap_err();
        assert_eq!(e, PolicyError::ExtraFields(vec!["bucket".to_string()]));
    }

    #[test]
    fn expiration_is_enforced() {
        let p = policy("[]");
        assert_eq!(
            p.check(&[], at("2030-01-01T00:00:00Z") + Duration::from_secs(1)),
            Err(PolicyError::Expired)
        );
        assert_eq!(
            PolicyError::Expired.message(),
            "Invalid according to Policy: Policy expired."
        );
    }

    #[test]
    fn malformed_documents_are_refused() {
        for doc in [
            "not json",
            "[]",
            r#"{"conditions": []}"#,
            r#"{"expiration": "tomorrow", "conditions": []}"#,
            r#"{"expiration": "2030-01-01T00:00:00Z"}"#,
            r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [["eq", "key", "k"]]}"#,
            r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [["content-length-range", 1]]}"#,
            r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [["like", "$key", "k"]]}"#,
            r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [42]}"#,
            r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [{}]}"#,
            r#"{"EXPIRATION": "2030-01-01T00:00:00Z", "conditions": []}"#,
            r#"{"expiration": "2030-01-01T00:00:00Z", "CONDITIONS": []}"#,
            r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [["content-length-range", -1, 0]]}"#,
        ] {
            assert!(
                matches!(
                    PostPolicy::parse(doc.as_bytes()),
                    Err(PolicyError::Malformed(_))
                ),
                "{doc}"
            );
        }
    }

    #[test]
    fn field_names_match_case_insensitively() {
        let p =
            policy(r#"[["eq", "$Cache-Control", "no-cache"], {"Success_Action_Status": "201"}]"#);
        let form = fields(&[
            ("cache-control", "no-cache"),
            ("success_action_status", "201"),
        ]);
        assert_eq!(p.check(&form, now()), Ok(None));
    }
}
