//! The files `serve --embedded-cluster` leaves in the current directory for
//! the developer: the development webhook secret (read by `send-webhook`),
//! the development API token (read by the client commands `submit`, `jobs`,
//! `events` and `leader`) and the simulator's kubeconfig (for kubectl; `sim
//! --kubeconfig-out` writes one the same way).
//!
//! Several servers may run from one directory (another port, or a second
//! start by mistake), so these files are handled so that no process breaks
//! another:
//! - both are written only once the process listens (a start that fails,
//!   e.g. on a port in use, changes nothing);
//! - an existing development secret (or token) is reused, never replaced,
//!   so every server started from the directory accepts what `send-webhook`
//!   signs and what the client commands present;
//! - the kubeconfig is named by the service's port
//!   (`orchestrator-sim-8080.kubeconfig`) and removed when the server stops,
//!   if it still points at this server's simulator.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// The development secret's file, where `orchestrator send-webhook` finds it.
pub const DEV_SECRET_FILE: &str = "orchestrator-dev-webhook-secret";

/// The development API token's file (a `cli` token), where the client
/// commands find it when neither `--token` nor `ORCHESTRATOR_TOKEN` is given.
pub const DEV_TOKEN_FILE: &str = "orchestrator-dev-api-token";

/// The default kubeconfig path of a server whose HTTP listener has `port`.
pub fn kubeconfig_path(port: u16) -> PathBuf {
    PathBuf::from(format!("orchestrator-sim-{port}.kubeconfig"))
}

/// The development secret as the file holds it, if the file exists and holds one.
pub fn read_dev_secret(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A fresh random development secret (or token: 32 hex digits).
pub fn new_dev_secret() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The development token in the current directory, if `serve
/// --embedded-cluster` wrote one there.
pub fn dev_token() -> Option<String> {
    read_dev_secret(Path::new(DEV_TOKEN_FILE)).ok().flatten()
}

/// Makes `path` hold a development secret and returns it: the file's secret
/// if it has one (another server may be using it), otherwise `proposed`,
/// written readable by the owner only. Safe against a concurrent start: the
/// file is created exclusively, and whoever loses the race reads the winner's.
pub fn persist_dev_secret(path: &Path, proposed: &str) -> std::io::Result<String> {
    for _ in 0..3 {
        if let Some(existing) = read_dev_secret(path)? {
            return Ok(existing);
        }
        let mut opts = OpenOptions::new();
        // An empty file (nothing can rely on it) is replaced; otherwise
        // the file is created only if it does not exist yet.
        if path.exists() {
            opts.write(true).truncate(true);
        } else {
            opts.write(true).create_new(true);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        match opts.open(path) {
            Ok(mut f) => {
                f.write_all(proposed.as_bytes())?;
                return Ok(proposed.to_string());
            }
            Err(e) if matches!(e.kind(), ErrorKind::AlreadyExists | ErrorKind::NotFound) => {
                continue
            }
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(
        "the file keeps changing while being created",
    ))
}

/// A kubeconfig this process wrote; removed on drop if the file still holds
/// what was written (so it never outlives the simulator it points at, and a
/// file another server has rewritten since is left alone).
#[derive(Debug)]
pub struct KubeconfigFile {
    path: PathBuf,
    content: String,
}

impl KubeconfigFile {
    /// Writes `content` to `path`, readable by the owner only. The file
    /// appears whole (written beside it, then renamed), so a reader that
    /// sees it never reads half a kubeconfig.
    pub fn write(path: PathBuf, content: String) -> std::io::Result<KubeconfigFile> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let partial = path.with_file_name(format!(".{name}.{}.partial", std::process::id()));
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let written = opts
            .open(&partial)
            .and_then(|mut f| f.write_all(content.as_bytes()))
            .and_then(|()| std::fs::rename(&partial, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
        Ok(KubeconfigFile { path, content })
    }

    /// Where it was written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for KubeconfigFile {
    fn drop(&mut self) {
        if std::fs::read_to_string(&self.path).is_ok_and(|now| now == self.content) {
            match std::fs::remove_file(&self.path) {
                Ok(()) => {
                    tracing::info!(path = %self.path.display(), "simulator kubeconfig removed (its simulator stops)")
                }
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "could not remove the simulator kubeconfig")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_secret_is_reused_and_an_absent_or_empty_one_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DEV_SECRET_FILE);
        assert_eq!(read_dev_secret(&path).unwrap(), None);
        assert_eq!(persist_dev_secret(&path, "first").unwrap(), "first");
        assert_eq!(persist_dev_secret(&path, "second").unwrap(), "first");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first");
        std::fs::write(&path, "  \n").unwrap();
        assert_eq!(persist_dev_secret(&path, "third").unwrap(), "third");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::remove_file(&path).unwrap();
            persist_dev_secret(&path, "x").unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_kubeconfig_is_removed_on_drop_only_while_it_is_still_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.kubeconfig");
        let ours = KubeconfigFile::write(path.clone(), "ours".into()).unwrap();
        assert_eq!(ours.path(), path);
        drop(ours);
        assert!(!path.exists());
        let ours = KubeconfigFile::write(path.clone(), "ours".into()).unwrap();
        std::fs::write(&path, "another server's").unwrap();
        drop(ours);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "another server's");
    }
}
