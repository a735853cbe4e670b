//! S3 bucket policies: the subset of the IAM policy language a bucket policy speaks, parsed and
//! validated as S3 does on PutBucketPolicy, and evaluated against a request's facts.
//!
//! What is understood:
//! - `Version` `2012-10-17` or `2008-10-17` (absent means `2008-10-17`), `Id`, `Statement` as
//!   one object or an array of them, each with `Sid`, `Effect`, `Principal`/`NotPrincipal`,
//!   `Action`/`NotAction`, `Resource`/`NotResource`, `Condition`.
//! - Principals: `"*"`, `{"AWS": "*"}`, `{"AWS": [...]}`. Hansa has no accounts; its principals
//!   are access key ids. An entry is either the key id itself or an IAM user ARN
//!   `arn:aws:iam::<account>:user/<key id>` (the account part is not checked: every key is in
//!   the one "account" the gateway is). Other principal kinds (roles, `root`, `Service`,
//!   `CanonicalUser`, `Federated`) are refused as invalid principals.
//! - Actions `s3:<name>` with `*`/`?` wildcards, matched case-insensitively; a name (or
//!   pattern) that names no S3 action is refused.
//! - Resources `arn:aws:s3:::bucket` and `arn:aws:s3:::bucket/key-pattern` with wildcards; each
//!   must name the bucket the policy is put on.
//! - Condition operators: the String*, Numeric*, Bool, IpAddress/NotIpAddress and Null families,
//!   each with its `...IfExists` form. Keys: `aws:SourceIp`, `aws:SecureTransport`, `s3:prefix`,
//!   `s3:delimiter`, `s3:max-keys`, `s3:x-amz-acl`.
//!
//! Left out (refused on put rather than silently ignored, so that a policy never means less
//! than it says): `ForAnyValue:`/`ForAllValues:` set operators, Date*, Arn* and BinaryEquals
//! operators, policy variables (`${aws:username}`), every other condition key (`aws:username`,
//! `aws:Referer`, `s3:ExistingObjectTag/…`, `s3:VersionId`, …).

use std::net::IpAddr;

use serde_json::Value;

use super::{Decision, Principal, RequestFacts};

/// S3's largest bucket policy, in bytes.
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// Why a policy document was refused; the message is S3's `MalformedPolicy` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError(pub String);

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}

fn err<T>(message: impl Into<String>) -> Result<T, PolicyError> {
    Err(PolicyError(message.into()))
}

const INVALID_JSON: &str = "This policy contains invalid Json";
const INVALID_RESOURCE: &str = "Policy has invalid resource";
const INVALID_PRINCIPAL: &str = "Invalid principal in policy";
const INVALID_ACTION: &str = "Policy has invalid action";
const INVALID_CONDITION_KEY: &str = "Policy has an invalid condition key";

/// A parsed, validated bucket policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub id: Option<String>,
    pub statements: Vec<Statement>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    /// `Principal` (`negated == false`) or `NotPrincipal`.
    pub principals: Negatable<Principals>,
    pub actions: Negatable<Vec<String>>,
    pub resources: Negatable<Vec<String>>,
    pub conditions: Vec<Condition>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// An element or its `Not…` form: the statement applies to what the list matches, or to
/// everything it does not.
#[derive(Clone, Debug, PartialEq)]
pub struct Negatable<T> {
    pub negated: bool,
    pub items: T,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principals {
    /// `"*"`: everyone, anonymous included.
    Everyone,
    /// These access key ids.
    Keys(Vec<String>),
}

impl Principals {
    fn matches(&self, who: &Principal) -> bool {
        match (self, who) {
            (Principals::Everyone, _) => true,
            (Principals::Keys(keys), Principal::Key(id)) => keys.iter().any(|k| k == id),
            (Principals::Keys(_), Principal::Anonymous) => false,
        }
    }
}

/// One `operator: {key: values}` test.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub operator: Operator,
    /// `…IfExists`: a key the request lacks satisfies the test.
    pub if_exists: bool,
    pub key: ConditionKey,
    pub values: Vec<ConditionValue>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    Bool,
    IpAddress,
    NotIpAddress,
    Null,
}

impl Operator {
    fn parse(name: &str) -> Option<Operator> {
        use Operator::*;
        Some(match name {
            "StringEquals" => StringEquals,
            "StringNotEquals" => StringNotEquals,
            "StringEqualsIgnoreCase" => StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => StringNotEqualsIgnoreCase,
            "StringLike" => StringLike,
            "StringNotLike" => StringNotLike,
            "NumericEquals" => NumericEquals,
            "NumericNotEquals" => NumericNotEquals,
            "NumericLessThan" => NumericLessThan,
            "NumericLessThanEquals" => NumericLessThanEquals,
            "NumericGreaterThan" => NumericGreaterThan,
            "NumericGreaterThanEquals" => NumericGreaterThanEquals,
            "Bool" => Bool,
            "IpAddress" => IpAddress,
            "NotIpAddress" => NotIpAddress,
            "Null" => Null,
            _ => return None,
        })
    }

    /// The negated operators hold when none of the values match, also when the key is
    /// missing from the request.
    fn negated(self) -> bool {
        use Operator::*;
        matches!(
            self,
            StringNotEquals
                | StringNotEqualsIgnoreCase
                | StringNotLike
                | NumericNotEquals
                | NotIpAddress
        )
    }
}

/// The condition keys Hansa knows values for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionKey {
    SourceIp,
    SecureTransport,
    /// An S3 request key (`s3:prefix`, …), by its canonical name.
    Request(&'static str),
}

const REQUEST_KEYS: &[&str] = &["s3:prefix", "s3:delimiter", "s3:max-keys", "s3:x-amz-acl"];

