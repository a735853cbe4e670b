//! Access control lists as S3 has them: an owner and grants of permissions to canonical users
//! and to the predefined groups; canned ACLs, `x-amz-grant-*` headers and
//! `AccessControlPolicy` documents all become one `Acl`. Pure: the S3 layer turns an `AclError`
//! into S3's error and asks `Acl::allows` for a verdict.
//!
//! Canonical user ids are Hansa's access key ids (the owner shown everywhere is the access key
//! id that created the bucket or object); the display name is the same string.

use serde::{Deserialize, Serialize};

/// The canonical id recorded for objects an unsigned request wrote into an ACL-enabled bucket.
pub const ANONYMOUS_ID: &str = "anonymous";

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
const LOG_DELIVERY: &str = "http://acs.amazonaws.com/groups/s3/LogDelivery";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Permission {
    #[serde(rename = "READ")]
    Read,
    #[serde(rename = "WRITE")]
    Write,
    #[serde(rename = "READ_ACP")]
    ReadAcp,
    #[serde(rename = "WRITE_ACP")]
    WriteAcp,
    #[serde(rename = "FULL_CONTROL")]
    FullControl,
}

impl Permission {
    pub fn name(self) -> &'static str {
        match self {
            Permission::Read => "READ",
            Permission::Write => "WRITE",
            Permission::ReadAcp => "READ_ACP",
            Permission::WriteAcp => "WRITE_ACP",
            Permission::FullControl => "FULL_CONTROL",
        }
    }

    pub fn parse(s: &str) -> Option<Permission> {
        [
            Permission::Read,
            Permission::Write,
            Permission::ReadAcp,
            Permission::WriteAcp,
            Permission::FullControl,
        ]
        .into_iter()
        .find(|p| p.name() == s)
    }

    /// FULL_CONTROL is every other permission.
    fn covers(self, wanted: Permission) -> bool {
        self == wanted || self == Permission::FullControl
    }
}

/// The predefined groups S3 lets ACLs name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Group {
    /// Everyone, signed or not.
    AllUsers,
    /// Any request signed with a valid credential.
    AuthenticatedUsers,
    /// S3's server access logging; Hansa has no log delivery, so a grant to it is kept and
    /// shown but lets no request in.
    LogDelivery,
}

impl Group {
    pub fn uri(self) -> &'static str {
        match self {
            Group::AllUsers => ALL_USERS,
            Group::AuthenticatedUsers => AUTHENTICATED_USERS,
            Group::LogDelivery => LOG_DELIVERY,
        }
    }

    pub fn from_uri(uri: &str) -> Option<Group> {
        [
            Group::AllUsers,
            Group::AuthenticatedUsers,
            Group::LogDelivery,
        ]
        .into_iter()
        .find(|g| g.uri() == uri)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Grantee {
    CanonicalUser(String),
    Group(Group),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub grantee: Grantee,
    pub permission: Permission,
}

/// An owner and the grants; the stored form (as JSON) of a bucket's or an object's ACL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    pub owner: String,
    pub grants: Vec<Grant>,
}

/// Who asks, as ACLs tell principals apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requester<'a> {
    Anonymous,
    /// A valid credential, by its access key id (its canonical id).
    Key(&'a str),
}

/// Why a request's ACL cannot be taken; the S3 layer maps each to S3's error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AclError {
    /// The document is not XML or not an `AccessControlPolicy` S3 would accept.
    Malformed,
    /// `x-amz-acl` names no canned ACL.
    UnknownCanned(String),
    /// A canned ACL and grant headers together.
    CannedAndGrants,
    /// A grant header that does not parse, or names an unknown group.
    BadGrantHeader(String),
    /// An `emailAddress` / `AmazonCustomerByEmail` grantee: Hansa has no e-mail directory.
    EmailGrantee(String),
    /// The document's owner is not the resource's owner.
    OwnerMismatch,
}

