//! The SSH login key and the pinned host key, re-read from their files for
//! every new SSH connection, so rotating them is updating the Kubernetes
//! Secret: kubelet swaps the mounted files in place and the next connection
//! uses the new ones, with no restart (deploy/README.md, "Rotating the
//! keys"). Sessions already logged in keep working until they close.
//!
//! A file that cannot be read or parsed keeps the last good value (a
//! half-written or wrong Secret never takes the agent down), logged on the
//! `security` target by path and fingerprint, never by content.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use russh::keys::PrivateKey;

use crate::ssh::hostkey::{HostKeyPolicy, fingerprint, load_public_key};

pub struct Credentials {
    key_file: PathBuf,
    /// The pinned host public key's file (`--rds-host-key`); other pins
    /// (fingerprint flag, known_hosts read at each check) need no reload.
    host_key_file: Option<PathBuf>,
    current: Mutex<Current>,
}

struct Current {
    key_text: Option<String>,
    key: Arc<PrivateKey>,
    host_text: Option<String>,
    policy: HostKeyPolicy,
}

impl Credentials {
    /// Starts from the values the agent validated at start-up.
    pub fn new(
        key_file: PathBuf,
        key: Arc<PrivateKey>,
        host_key_file: Option<PathBuf>,
        policy: HostKeyPolicy,
    ) -> Credentials {
        let key_text = std::fs::read_to_string(&key_file).ok();
        let host_text = host_key_file
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok());
        Credentials {
            key_file,
            host_key_file,
            current: Mutex::new(Current {
                key_text,
                key,
                host_text,
                policy,
            }),
        }
    }

    /// The key and host-key pin for a new connection, from the files as
    /// they are now.
    pub fn current(&self) -> (Arc<PrivateKey>, HostKeyPolicy) {
        let mut cur = match self.current.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        self.reload_key(&mut cur);
        self.reload_host_key(&mut cur);
        (cur.key.clone(), cur.policy.clone())
    }

    fn reload_key(&self, cur: &mut Current) {
        let Ok(text) = rds_bus::config::read_secret_file(&self.key_file) else {
            tracing::warn!(target: "security", file = %self.key_file.display(),
                "SSH key file unreadable or empty: keeping the key in use");
            return;
        };
        if cur.key_text.as_deref() == Some(text.as_str()) {
            return;
        }
        match russh::keys::decode_secret_key(&text, None) {
            Ok(k) => {
                tracing::info!(target: "security", file = %self.key_file.display(),
                    fingerprint = %fingerprint(k.public_key()),
                    "SSH key changed on disk: new connections use it");
                cur.key = Arc::new(k);
                cur.key_text = Some(text);
            }
            Err(_) => tracing::warn!(target: "security", file = %self.key_file.display(),
                "SSH key file holds no usable private key: keeping the key in use"),
        }
    }

    fn reload_host_key(&self, cur: &mut Current) {
        let Some(path) = &self.host_key_file else {
            return;
        };
        let Ok(text) = std::fs::read_to_string(path) else {
            tracing::warn!(target: "security", file = %path.display(),
                "pinned host key file unreadable: keeping the pin in use");
            return;
        };
        if cur.host_text.as_deref() == Some(text.as_str()) {
            return;
        }
        match load_public_key(path) {
            Ok(k) => {
                tracing::info!(target: "security", file = %path.display(),
                    fingerprint = %fingerprint(&k),
                    "pinned host key changed on disk: new connections require it");
                cur.policy = HostKeyPolicy::PublicKey(k);
                cur.host_text = Some(text);
            }
            Err(e) => tracing::warn!(target: "security", file = %path.display(), error = %e,
                "pinned host key file holds no public key: keeping the pin in use"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::ssh_key::LineEnding;
    use russh::keys::ssh_key::private::Ed25519Keypair;

    fn key(seed: u8) -> PrivateKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
    }

    fn pem(k: &PrivateKey) -> String {
        k.to_openssh(LineEnding::LF).unwrap().to_string()
    }

    fn pub_line(k: &PrivateKey) -> String {
        k.public_key().to_openssh().unwrap()
    }

    fn pinned(p: &HostKeyPolicy) -> String {
        match p {
            HostKeyPolicy::PublicKey(k) => fingerprint(k),
            other => panic!("{}", other.describe()),
        }
    }

    /// Kubernetes updates a Secret volume by swapping a `..data` symlink;
    /// the file paths stay the same.
    #[test]
    fn a_rotated_secret_is_used_by_the_next_connection_and_garbage_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (key_file, host_file) = (dir.path().join("key"), dir.path().join("host"));
        let (k1, h1, k2, h2) = (key(1), key(2), key(3), key(4));
        std::fs::write(&key_file, pem(&k1)).unwrap();
        std::fs::write(&host_file, pub_line(&h1)).unwrap();
        let c = Credentials::new(
            key_file.clone(),
            Arc::new(k1.clone()),
            Some(host_file.clone()),
            HostKeyPolicy::PublicKey(h1.public_key().clone()),
        );
        let (k, p) = c.current();
        assert_eq!(fingerprint(k.public_key()), fingerprint(k1.public_key()));
        assert_eq!(pinned(&p), fingerprint(h1.public_key()));

        std::fs::write(&key_file, pem(&k2)).unwrap();
        std::fs::write(&host_file, pub_line(&h2)).unwrap();
        let (k, p) = c.current();
        assert_eq!(fingerprint(k.public_key()), fingerprint(k2.public_key()));
        assert_eq!(pinned(&p), fingerprint(h2.public_key()));

        // A broken update keeps the last good values.
        std::fs::write(&key_file, "not a key").unwrap();
        std::fs::write(&host_file, "# nothing").unwrap();
        let (k, p) = c.current();
        assert_eq!(fingerprint(k.public_key()), fingerprint(k2.public_key()));
        assert_eq!(pinned(&p), fingerprint(h2.public_key()));
    }
}