impl ConditionKey {
    fn parse(name: &str) -> Option<ConditionKey> {
        // Condition key names are case-insensitive.
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "aws:sourceip" => Some(ConditionKey::SourceIp),
            "aws:securetransport" => Some(ConditionKey::SecureTransport),
            _ => REQUEST_KEYS
                .iter()
                .find(|k| **k == lower)
                .map(|k| ConditionKey::Request(k)),
        }
    }

    /// The request's value for the key, if it has one.
    fn value(self, facts: &RequestFacts) -> Option<String> {
        match self {
            ConditionKey::SourceIp => facts.source_ip.map(|ip| canonical_ip(ip).to_string()),
            ConditionKey::SecureTransport => Some(facts.secure_transport.to_string()),
            ConditionKey::Request(name) => facts
                .conditions
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone()),
        }
    }
}

/// A condition value, checked on parse against its operator.
#[derive(Clone, Debug, PartialEq)]
pub enum ConditionValue {
    Text(String),
    Number(f64),
    Bool(bool),
    Cidr(Cidr),
}

/// An address range: `addr/len`, or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub len: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a.trim().parse::<IpAddr>().ok()?, Some(l.trim())),
            None => (s.trim().parse::<IpAddr>().ok()?, None),
        };
        let addr = canonical_ip(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(l) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) => {
                l.parse::<u8>().ok().filter(|l| *l <= max)?
            }
            Some(_) => return None,
            None => max,
        };
        Some(Cidr { addr, len })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical_ip(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(u32::from(net) as u128, u32::from(ip) as u128, self.len, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip), self.len, 128)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, len: u8, bits: u32) -> bool {
    let len = u32::from(len).min(bits);
    if len == 0 {
        return true;
    }
    let shift = bits - len;
    (a >> shift) == (b >> shift)
}

/// An IPv4-mapped IPv6 address is the IPv4 address it carries.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The S3 actions IAM knows (the names policies may use), lower-cased.
const S3_ACTIONS: &[&str] = &[
    "abortmultipartupload",
    "bypassgovernanceretention",
    "createbucket",
    "deletebucket",
    "deletebucketownershipcontrols",
    "deletebucketpolicy",
    "deletebucketwebsite",
    "deleteobject",
    "deleteobjecttagging",
    "deleteobjectversion",
    "deleteobjectversiontagging",
    "getaccelerateconfiguration",
    "getanalyticsconfiguration",
    "getbucketacl",
    "getbucketcors",
    "getbucketlocation",
    "getbucketlogging",
    "getbucketnotification",
    "getbucketobjectlockconfiguration",
    "getbucketownershipcontrols",
    "getbucketpolicy",
    "getbucketpolicystatus",
    "getbucketpublicaccessblock",
    "getbucketrequestpayment",
    "getbuckettagging",
    "getbucketversioning",
    "getbucketwebsite",
    "getencryptionconfiguration",
    "getinventoryconfiguration",
    "getlifecycleconfiguration",
    "getmetricsconfiguration",
    "getobject",
    "getobjectacl",
    "getobjectattributes",
    "getobjectlegalhold",
    "getobjectretention",
    "getobjecttagging",
    "getobjecttorrent",
    "getobjectversion",
    "getobjectversionacl",
    "getobjectversionattributes",
    "getobjectversiontagging",
    "getreplicationconfiguration",
    "listallmybuckets",
    "listbucket",
    "listbucketmultipartuploads",
    "listbucketversions",
    "listmultipartuploadparts",
    "putaccelerateconfiguration",
    "putanalyticsconfiguration",
    "putbucketacl",
    "putbucketcors",
    "putbucketlogging",
    "putbucketnotification",
    "putbucketobjectlockconfiguration",
    "putbucketownershipcontrols",
    "putbucketpolicy",
    "putbucketpublicaccessblock",
    "putbucketrequestpayment",
    "putbuckettagging",
    "putbucketversioning",
    "putbucketwebsite",
    "putencryptionconfiguration",
    "putinventoryconfiguration",
    "putlifecycleconfiguration",
    "putmetricsconfiguration",
    "putobject",
    "putobjectacl",
    "putobjectlegalhold",
    "putobjectretention",
    "putobjecttagging",
    "putobjectversionacl",
    "putobjectversiontagging",
    "putreplicationconfiguration",
    "replicatedelete",
    "replicateobject",
    "replicatetags",
    "restoreobject",
];

/// `*` matches any run of characters, `?` any one character.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matching with one backtrack point: linear in practice, no recursion a hostile
    // pattern could blow up.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

// ---------------------------------------------------------------------------------------------
// Parsing

impl Policy {
    /// Parses and validates `doc` as the policy of `bucket`, as S3 does on PutBucketPolicy.
    pub fn parse(doc: &str, bucket: &str) -> Result<Policy, PolicyError> {
        if doc.len() > MAX_POLICY_BYTES {
            return err("Policy exceeds the maximum allowed document size.");
        }
        let value: Value = serde_json::from_str(doc).or_else(|_| err(INVALID_JSON))?;
        let Value::Object(top) = value else {
            return err(INVALID_JSON);
        };
        let mut id = None;
        let mut statements = None;
        for (name, v) in &top {
            match name.as_str() {
                "Version" => match v.as_str() {
                    Some("2012-10-17" | "2008-10-17") => {}
                    _ => return err("The policy must contain a valid version string"),
                },
                "Id" => id = Some(string(v)?),
                "Statement" => statements = Some(v),
                other => return err(format!("Unknown field {other}")),
            }
        }
        let statements = match statements {
            Some(Value::Array(list)) if !list.is_empty() => list
                .iter()
                .map(|s| Statement::parse(s, bucket))
                .collect::<Result<Vec<_>, _>>()?,
            Some(one @ Value::Object(_)) => vec![Statement::parse(one, bucket)?],
            Some(Value::Array(_)) | None => return err("Missing required field Statement"),
            Some(_) => return err(INVALID_JSON),
        };
        Ok(Policy { id, statements })
    }

