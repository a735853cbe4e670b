//! Access keys the gateway accepts. Secrets never appear in `Debug` output (logs, panics).

use std::collections::HashMap;
use std::fmt;

/// One access key and what it may touch.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// `None` = every bucket.
    pub buckets: Option<Vec<String>>,
    pub read_only: bool,
}

impl Credential {
    pub fn may_access(&self, bucket: &str) -> bool {
        match &self.buckets {
            None => true,
            Some(buckets) => buckets.iter().any(|allowed| allowed == bucket),
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("buckets", &self.buckets)
            .field("read_only", &self.read_only)
            .finish()
    }
}

/// Lookup of credentials by access key id.
#[derive(Clone, Default)]
pub struct CredentialStore {
    by_id: HashMap<String, Credential>,
}

impl CredentialStore {
    /// Later entries with the same access key id replace earlier ones; config validation is
    /// where duplicates should be rejected.
    pub fn new(credentials: Vec<Credential>) -> Self {
        let by_id = credentials
            .into_iter()
            .map(|credential| (credential.access_key_id.clone(), credential))
            .collect();
        CredentialStore { by_id }
    }

    pub fn get(&self, access_key_id: &str) -> Option<&Credential> {
        self.by_id.get(access_key_id)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

impl fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&str> = self.by_id.keys().map(String::as_str).collect();
        ids.sort_unstable();
        f.debug_struct("CredentialStore")
            .field("access_key_ids", &ids)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(buckets: Option<Vec<&str>>) -> Credential {
        Credential {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "very-secret-value".into(),
            buckets: buckets.map(|b| b.into_iter().map(String::from).collect()),
            read_only: false,
        }
    }

    #[test]
    fn debug_never_shows_secrets() {
        let store = CredentialStore::new(vec![credential(None)]);
        let printed = format!("{store:?} {:?}", store.get("AKIDEXAMPLE"));
        assert!(printed.contains("AKIDEXAMPLE"));
        assert!(!printed.contains("very-secret-value"));
    }

    #[test]
    fn bucket_restrictions() {
        assert!(credential(None).may_access("anything"));
        let limited = credential(Some(vec!["photos"]));
        assert!(limited.may_access("photos"));
        assert!(!limited.may_access("photos2"));
        assert!(!credential(Some(vec![])).may_access("photos"));
    }

    #[test]
    fn lookup() {
        let store = CredentialStore::new(vec![credential(None)]);
        assert!(store.get("AKIDEXAMPLE").is_some());
        assert!(store.get("akidexample").is_none());
        assert_eq!(store.len(), 1);
    }
}
