//! Who may do what: the facts of a request in the vocabulary ACLs and bucket policies speak
//! (who sent it, which IAM action on which resource, from where), and the verdicts documents
//! give on them. Pure decisions over documents the store keeps: the S3 layer gathers the
//! facts, asks, and turns a refusal into `AccessDenied` in one place.

pub mod cors;
pub mod policy;
pub mod post_policy;

use std::net::{IpAddr, SocketAddr};

pub mod acl;

/// How a request reached the gateway; the server puts it into every request's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connection {
    pub peer: SocketAddr,
    /// Over TLS (`aws:SecureTransport`).
    pub secure: bool,
}

/// Who sent a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// No signature at all.
    Anonymous,
    /// Signed with this access key id.
    Key(String),
}

/// One request as ACLs and policies see it.
#[derive(Clone, Debug)]
pub struct RequestFacts {
    pub principal: Principal,
    /// The IAM action, e.g. `s3:GetObject`, `s3:ListBucket`.
    pub action: &'static str,
    pub bucket: String,
    /// The object the action is on; `None` for bucket actions.
    pub key: Option<String>,
    /// The client's address, when known.
    pub source_ip: Option<IpAddr>,
    pub secure_transport: bool,
    /// Request-specific condition keys and their values (`s3:prefix`, `s3:delimiter`,
    /// `s3:max-keys`, `s3:x-amz-acl`, …), as S3 defines them for the action.
    pub conditions: Vec<(String, String)>,
}

impl RequestFacts {
    /// The resource's ARN: `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key`.
    pub fn resource_arn(&self) -> String {
        match &self.key {
            Some(key) => format!("arn:aws:s3:::{}/{}", self.bucket, key),
            None => format!("arn:aws:s3:::{}", self.bucket),
        }
    }
}

/// A document's verdict on a request. An explicit deny beats every allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A statement denies it: refused whatever else allows it.
    Deny,
    /// A statement allows it (and none denies it).
    Allow,
    /// Nothing in the document speaks of it.
    NoOpinion,
}

impl Decision {
    /// Two documents' verdicts together: deny wins, then allow.
    pub fn and(self, other: Decision) -> Decision {
        match (self, other) {
            (Decision::Deny, _) | (_, Decision::Deny) => Decision::Deny,
            (Decision::Allow, _) | (_, Decision::Allow) => Decision::Allow,
            _ => Decision::NoOpinion,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_beats_allow_beats_silence() {
        use Decision::*;
        assert_eq!(Allow.and(Deny), Deny);
        assert_eq!(NoOpinion.and(Allow), Allow);
        assert_eq!(NoOpinion.and(NoOpinion), NoOpinion);
    }

    #[test]
    fn arns_name_buckets_and_objects() {
        let mut facts = RequestFacts {
            principal: Principal::Anonymous,
            action: "s3:GetObject",
            bucket: "b".into(),
            key: Some("a/b".into()),
            source_ip: None,
            secure_transport: false,
            conditions: Vec::new(),
        };
        assert_eq!(facts.resource_arn(), "arn:aws:s3:::b/a/b");
        facts.key = None;
        assert_eq!(facts.resource_arn(), "arn:aws:s3:::b");
    }
}