    /// Every access key id the policy names as a principal.
    pub fn named_keys(&self) -> impl Iterator<Item = &str> {
        self.statements
            .iter()
            .filter_map(|s| match &s.principals.items {
                Principals::Keys(keys) => Some(keys.iter().map(String::as_str)),
                Principals::Everyone => None,
            })
            .flatten()
    }
}

fn string(v: &Value) -> Result<String, PolicyError> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| PolicyError(INVALID_JSON.into()))
}

/// A string or a non-empty array of strings.
fn strings(v: &Value, invalid: &str) -> Result<Vec<String>, PolicyError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(list) if !list.is_empty() => list
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| PolicyError(invalid.into()))
            })
            .collect(),
        _ => err(invalid),
    }
}

/// `Element` or `NotElement`: exactly one of them.
fn one_of<'a>(
    statement: &'a serde_json::Map<String, Value>,
    name: &str,
) -> Result<Negatable<&'a Value>, PolicyError> {
    let not = format!("Not{name}");
    match (statement.get(name), statement.get(&not)) {
        (Some(v), None) => Ok(Negatable {
            negated: false,
            items: v,
        }),
        (None, Some(v)) => Ok(Negatable {
            negated: true,
            items: v,
        }),
        (None, None) => err(format!("Missing required field {name}")),
        (Some(_), Some(_)) => err(format!("Statement has both {name} and {not}")),
    }
}

impl Statement {
    fn parse(v: &Value, bucket: &str) -> Result<Statement, PolicyError> {
        let Value::Object(map) = v else {
            return err(INVALID_JSON);
        };
        for name in map.keys() {
            if !matches!(
                name.as_str(),
                "Sid"
                    | "Effect"
                    | "Principal"
                    | "NotPrincipal"
                    | "Action"
                    | "NotAction"
                    | "Resource"
                    | "NotResource"
                    | "Condition"
            ) {
                return err(format!("Unknown field {name}"));
            }
        }
        let sid = map.get("Sid").map(string).transpose()?;
        let effect = match map.get("Effect") {
            None => return err("Missing required field Effect"),
            Some(Value::String(e)) if e == "Allow" => Effect::Allow,
            Some(Value::String(e)) if e == "Deny" => Effect::Deny,
            Some(Value::String(e)) => return err(format!("Invalid effect: {e}")),
            Some(_) => return err(INVALID_JSON),
        };
        let principal = one_of(map, "Principal")?;
        let action = one_of(map, "Action")?;
        let resource = one_of(map, "Resource")?;
        let conditions = match map.get("Condition") {
            None => Vec::new(),
            Some(c) => parse_conditions(c)?,
        };
        Ok(Statement {
            sid,
            effect,
            principals: Negatable {
                negated: principal.negated,
                items: parse_principals(principal.items)?,
            },
            actions: Negatable {
                negated: action.negated,
                items: parse_actions(action.items)?,
            },
            resources: Negatable {
                negated: resource.negated,
                items: parse_resources(resource.items, bucket)?,
            },
            conditions,
        })
    }
}

fn parse_principals(v: &Value) -> Result<Principals, PolicyError> {
    let aws = match v {
        Value::String(s) if s == "*" => return Ok(Principals::Everyone),
        Value::Object(map) if map.len() == 1 => match map.get("AWS") {
            Some(aws) => aws,
            None => return err(INVALID_PRINCIPAL),
        },
        _ => return err(INVALID_PRINCIPAL),
    };
    let entries = strings(aws, INVALID_PRINCIPAL)?;
    if entries.iter().any(|e| e == "*") {
        return Ok(Principals::Everyone);
    }
    entries
        .iter()
        .map(|e| key_id_of(e).ok_or_else(|| PolicyError(INVALID_PRINCIPAL.into())))
        .collect::<Result<Vec<_>, _>>()
        .map(Principals::Keys)
}

/// `KEYID` or `arn:aws:iam::<account>:user/KEYID` → `KEYID`.
fn key_id_of(entry: &str) -> Option<String> {
    let id = match entry.strip_prefix("arn:aws:iam::") {
        Some(rest) => {
            let (_account, resource) = rest.split_once(':')?;
            resource.strip_prefix("user/")?
        }
        None => entry,
    };
    let valid = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.+=@".contains(&b));
    valid.then(|| id.to_string())
}

fn parse_actions(v: &Value) -> Result<Vec<String>, PolicyError> {
    let actions = strings(v, INVALID_ACTION)?;
    for action in &actions {
        if action == "*" {
            continue;
        }
        let lower = action.to_ascii_lowercase();
        let Some(name) = lower.strip_prefix("s3:") else {
            return err(INVALID_ACTION);
        };
        if !S3_ACTIONS.iter().any(|known| wildcard_match(name, known)) {
            return err(INVALID_ACTION);
        }
    }
    Ok(actions.iter().map(|a| a.to_ascii_lowercase()).collect())
}

fn parse_resources(v: &Value, bucket: &str) -> Result<Vec<String>, PolicyError> {
    let resources = strings(v, INVALID_RESOURCE)?;
    for resource in &resources {
        let Some(rest) = resource.strip_prefix("arn:aws:s3:::") else {
            return err(INVALID_RESOURCE);
        };
        let bucket_part = rest.split_once('/').map_or(rest, |(b, _)| b);
        // The resource must lie in the bucket being configured (a wildcard may name it).
        if bucket_part.is_empty() || !wildcard_match(bucket_part, bucket) {
            return err(INVALID_RESOURCE);
        }
    }
    Ok(resources)
}