/// The canned ACLs (`x-amz-acl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CannedAcl {
    Private,
    PublicRead,
    PublicReadWrite,
    AuthenticatedRead,
    BucketOwnerRead,
    BucketOwnerFullControl,
    LogDeliveryWrite,
}

impl CannedAcl {
    pub fn parse(s: &str) -> Result<CannedAcl, AclError> {
        Ok(match s {
            "private" => CannedAcl::Private,
            "public-read" => CannedAcl::PublicRead,
            "public-read-write" => CannedAcl::PublicReadWrite,
            "authenticated-read" => CannedAcl::AuthenticatedRead,
            "bucket-owner-read" => CannedAcl::BucketOwnerRead,
            "bucket-owner-full-control" => CannedAcl::BucketOwnerFullControl,
            "log-delivery-write" => CannedAcl::LogDeliveryWrite,
            other => return Err(AclError::UnknownCanned(other.to_string())),
        })
    }

    /// The grants S3 gives for this canned ACL. `owner` owns the resource; `bucket_owner` is
    /// the owner of the bucket an object lives in (`None` for a bucket's own ACL).
    /// `bucket-owner-*` mean nothing on a bucket and `log-delivery-write` nothing on an
    /// object: S3 then gives the owner FULL_CONTROL only.
    pub fn expand(self, owner: &str, bucket_owner: Option<&str>) -> Acl {
        let mut acl = Acl::private(owner);
        let mut add = |grantee: Grantee, permission| {
            let grant = Grant {
                grantee,
                permission,
            };
            if !acl.grants.contains(&grant) {
                acl.grants.push(grant);
            }
        };
        let user = |id: &str| Grantee::CanonicalUser(id.to_string());
        match (self, bucket_owner) {
            (CannedAcl::Private, _) => {}
            (CannedAcl::PublicRead, _) => add(Grantee::Group(Group::AllUsers), Permission::Read),
            (CannedAcl::PublicReadWrite, _) => {
                add(Grantee::Group(Group::AllUsers), Permission::Read);
                add(Grantee::Group(Group::AllUsers), Permission::Write);
            }
            (CannedAcl::AuthenticatedRead, _) => {
                add(Grantee::Group(Group::AuthenticatedUsers), Permission::Read)
            }
            (CannedAcl::BucketOwnerRead, Some(b)) if b != owner => add(user(b), Permission::Read),
            (CannedAcl::BucketOwnerFullControl, Some(b)) if b != owner => {
                add(user(b), Permission::FullControl)
            }
            (CannedAcl::LogDeliveryWrite, None) => {
                add(Grantee::Group(Group::LogDelivery), Permission::Write);
                add(Grantee::Group(Group::LogDelivery), Permission::ReadAcp);
            }
            _ => {}
        }
        acl
    }
}

/// The `x-amz-grant-*` headers and the permission each grants.
pub const GRANT_HEADERS: [(&str, Permission); 5] = [
    ("x-amz-grant-read", Permission::Read),
    ("x-amz-grant-write", Permission::Write),
    ("x-amz-grant-read-acp", Permission::ReadAcp),
    ("x-amz-grant-write-acp", Permission::WriteAcp),
    ("x-amz-grant-full-control", Permission::FullControl),
];

/// One `x-amz-grant-*` header's value: `id="…", uri="…"`, comma-separated.
pub fn parse_grant_header(permission: Permission, value: &str) -> Result<Vec<Grant>, AclError> {
    let bad = || AclError::BadGrantHeader(value.to_string());
    let mut grants = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (kind, raw) = item.split_once('=').ok_or_else(bad)?;
        let raw = raw.trim();
        let text = raw
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .unwrap_or(raw);
        let grantee = match kind.trim().to_ascii_lowercase().as_str() {
            "id" if !text.is_empty() => Grantee::CanonicalUser(text.to_string()),
            "uri" => Grantee::Group(Group::from_uri(text).ok_or_else(bad)?),
            "emailaddress" => return Err(AclError::EmailGrantee(text.to_string())),
            _ => return Err(bad()),
        };
        grants.push(Grant {
            grantee,
            permission,
        });
    }
    if grants.is_empty() {
        return Err(bad());
    }
    Ok(grants)
}

