//! Local secrets: one JSON file, readable only by its owner (0600), written atomically.

use super::{Secrets, SecretsError};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use tokio::sync::Mutex;

pub struct FileSecrets {
    path: PathBuf,
    // Serialises read-modify-write cycles within this process.
    lock: Mutex<()>,
}

impl FileSecrets {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }

    fn read_all(&self) -> Result<BTreeMap<String, String>, SecretsError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|_| SecretsError::Malformed(self.path.display().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(SecretsError::backend("cannot read the secrets file", e)),
        }
    }

    fn write_all(&self, all: &BTreeMap<String, String>) -> Result<(), SecretsError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .map_err(|e| SecretsError::backend("cannot create the data directory", e))?;
        let bytes = serde_json::to_vec_pretty(all)
            .map_err(|_| SecretsError::Malformed(self.path.display().to_string()))?;
        let (tmp_path, mut tmp) = tempfile_in(dir)?;
        let written = tmp
            .write_all(&bytes)
            .and_then(|()| tmp.sync_all())
            .map_err(|e| SecretsError::backend("cannot write the secrets file", e))
            .and_then(|()| {
                std::fs::rename(&tmp_path, &self.path)
                    .map_err(|e| SecretsError::backend("cannot replace the secrets file", e))
            });
        if written.is_err() {
            // Never leave a copy of the secrets behind.
            let _ = std::fs::remove_file(&tmp_path);
        }
        written
    }
}

/// A new file beside the target, created 0600 so no secret is ever world-readable.
fn tempfile_in(dir: &Path) -> Result<(PathBuf, std::fs::File), SecretsError> {
    let path = dir.join(format!(".secrets.{}.tmp", uuid::Uuid::new_v4()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options
        .open(&path)
        .map_err(|e| SecretsError::backend("cannot create the secrets file", e))?;
    Ok((path, file))
}

#[async_trait]
impl Secrets for FileSecrets {
    async fn get(&self, name: &str) -> Result<Option<SecretString>, SecretsError> {
        let _guard = self.lock.lock().await;
        Ok(self.read_all()?.remove(name).map(SecretString::from))
    }

    async fn put(&self, name: &str, value: SecretString) -> Result<(), SecretsError> {
        let _guard = self.lock.lock().await;
        let mut all = self.read_all()?;
        all.insert(name.to_owned(), value.expose_secret().to_owned());
        self.write_all(&all)
    }

    async fn delete(&self, name: &str) -> Result<(), SecretsError> {
        let _guard = self.lock.lock().await;
        let mut all = self.read_all()?;
        if all.remove(name).is_some() {
            self.write_all(&all)?;
        }
        Ok(())
    }
}