fn parse_conditions(v: &Value) -> Result<Vec<Condition>, PolicyError> {
    let Value::Object(block) = v else {
        return err(INVALID_JSON);
    };
    let mut out = Vec::new();
    for (op_name, tests) in block {
        if op_name.starts_with("ForAnyValue:") || op_name.starts_with("ForAllValues:") {
            return err(format!(
                "Invalid Condition type : {op_name} (set operators are not supported)"
            ));
        }
        let (base, if_exists) = match op_name.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (op_name.as_str(), false),
        };
        let operator = Operator::parse(base)
            .filter(|op| !(if_exists && *op == Operator::Null))
            .ok_or_else(|| PolicyError(format!("Invalid Condition type : {op_name}")))?;
        let Value::Object(tests) = tests else {
            return err(INVALID_JSON);
        };
        for (key_name, values) in tests {
            let key = ConditionKey::parse(key_name)
                .ok_or_else(|| PolicyError(INVALID_CONDITION_KEY.into()))?;
            let raw = match values {
                Value::Array(list) if !list.is_empty() => list.iter().collect::<Vec<_>>(),
                Value::Array(_) => return err(INVALID_JSON),
                one => vec![one],
            };
            let values = raw
                .into_iter()
                .map(|v| condition_value(operator, key, v))
                .collect::<Result<Vec<_>, _>>()?;
            out.push(Condition {
                operator,
                if_exists,
                key,
                values,
            });
        }
    }
    Ok(out)
}