impl Acl {
    /// The owner with FULL_CONTROL and nothing else: S3's default, and what a record without
    /// an ACL means.
    pub fn private(owner: &str) -> Acl {
        Acl {
            owner: owner.to_string(),
            grants: vec![Grant {
                grantee: Grantee::CanonicalUser(owner.to_string()),
                permission: Permission::FullControl,
            }],
        }
    }

    pub fn is_private(&self) -> bool {
        *self == Acl::private(&self.owner)
    }

    /// Whether it grants anything to everyone or to every authenticated user: what S3's
    /// Block Public Access calls a public ACL.
    pub fn is_public(&self) -> bool {
        self.grants.iter().any(|g| {
            matches!(
                g.grantee,
                Grantee::Group(Group::AllUsers) | Grantee::Group(Group::AuthenticatedUsers)
            )
        })
    }

    /// The ACL without its public grants (`IgnorePublicAcls`).
    pub fn without_public_grants(mut self) -> Acl {
        self.grants.retain(|g| {
            !matches!(
                g.grantee,
                Grantee::Group(Group::AllUsers) | Grantee::Group(Group::AuthenticatedUsers)
            )
        });
        self
    }

    /// Whether a grant gives `who` the permission. The owner's own rights come from its
    /// grants like anyone else's (S3 lets an owner always read and write the ACL itself; the
    /// S3 layer's credential scopes cover Hansa's owners).
    pub fn allows(&self, who: Requester<'_>, wanted: Permission) -> bool {
        self.grants.iter().any(|g| {
            g.permission.covers(wanted)
                && match (&g.grantee, who) {
                    (Grantee::Group(Group::AllUsers), _) => true,
                    (Grantee::Group(Group::AuthenticatedUsers), Requester::Key(_)) => true,
                    (Grantee::CanonicalUser(id), Requester::Key(key)) => id == key,
                    _ => false,
                }
        })
    }

    /// The ACL from a request's headers: a canned ACL, grant headers, or neither (`None`).
    /// `header` looks one up by its lower-case name.
    pub fn from_headers<'h>(
        header: impl Fn(&str) -> Option<&'h str>,
        owner: &str,
        bucket_owner: Option<&str>,
    ) -> Result<Option<Acl>, AclError> {
        let canned = header("x-amz-acl").map(CannedAcl::parse).transpose()?;
        let mut grants = Vec::new();
        for (name, permission) in GRANT_HEADERS {
            if let Some(value) = header(name) {
                grants.extend(parse_grant_header(permission, value)?);
            }
        }
        match (canned, grants.is_empty()) {
            (Some(_), false) => Err(AclError::CannedAndGrants),
            (Some(c), true) => Ok(Some(c.expand(owner, bucket_owner))),
            // Grant headers replace the whole ACL: the owner keeps only what they name.
            (None, false) => Ok(Some(Acl {
                owner: owner.to_string(),
                grants,
            })),
            (None, true) => Ok(None),
        }
    }

    /// An `AccessControlPolicy` document. Its owner must be `owner`.
    pub fn from_xml(body: &[u8], owner: &str) -> Result<Acl, AclError> {
        let text = std::str::from_utf8(body).map_err(|_| AclError::Malformed)?;
        let doc = parse_policy(text).ok_or(AclError::Malformed)?;
        if let Some(email) = doc.email {
            return Err(AclError::EmailGrantee(email));
        }
        match doc.owner {
            Some(id) if id == owner => {}
            Some(_) => return Err(AclError::OwnerMismatch),
            None => return Err(AclError::Malformed),
        }
        Ok(Acl {
            owner: owner.to_string(),
            grants: doc.grants,
        })
    }
}

