//! Where the configuration comes from: the file, and the `hansa serve` flags that override
//! it. Read at start and again by every reload (`reload`).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::{self, Config, CredentialConfig};

/// Where the configuration comes from, and what the command line changed in it.
#[derive(Debug, Clone)]
pub struct Source {
    pub file: PathBuf,
    pub overrides: Overrides,
}

/// The `hansa serve` flags that override the file; applied at start and at every reload, so
/// that they never read as changes.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub admin_listen: Option<SocketAddr>,
    pub allow_empty_index: bool,
    pub force: bool,
}

impl Overrides {
    /// Applies the flags to `config`. Without any `[[credential]]`, the data directory's
    /// generated key serves (created on first start); it is returned.
    pub fn apply(&self, config: &mut Config) -> Result<Option<config::GeneratedKey>, String> {
        if let Some(addr) = self.listen {
            config.server.listen = vec![addr];
        }
        if let Some(dir) = &self.data_dir {
            config.server.data_dir = dir.clone();
        }
        config.server.allow_empty_index |= self.allow_empty_index;
        config.server.force_start |= self.force;
        if let Some(addr) = self.admin_listen {
            let admin = config
                .admin
                .as_mut()
                .ok_or("--admin-listen: the configuration has no [admin] section")?;
            admin.listen = addr;
            // Asked for by address: it must bind.
            admin.optional = false;
        }
        if !config.credentials.is_empty() {
            return Ok(None);
        }
        let key = config::generated_key(&config.server.data_dir).map_err(|e| e.to_string())?;
        config.credentials.push(CredentialConfig {
            access_key_id: key.access_key_id.clone(),
            secret_access_key: Some(key.secret_access_key.clone()),
            secret_access_key_env: None,
            buckets: None,
            read_only: false,
        });
        Ok(Some(key))
    }
}