/// A JSON scalar as the text IAM compares (numbers and booleans as they are written).
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn condition_value(
    op: Operator,
    key: ConditionKey,
    v: &Value,
) -> Result<ConditionValue, PolicyError> {
    use Operator::*;
    let text = scalar_text(v).ok_or_else(|| PolicyError(INVALID_JSON.into()))?;
    let invalid_value = || PolicyError(format!("Invalid value for condition {op:?}: {text}"));
    match op {
        IpAddress | NotIpAddress => {
            if key != ConditionKey::SourceIp {
                return err(INVALID_CONDITION_KEY);
            }
            Cidr::parse(&text)
                .map(ConditionValue::Cidr)
                .ok_or_else(invalid_value)
        }
        Bool | Null => match text.to_ascii_lowercase().as_str() {
            "true" => Ok(ConditionValue::Bool(true)),
            "false" => Ok(ConditionValue::Bool(false)),
            _ => Err(invalid_value()),
        },
        NumericEquals
        | NumericNotEquals
        | NumericLessThan
        | NumericLessThanEquals
        | NumericGreaterThan
        | NumericGreaterThanEquals => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(ConditionValue::Number)
            .ok_or_else(invalid_value),
        StringEquals
        | StringNotEquals
        | StringEqualsIgnoreCase
        | StringNotEqualsIgnoreCase
        | StringLike
        | StringNotLike => {
            if text.contains("${") {
                return Err(PolicyError(format!(
                    "Policy variables are not supported: {text}"
                )));
            }
            Ok(ConditionValue::Text(text))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// The policy's verdict on a request: an explicit Deny first, then an Allow, else no opinion.
pub fn evaluate(policy: &Policy, facts: &RequestFacts) -> Decision {
    let mut decision = Decision::NoOpinion;
    for statement in &policy.statements {
        if statement.applies(facts) {
            match statement.effect {
                Effect::Deny => return Decision::Deny,
                Effect::Allow => decision = Decision::Allow,
            }
        }
    }
    decision
}

impl Statement {
    pub fn applies(&self, facts: &RequestFacts) -> bool {
        let principal = self.principals.items.matches(&facts.principal);
        let action = facts.action.to_ascii_lowercase();
        let action_listed = self
            .actions
            .items
            .iter()
            .any(|pattern| wildcard_match(pattern, &action));
        let arn = facts.resource_arn();
        let resource_listed = self
            .resources
            .items
            .iter()
            .any(|pattern| wildcard_match(pattern, &arn));
        principal != self.principals.negated
            && action_listed != self.actions.negated
            && resource_listed != self.resources.negated
            && self.conditions.iter().all(|c| c.holds(facts))
    }

    /// Allows everyone (or everyone but a few) with nothing pinning the source down.
    fn is_public(&self) -> bool {
        let everyone = match (&self.principals.items, self.principals.negated) {
            (Principals::Everyone, false) => true,
            // "Everyone except these" is as public as it gets.
            (Principals::Keys(_), true) => true,
            _ => false,
        };
        self.effect == Effect::Allow
            && everyone
            && !self.conditions.iter().any(Condition::restricts_source)
    }
}

impl Condition {
    fn holds(&self, facts: &RequestFacts) -> bool {
        let Some(actual) = self.key.value(facts) else {
            return match self.operator {
                Operator::Null => self.values.contains(&ConditionValue::Bool(true)),
                _ => self.if_exists || self.operator.negated(),
            };
        };
        if self.operator == Operator::Null {
            return self.values.contains(&ConditionValue::Bool(false));
        }
        let any = self.values.iter().any(|v| self.matches(v, &actual));
        if self.operator.negated() {
            !any
        } else {
            any
        }
    }

    /// Whether `actual` matches one value (before negation).
    fn matches(&self, value: &ConditionValue, actual: &str) -> bool {
        use Operator::*;
        match (self.operator, value) {
            (StringEquals | StringNotEquals, ConditionValue::Text(v)) => v == actual,
            (StringEqualsIgnoreCase | StringNotEqualsIgnoreCase, ConditionValue::Text(v)) => {
                v.to_lowercase() == actual.to_lowercase()
            }
            (StringLike | StringNotLike, ConditionValue::Text(v)) => wildcard_match(v, actual),
            (Bool, ConditionValue::Bool(v)) => actual.eq_ignore_ascii_case(&v.to_string()),
            (IpAddress | NotIpAddress, ConditionValue::Cidr(cidr)) => {
                actual.parse::<IpAddr>().is_ok_and(|ip| cidr.contains(ip))
            }
            (op, ConditionValue::Number(v)) => {
                let Ok(n) = actual.trim().parse::<f64>() else {
                    return false;
                };
                match op {
                    NumericEquals | NumericNotEquals => n == *v,
                    NumericLessThan => n < *v,
                    NumericLessThanEquals => n <= *v,
                    NumericGreaterThan => n > *v,
                    NumericGreaterThanEquals => n >= *v,
                    _ => false,
                }
            }
            _ => false,
        }
    }

    /// A condition that limits who can use a public statement to fixed sources: `aws:SourceIp`
    /// within ranges no wider than S3 counts as non-public (/8 for IPv4, /32 for IPv6).
    fn restricts_source(&self) -> bool {
        self.key == ConditionKey::SourceIp
            && self.operator == Operator::IpAddress
            && !self.if_exists
            && self.values.iter().all(|v| match v {
                ConditionValue::Cidr(c) => match c.addr {
                    IpAddr::V4(_) => c.len >= 8,
                    IpAddr::V6(_) => c.len >= 32,
                },
                _ => false,
            })
    }
}

/// Whether S3 would report the policy as public (GetBucketPolicyStatus, BlockPublicPolicy): a
/// statement allows everyone without a condition pinning the source to fixed ranges.
pub fn is_public(policy: &Policy) -> bool {
    policy.statements.iter().any(Statement::is_public)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const B: &str = "photos";

    fn parse(doc: &str) -> Result<Policy, PolicyError> {
        Policy::parse(doc, B)
    }

    fn one(statement: &str) -> Policy {
        parse(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{statement}]}}"#
        ))
        .unwrap_or_else(|e| panic!("{statement}: {e}"))
    }

    fn malformed(doc: &str) -> String {
        match parse(doc) {
            Ok(p) => panic!("accepted {doc}: {p:?}"),
            Err(e) => e.0,
        }
    }

    fn malformed_statement(statement: &str) -> String {
        malformed(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{statement}]}}"#
        ))
    }

    fn facts(who: Option<&str>, action: &'static str, key: Option<&str>) -> RequestFacts {
        RequestFacts {
            principal: who.map_or(Principal::Anonymous, |k| Principal::Key(k.into())),
            action,
            bucket: B.into(),
            key: key.map(str::to_string),
            source_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))),
            secure_transport: true,
            conditions: Vec::new(),
        }
    }

    const ALLOW_ALL_GET: &str = r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#;

    #[test]
    fn parses_the_documented_shapes() {
        let p = parse(
            r#"{"Version":"2008-10-17","Id":"P1","Statement":{"Sid":"S","Effect":"Deny",
            "Principal":{"AWS":["AKID1","arn:aws:iam::123456789012:user/AKID2"]},
            "Action":["s3:PutObject","s3:Get*"],"Resource":["arn:aws:s3:::photos","arn:aws:s3:::photos/*"]}}"#,
        )
        .unwrap();
        assert_eq!(p.id.as_deref(), Some("P1"));
        let s = &p.statements[0];
        assert_eq!(s.sid.as_deref(), Some("S"));
        assert_eq!(s.effect, Effect::Deny);
        assert_eq!(
            s.principals.items,
            Principals::Keys(vec!["AKID1".into(), "AKID2".into()])
        );
        assert_eq!(p.named_keys().collect::<Vec<_>>(), ["AKID1", "AKID2"]);
        // No Version at all is the 2008 language.
        parse(r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"*","Resource":"arn:aws:s3:::photos/*"}]}"#).unwrap();
    }

    #[test]
    fn malformed_documents_get_s3s_messages() {
        assert_eq!(malformed("not json"), INVALID_JSON);
        assert_eq!(malformed("[]"), INVALID_JSON);
        assert_eq!(
            malformed(r#"{"Version":"2012-10-17"}"#),
            "Missing required field Statement"
        );
        assert_eq!(
            malformed(r#"{"Version":"2012-10-17","Statement":[]}"#),
            "Missing required field Statement"
        );
        assert_eq!(
            malformed(r#"{"Version":"2001-01-01","Statement":[]}"#),
            "The policy must contain a valid version string"
        );
        assert_eq!(
            malformed(r#"{"Statement":[],"Extra":1}"#),
            "Unknown field Extra"
        );
        let too_big = format!(
            r#"{{"Id":"{}","Statement":[{ALLOW_ALL_GET}]}}"#,
            "x".repeat(MAX_POLICY_BYTES)
        );
        assert_eq!(
            malformed(&too_big),
            "Policy exceeds the maximum allowed document size."
        );
    }

    #[test]
    fn malformed_statements_get_s3s_messages() {
        let cases = [
            (
                r#"{"Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#,
                "Missing required field Effect",
            ),
            (
                r#"{"Effect":"Maybe","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#,
                "Invalid effect: Maybe",
            ),
            (
                r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#,
                "Missing required field Principal",
            ),
            (
                r#"{"Effect":"Allow","Principal":"*","Resource":"arn:aws:s3:::photos/*"}"#,
                "Missing required field Action",
            ),
            (
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}"#,
                "Missing required field Resource",
            ),
            (
                r#"{"Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#,
                "Statement has both Principal and NotPrincipal",
            ),
            (
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*","Foo":1}"#,
                "Unknown field Foo",
            ),
        ];
        for (statement, message) in cases {
            assert_eq!(malformed_statement(statement), message, "{statement}");
        }
    }

    #[test]
    fn invalid_principals_actions_resources_and_keys() {
        let with = |principal: &str, action: &str, resource: &str| {
            malformed_statement(&format!(
                r#"{{"Effect":"Allow","Principal":{principal},"Action":{action},"Resource":{resource}}}"#
            ))
        };
        let (p, a, r) = (r#""*""#, r#""s3:GetObject""#, r#""arn:aws:s3:::photos/*""#);
        for bad in [
            r#""AKID""#,
            r#"{"Service":"s3.amazonaws.com"}"#,
            r#"{"AWS":"arn:aws:iam::123456789012:root"}"#,
            r#"{"AWS":"arn:aws:iam::123456789012:role/x"}"#,
            r#"{"AWS":[]}"#,
            r#"{"AWS":"bad key!"}"#,
        ] {
            assert_eq!(with(bad, a, r), INVALID_PRINCIPAL, "{bad}");
        }
        for bad in [
            r#""s3:NoSuchAction""#,
            r#""s3:Zz*""#,
            r#""ec2:RunInstances""#,
            r#""GetObject""#,
            r#"[]"#,
        ] {
            assert_eq!(with(p, bad, r), INVALID_ACTION, "{bad}");
        }
        for bad in [
            r#""arn:aws:s3:::other/*""#,
            r#""arn:aws:s3:::photos2""#,
            r#""*""#,
            r#""arn:aws:iam:::photos""#,
            r#"["arn:aws:s3:::photos/*","arn:aws:s3:::other"]"#,
        ] {
            assert_eq!(with(p, a, bad), INVALID_RESOURCE, "{bad}");
        }
        // Case-insensitive action names, and a bucket wildcard that names this bucket.
        one(
            r#"{"Effect":"Allow","Principal":"*","Action":["S3:getobject","s3:List*"],"Resource":"arn:aws:s3:::pho*"}"#,
        );
        let cond = |c: &str| {
            malformed_statement(&format!(
                r#"{{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::photos","Condition":{c}}}"#
            ))
        };
        assert_eq!(
            cond(r#"{"StringEquals":{"aws:username":"x"}}"#),
            INVALID_CONDITION_KEY
        );
        assert_eq!(
            cond(r#"{"StringEquals":{"s3:ExistingObjectTag/a":"x"}}"#),
            INVALID_CONDITION_KEY
        );
        assert_eq!(
            cond(r#"{"IpAddress":{"s3:prefix":"10.0.0.0/8"}}"#),
            INVALID_CONDITION_KEY
        );
        assert!(cond(r#"{"DateEquals":{"s3:prefix":"x"}}"#).starts_with("Invalid Condition type"));
        assert!(cond(r#"{"ForAnyValue:StringEquals":{"s3:prefix":"x"}}"#)
            .starts_with("Invalid Condition type"));
        assert!(
            cond(r#"{"NullIfExists":{"s3:prefix":"true"}}"#).starts_with("Invalid Condition type")
        );
        for bad in [
            r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/33"}}"#,
            r#"{"IpAddress":{"aws:SourceIp":"10.0.0.300"}}"#,
            r#"{"IpAddress":{"aws:SourceIp":"::1/129"}}"#,
            r#"{"Bool":{"aws:SecureTransport":"yes"}}"#,
            r#"{"NumericLessThan":{"s3:max-keys":"ten"}}"#,
            r#"{"StringLike":{"s3:prefix":"home/${aws:username}/*"}}"#,
        ] {
            assert!(
                cond(bad).starts_with("Invalid value") || cond(bad).starts_with("Policy variables"),
                "{bad}"
            );
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*c", "abbbc"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match("*/*.jpg", "x/y/z.jpg"));
        assert!(!wildcard_match("*.jpg", "x.jpeg"));
        assert!(!wildcard_match("abc", "abcd"));
        assert!(wildcard_match("a*b*c*d", "aXbYcZd"));
        assert!(!wildcard_match("a*b*c*d", "aXbYcZ"));
        // No exponential blow-up on a hostile pattern.
        let long = "a".repeat(5000);
        let hostile = format!("{}b", "*a".repeat(100));
        let started = std::time::Instant::now();
        assert!(!wildcard_match(&hostile, &long));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn actions_and_resources_match_with_wildcards() {
        let p = one(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:Get*","Resource":"arn:aws:s3:::photos/public/*"}"#,
        );
        assert_eq!(
            evaluate(&p, &facts(None, "s3:GetObject", Some("public/a.jpg"))),
            Decision::Allow
        );
        assert_eq!(
            evaluate(&p, &facts(None, "s3:GetObjectAcl", Some("public/a.jpg"))),
            Decision::Allow
        );
        assert_eq!(
            evaluate(&p, &facts(None, "s3:PutObject", Some("public/a.jpg"))),
            Decision::NoOpinion
        );
        assert_eq!(
            evaluate(&p, &facts(None, "s3:GetObject", Some("private/a.jpg"))),
            Decision::NoOpinion
        );
        // The bucket itself is not an object under it.
        assert_eq!(
            evaluate(&p, &facts(None, "s3:GetBucketAcl", None)),
            Decision::NoOpinion
        );
        let all = one(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::photos","arn:aws:s3:::photos/*"]}"#,
        );
        assert_eq!(
            evaluate(&all, &facts(None, "s3:ListBucket", None)),
            Decision::Allow
        );
    }

    #[test]
    fn principals_match_key_ids_and_everyone() {
        let p = one(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:user/KEY1"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#,
        );
        assert_eq!(
            evaluate(&p, &facts(Some("KEY1"), "s3:GetObject", Some("k"))),
            Decision::Allow
        );
        assert_eq!(
            evaluate(&p, &facts(Some("KEY2"), "s3:GetObject", Some("k"))),
            Decision::NoOpinion
        );
        assert_eq!(
            evaluate(&p, &facts(None, "s3:GetObject", Some("k"))),
            Decision::NoOpinion
        );
        let everyone = one(ALLOW_ALL_GET);
        assert_eq!(
            evaluate(&everyone, &facts(None, "s3:GetObject", Some("k"))),
            Decision::Allow
        );
    }

    #[test]
    fn deny_beats_allow() {
        let p = parse(&format!(
            r#"{{"Statement":[{ALLOW_ALL_GET},{{"Effect":"Deny","Principal":{{"AWS":"KEY1"}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/secret/*"}},{ALLOW_ALL_GET}]}}"#
        ))
        .unwrap();
        assert_eq!(
            evaluate(&p, &facts(Some("KEY1"), "s3:GetObject", Some("secret/x"))),
            Decision::Deny
        );
        assert_eq!(
            evaluate(&p, &facts(Some("KEY2"), "s3:GetObject", Some("secret/x"))),
            Decision::Allow
        );
        assert_eq!(
            evaluate(&p, &facts(Some("KEY1"), "s3:GetObject", Some("open/x"))),
            Decision::Allow
        );
    }

    #[test]
    fn not_principal_not_action_not_resource() {
        let p = one(
            r#"{"Effect":"Deny","NotPrincipal":{"AWS":["KEY1"]},"NotAction":["s3:Get*","s3:List*"],"NotResource":"arn:aws:s3:::photos/scratch/*"}"#,
        );
        // Everyone but KEY1 is refused every non-read action outside scratch/.
        assert_eq!(
            evaluate(&p, &facts(Some("KEY2"), "s3:PutObject", Some("a"))),
            Decision::Deny
        );
        assert_eq!(
            evaluate(&p, &facts(None, "s3:DeleteObject", Some("a"))),
            Decision::Deny
        );
        assert_eq!(
            evaluate(&p, &facts(Some("KEY1"), "s3:PutObject", Some("a"))),
            Decision::NoOpinion
        );
        assert_eq!(
            evaluate(&p, &facts(Some("KEY2"), "s3:GetObject", Some("a"))),
            Decision::NoOpinion
        );
        assert_eq!(
            evaluate(&p, &facts(Some("KEY2"), "s3:PutObject", Some("scratch/a"))),
            Decision::NoOpinion
        );
    }

    fn with_condition(condition: &str) -> Policy {
        one(&format!(
            r#"{{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::photos","arn:aws:s3:::photos/*"],"Condition":{condition}}}"#
        ))
    }

    fn allowed(condition: &str, facts: &RequestFacts) -> bool {
        evaluate(&with_condition(condition), facts) == Decision::Allow
    }

    fn listing(conditions: &[(&str, &str)]) -> RequestFacts {
        let mut f = facts(Some("K"), "s3:ListBucket", None);
        f.conditions = conditions
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        f
    }

    #[test]
    fn string_operators() {
        let home = listing(&[("s3:prefix", "home/Ann/"), ("s3:delimiter", "/")]);
        let none = listing(&[]);
        assert!(allowed(
            r#"{"StringEquals":{"s3:prefix":["x","home/Ann/"]}}"#,
            &home
        ));
        assert!(!allowed(
            r#"{"StringEquals":{"s3:prefix":"home/ann/"}}"#,
            &home
        ));
        assert!(!allowed(
            r#"{"StringEquals":{"s3:prefix":"home/Ann/"}}"#,
            &none
        ));
        assert!(allowed(
            r#"{"StringEqualsIfExists":{"s3:prefix":"home/"}}"#,
            &none
        ));
        assert!(!allowed(
            r#"{"StringEqualsIfExists":{"s3:prefix":"home/"}}"#,
            &home
        ));
        assert!(allowed(r#"{"StringNotEquals":{"s3:prefix":"x"}}"#, &home));
        assert!(!allowed(
            r#"{"StringNotEquals":{"s3:prefix":["x","home/Ann/"]}}"#,
            &home
        ));
        // A negated operator holds when the key is missing.
        assert!(allowed(r#"{"StringNotEquals":{"s3:prefix":"x"}}"#, &none));
        assert!(allowed(
            r#"{"StringEqualsIgnoreCase":{"s3:prefix":"HOME/ann/"}}"#,
            &home
        ));
        assert!(!allowed(
            r#"{"StringNotEqualsIgnoreCase":{"s3:prefix":"HOME/ann/"}}"#,
            &home
        ));
        assert!(allowed(r#"{"StringLike":{"s3:prefix":"home/*"}}"#, &home));
        assert!(allowed(
            r#"{"StringLike":{"S3:Prefix":"home/?nn/"}}"#,
            &home
        ));
        assert!(!allowed(r#"{"StringLike":{"s3:prefix":"work/*"}}"#, &home));
        assert!(allowed(
            r#"{"StringNotLike":{"s3:prefix":"work/*"}}"#,
            &home
        ));
        assert!(!allowed(
            r#"{"StringNotLike":{"s3:prefix":"home/*"}}"#,
            &home
        ));
        // Every key and every operator must hold.
        assert!(allowed(
            r#"{"StringEquals":{"s3:prefix":"home/Ann/","s3:delimiter":"/"}}"#,
            &home
        ));
        assert!(!allowed(
            r#"{"StringEquals":{"s3:prefix":"home/Ann/"},"StringNotEquals":{"s3:delimiter":"/"}}"#,
            &home
        ));
        let acl = listing(&[("s3:x-amz-acl", "public-read")]);
        assert!(allowed(
            r#"{"StringEquals":{"s3:x-amz-acl":"public-read"}}"#,
            &acl
        ));
    }

    #[test]
    fn numeric_operators() {
        let ten = listing(&[("s3:max-keys", "10")]);
        let cases = [
            ("NumericEquals", "10", true),
            ("NumericEquals", "11", false),
            ("NumericNotEquals", "11", true),
            ("NumericNotEquals", "10", false),
            ("NumericLessThan", "11", true),
            ("NumericLessThan", "10", false),
            ("NumericLessThanEquals", "10", true),
            ("NumericLessThanEquals", "9", false),
            ("NumericGreaterThan", "9", true),
            ("NumericGreaterThan", "10", false),
            ("NumericGreaterThanEquals", "10", true),
            ("NumericGreaterThanEquals", "11", false),
        ];
        for (op, value, expected) in cases {
            let c = format!(r#"{{"{op}":{{"s3:max-keys":"{value}"}}}}"#);
            assert_eq!(allowed(&c, &ten), expected, "{c}");
        }
        assert!(allowed(
            r#"{"NumericLessThanEquals":{"s3:max-keys":100}}"#,
            &ten
        ));
        let missing = listing(&[]);
        assert!(!allowed(
            r#"{"NumericLessThan":{"s3:max-keys":"100"}}"#,
            &missing
        ));
        assert!(allowed(
            r#"{"NumericLessThanIfExists":{"s3:max-keys":"100"}}"#,
            &missing
        ));
        let junk = listing(&[("s3:max-keys", "lots")]);
        assert!(!allowed(
            r#"{"NumericLessThan":{"s3:max-keys":"100"}}"#,
            &junk
        ));
    }

    #[test]
    fn bool_and_null_operators() {
        let mut f = facts(Some("K"), "s3:GetObject", Some("k"));
        assert!(allowed(r#"{"Bool":{"aws:SecureTransport":"true"}}"#, &f));
        assert!(allowed(r#"{"Bool":{"aws:SecureTransport":true}}"#, &f));
        assert!(!allowed(r#"{"Bool":{"aws:SecureTransport":"false"}}"#, &f));
        f.secure_transport = false;
        assert!(allowed(r#"{"Bool":{"aws:SecureTransport":"false"}}"#, &f));
        assert!(allowed(
            r#"{"BoolIfExists":{"aws:SecureTransport":"false"}}"#,
            &f
        ));
        assert!(allowed(r#"{"Null":{"s3:prefix":"true"}}"#, &f));
        assert!(!allowed(r#"{"Null":{"s3:prefix":"false"}}"#, &f));
        let listed = listing(&[("s3:prefix", "")]);
        assert!(allowed(r#"{"Null":{"s3:prefix":"false"}}"#, &listed));
        assert!(!allowed(r#"{"Null":{"s3:prefix":"true"}}"#, &listed));
        f.source_ip = None;
        assert!(allowed(r#"{"Null":{"aws:SourceIp":"true"}}"#, &f));
    }

    #[test]
    fn ip_operators_v4_and_v6() {
        let mut f = facts(Some("K"), "s3:GetObject", Some("k"));
        assert!(allowed(
            r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            &f
        ));
        assert!(allowed(
            r#"{"IpAddress":{"aws:SourceIp":["192.168.0.0/16","10.1.2.3"]}}"#,
            &f
        ));
        assert!(!allowed(
            r#"{"IpAddress":{"aws:SourceIp":"10.1.2.4/32"}}"#,
            &f
        ));
        assert!(!allowed(
            r#"{"IpAddress":{"aws:SourceIp":"11.0.0.0/8"}}"#,
            &f
        ));
        assert!(allowed(r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#, &f));
        assert!(allowed(
            r#"{"NotIpAddress":{"aws:SourceIp":"11.0.0.0/8"}}"#,
            &f
        ));
        assert!(!allowed(
            r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/9"}}"#,
            &f
        ));
        // IPv4 ranges say nothing about IPv6 clients and back.
        assert!(!allowed(r#"{"IpAddress":{"aws:SourceIp":"::/0"}}"#, &f));
        f.source_ip = Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)));
        assert!(allowed(
            r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}"#,
            &f
        ));
        assert!(allowed(
            r#"{"IpAddress":{"aws:SourceIp":"2001:DB8::1"}}"#,
            &f
        ));
        assert!(!allowed(
            r#"{"IpAddress":{"aws:SourceIp":"2001:db9::/32"}}"#,
            &f
        ));
        assert!(!allowed(
            r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            &f
        ));
        assert!(allowed(
            r#"{"NotIpAddress":{"aws:SourceIp":"2001:db9::/32"}}"#,
            &f
        ));
        // An IPv4-mapped client address is its IPv4 address.
        f.source_ip = Some(IpAddr::V6(Ipv4Addr::new(10, 9, 9, 9).to_ipv6_mapped()));
        assert!(allowed(
            r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            &f
        ));
        // An unknown address matches no range; NotIpAddress holds, IfExists passes.
        f.source_ip = None;
        assert!(!allowed(
            r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#,
            &f
        ));
        assert!(allowed(
            r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            &f
        ));
        assert!(allowed(
            r#"{"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            &f
        ));
    }

    #[test]
    fn cidr_parsing() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.255.255".parse().unwrap()));
        assert!(!c.contains("10.2.0.0".parse().unwrap()));
        assert_eq!(Cidr::parse("1.2.3.4").unwrap().len, 32);
        assert_eq!(Cidr::parse("::1").unwrap().len, 128);
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "x/8",
            "::/200",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn public_means_everyone_without_a_fixed_source() {
        assert!(is_public(&one(ALLOW_ALL_GET)));
        assert!(is_public(&with_condition(
            r#"{"Bool":{"aws:SecureTransport":"true"}}"#
        )));
        assert!(is_public(&with_condition(
            r#"{"StringLike":{"s3:prefix":"public/*"}}"#
        )));
        assert!(!is_public(&with_condition(
            r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#
        )));
        assert!(is_public(&with_condition(
            r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#
        )));
        assert!(is_public(&with_condition(
            r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#
        )));
        assert!(!is_public(&with_condition(
            r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/48"}}"#
        )));
        // Named keys, and denials to everyone, are not public.
        assert!(!is_public(&one(
            r#"{"Effect":"Allow","Principal":{"AWS":"K"},"Action":"s3:*","Resource":"arn:aws:s3:::photos/*"}"#
        )));
        assert!(!is_public(&one(
            r#"{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::photos/*"}"#
        )));
        assert!(is_public(&one(
            r#"{"Effect":"Allow","NotPrincipal":{"AWS":"K"},"Action":"s3:*","Resource":"arn:aws:s3:::photos/*"}"#
        )));
    }
}
