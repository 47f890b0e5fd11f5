//! hermes-infra's own admin key: an ed25519 key pair in OpenSSH format, made in-process.

use std::fs::{self, DirBuilder, Permissions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, LineEnding, PrivateKey};

use crate::host_keys::HostKey;

/// A failure to make or read the admin key; names the file, never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("admin key `{}`: {message}", path.display())]
pub struct KeyError {
    /// The private key file.
    pub path: PathBuf,
    /// What went wrong and what to do.
    pub message: String,
}

/// An admin key on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminKey {
    /// The private key file (mode 0600).
    pub private_key: PathBuf,
    /// The OpenSSH public-key line with its comment (`ssh-ed25519 AAAA... hermes-infra`), also
    /// written next to the private key with a `.pub` suffix.
    pub public_key: String,
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
}

/// Reads the admin key at `path`, or makes one (ed25519, with `comment`) when there is none.
///
/// An existing key must be an unencrypted OpenSSH private key readable by its owner only.
pub fn ensure_admin_key(path: &Path, comment: &str) -> Result<AdminKey, KeyError> {
    match fs::symlink_metadata(path) {
        Ok(_) => read_admin_key(path),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            match generate_admin_key(path, comment) {
                // Someone else made it in the meantime: use theirs.
                Err(_) if path.exists() => read_admin_key(path),
                other => other,
            }
        }
        Err(err) => Err(key_error(path, format!("cannot be read: {err}"))),
    }
}

/// Makes a new ed25519 key pair at `path` (mode 0600) and `path.pub` (mode 0644). Refuses to
/// replace an existing private key. Missing folders are created with mode 0700.
pub fn generate_admin_key(path: &Path, comment: &str) -> Result<AdminKey, KeyError> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
        .map_err(|err| key_error(path, format!("cannot create its folder: {err}")))?;

    let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)
        .map_err(|err| key_error(path, format!("cannot generate an ed25519 key: {err}")))?;
    key.set_comment(comment);
    let private = key
        .to_openssh(LineEnding::LF)
        .map_err(|err| key_error(path, format!("cannot encode the key: {err}")))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|err| key_error(path, format!("cannot encode the public key: {err}")))?;

    let write = |content: &[u8], mode: u32| -> std::io::Result<tempfile::NamedTempFile> {
        let mut file = tempfile::Builder::new()
            .prefix(".hermes-key-")
            .permissions(Permissions::from_mode(mode))
            .tempfile_in(parent)?;
        file.write_all(content)?;
        file.as_file().sync_all()?;
        Ok(file)
    };
    let private_file = write(private.as_bytes(), 0o600)
        .map_err(|err| key_error(path, format!("cannot write it: {err}")))?;
    private_file
        .persist_noclobber(path)
        .map_err(|err| key_error(path, format!("cannot create it: {}", err.error)))?;

    let public_path = public_path(path);
    write(format!("{public}\n").as_bytes(), 0o644)
        .and_then(|file| file.persist(&public_path).map_err(|err| err.error))
        .map_err(|err| {
            key_error(
                path,
                format!(
                    "cannot write the public key `{}`: {err}",
                    public_path.display()
                ),
            )
        })?;

    tracing::info!(path = %path.display(), "made a new ed25519 admin key");
    admin_key(path, public)
}

fn read_admin_key(path: &Path) -> Result<AdminKey, KeyError> {
    let meta =
        fs::metadata(path).map_err(|err| key_error(path, format!("cannot be read: {err}")))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(key_error(
            path,
            format!(
                "is readable by other users (mode {mode:03o}); run `chmod 600 {}`",
                path.display()
            ),
        ));
    }
    let key = PrivateKey::read_openssh_file(path).map_err(|err| {
        key_error(
            path,
            format!("is not an OpenSSH private key hermes-infra can use: {err}"),
        )
    })?;
    if key.is_encrypted() {
        return Err(key_error(
            path,
            "is protected by a passphrase; hermes-infra needs a key without one".to_owned(),
        ));
    }
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|err| key_error(path, format!("cannot encode the public key: {err}")))?;
    admin_key(path, public)
}

fn admin_key(path: &Path, public_key: String) -> Result<AdminKey, KeyError> {
    let fingerprint = HostKey::parse(&public_key)
        .map_err(|err| key_error(path, err))?
        .fingerprint();
    Ok(AdminKey {
        private_key: path.to_path_buf(),
        public_key,
        fingerprint,
    })
}

fn public_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

fn key_error(path: &Path, message: String) -> KeyError {
    KeyError {
        path: path.to_path_buf(),
        message,
    }
}