struct PolicyDoc {
    owner: Option<String>,
    grants: Vec<Grant>,
    email: Option<String>,
}

/// Reads the document with quick-xml's event reader: `xsi:type` is a namespaced attribute,
/// which serde's derive does not see reliably. `None` for anything S3 calls MalformedACLError.
fn parse_policy(text: &str) -> Option<PolicyDoc> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let mut doc = PolicyDoc {
        owner: None,
        grants: Vec::new(),
        email: None,
    };
    // The grant being read: its grantee's type and fields, and its permission.
    let mut kind: Option<String> = None;
    let mut id: Option<String> = None;
    let mut uri: Option<String> = None;
    let mut email: Option<String> = None;
    let mut permission: Option<Permission> = None;
    let mut saw_root = false;
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if path.is_empty() {
                    if name != "AccessControlPolicy" || saw_root {
                        return None;
                    }
                    saw_root = true;
                }
                if name == "Grantee" {
                    for attr in e.attributes() {
                        let attr = attr.ok()?;
                        if attr.key.local_name().as_ref() == b"type" {
                            kind = Some(attr.unescape_value().ok()?.into_owned());
                        }
                    }
                }
                if name == "Grant" {
                    (kind, id, uri, email, permission) = (None, None, None, None, None);
                }
                path.push(name);
            }
            Event::Empty(e) => {
                if path.is_empty() {
                    return None;
                }
                let _ = e;
            }
            Event::Text(t) => {
                let value = t.unescape().ok()?.into_owned();
                let names: Vec<&str> = path.iter().map(String::as_str).collect();
                match names.as_slice() {
                    ["AccessControlPolicy", "Owner", "ID"] => doc.owner = Some(value),
                    [.., "Grant", "Grantee", "ID"] => id = Some(value),
                    [.., "Grant", "Grantee", "URI"] => uri = Some(value),
                    [.., "Grant", "Grantee", "EmailAddress"] => email = Some(value),
                    [.., "Grant", "Permission"] => permission = Some(Permission::parse(&value)?),
                    _ => {}
                }
            }
            Event::End(_) => {
                let name = path.pop()?;
                if name == "Grant" {
                    let permission = permission.take()?;
                    let grantee = match kind.take().as_deref() {
                        Some("CanonicalUser") => Grantee::CanonicalUser(id.take()?),
                        Some("Group") => Grantee::Group(Group::from_uri(uri.take()?.trim())?),
                        Some("AmazonCustomerByEmail") => {
                            doc.email.get_or_insert(email.take()?);
                            continue;
                        }
                        _ => return None,
                    };
                    doc.grants.push(Grant {
                        grantee,
                        permission,
                    });
                }
            }
            Event::DocType(_) => return None,
            Event::Eof => break,
            _ => {}
        }
    }
    (saw_root && path.is_empty()).then_some(doc)
}

/// `x-amz-object-ownership` / `ObjectOwnership`: who owns objects written into a bucket, and
/// whether its ACLs count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectOwnership {
    /// ACLs disabled: the bucket owner owns every object; only owner-full-control ACLs are
    /// accepted on writes.
    BucketOwnerEnforced,
    /// The bucket owner owns objects written with `bucket-owner-full-control`.
    BucketOwnerPreferred,
    /// The writer owns what it writes; ACLs apply.
    ObjectWriter,
}

impl ObjectOwnership {
    pub fn name(self) -> &'static str {
        match self {
            ObjectOwnership::BucketOwnerEnforced => "BucketOwnerEnforced",
            ObjectOwnership::BucketOwnerPreferred => "BucketOwnerPreferred",
            ObjectOwnership::ObjectWriter => "ObjectWriter",
        }
    }

    pub fn parse(s: &str) -> Option<ObjectOwnership> {
        [
            ObjectOwnership::BucketOwnerEnforced,
            ObjectOwnership::BucketOwnerPreferred,
            ObjectOwnership::ObjectWriter,
        ]
        .into_iter()
        .find(|o| o.name() == s)
    }

    pub fn acls_enabled(self) -> bool {
        self != ObjectOwnership::BucketOwnerEnforced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_acls_expand_as_s3_does() {
        let acl = CannedAcl::PublicReadWrite.expand("o", None);
        assert_eq!(acl.grants.len(), 3);
        assert!(acl.allows(Requester::Anonymous, Permission::Write));
        assert!(!acl.allows(Requester::Anonymous, Permission::ReadAcp));
        let acl = CannedAcl::AuthenticatedRead.expand("o", None);
        assert!(!acl.allows(Requester::Anonymous, Permission::Read));
        assert!(acl.allows(Requester::Key("k"), Permission::Read));
        let acl = CannedAcl::BucketOwnerFullControl.expand("w", Some("b"));
        assert!(acl.allows(Requester::Key("b"), Permission::WriteAcp));
        assert!(CannedAcl::BucketOwnerFullControl
            .expand("b", Some("b"))
            .is_private());
        assert!(CannedAcl::LogDeliveryWrite
            .expand("o", Some("o"))
            .is_private());
        assert_eq!(
            CannedAcl::LogDeliveryWrite.expand("o", None).grants.len(),
            3
        );
        assert_eq!(
            CannedAcl::parse("public"),
            Err(AclError::UnknownCanned("public".into()))
        );
    }

    #[test]
    fn grant_headers_parse_and_refuse_email() {
        let g = parse_grant_header(
            Permission::Read,
            r#"id="abc", uri="http://acs.amazonaws.com/groups/global/AllUsers""#,
        )
        .unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[1].grantee, Grantee::Group(Group::AllUsers));
        assert!(matches!(
            parse_grant_header(Permission::Read, r#"emailAddress="a@b.c""#),
            Err(AclError::EmailGrantee(_))
        ));
        assert!(parse_grant_header(Permission::Read, "nonsense").is_err());
        assert!(parse_grant_header(Permission::Read, r#"uri="http://x/y""#).is_err());
    }

    #[test]
    fn documents_parse_and_check_their_owner() {
        let doc = r#"<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
          <Owner><ID>o</ID></Owner><AccessControlList>
          <Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>o</ID></Grantee><Permission>FULL_CONTROL</Permission></Grant>
          <Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee><Permission>READ</Permission></Grant>
          </AccessControlList></AccessControlPolicy>"#;
        let acl = Acl::from_xml(doc.as_bytes(), "o").unwrap();
        assert_eq!(acl.grants.len(), 2);
        assert!(acl.allows(Requester::Anonymous, Permission::Read));
        assert_eq!(
            Acl::from_xml(doc.as_bytes(), "other"),
            Err(AclError::OwnerMismatch)
        );
        assert_eq!(Acl::from_xml(b"<nope/>", "o"), Err(AclError::Malformed));
        assert_eq!(
            Acl::from_xml(&doc.as_bytes()[..60], "o"),
            Err(AclError::Malformed)
        );
        let bad_perm = doc.replace("<Permission>READ<", "<Permission>LOOK<");
        assert_eq!(
            Acl::from_xml(bad_perm.as_bytes(), "o"),
            Err(AclError::Malformed)
        );
    }

    #[test]
    fn canned_and_grant_headers_exclude_each_other() {
        let h = |name: &str| match name {
            "x-amz-acl" => Some("public-read"),
            "x-amz-grant-read" => Some(r#"id="x""#),
            _ => None,
        };
        assert_eq!(
            Acl::from_headers(h, "o", None),
            Err(AclError::CannedAndGrants)
        );
        assert_eq!(Acl::from_headers(|_| None, "o", None), Ok(None));
    }
}
