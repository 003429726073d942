//! Host key (stable across restarts, docs/routeros.md §2.1) and authorized keys.

use std::io::Read;
use std::path::Path;

use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey, PublicKey};

use crate::error::SimError;

/// `SHA256:…` fingerprint (OpenSSH style).
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Load `path` (OpenSSH private key, any type russh supports — use an RSA key to present
/// `ssh-rsa` like the real box) or, if missing, generate an Ed25519 key from
/// `/dev/urandom` and store it there with mode 0600.
pub fn load_or_generate_host_key(path: &Path) -> Result<PrivateKey, SimError> {
    match std::fs::read_to_string(path) {
        Ok(text) => PrivateKey::from_openssh(text.trim())
            .map_err(|e| SimError::HostKey(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut seed))
                .map_err(|e| SimError::io("reading", "/dev/urandom", e))?;
            let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
            let text = key
                .to_openssh(LineEnding::LF)
                .map_err(|e| SimError::HostKey(format!("encode: {e}")))?;
            crate::store::write_atomic(path, text.as_bytes(), Some(0o600))?;
            Ok(key)
        }
        Err(e) => Err(SimError::io("reading", path, e)),
    }
}

/// A second, different but deterministic key for the host-key-change fault.
pub(crate) fn alternate_key(key: &PrivateKey) -> PrivateKey {
    let fp = key.public_key().fingerprint(HashAlg::Sha256);
    let mut seed = [0u8; 32];
    for (d, s) in seed.iter_mut().zip(fp.as_bytes()) {
        *d = *s;
    }
    PrivateKey::from(Ed25519Keypair::from_seed(&seed))
}

/// Parse an OpenSSH `authorized_keys` file (comments and blank lines skipped; options before
/// the key type are not supported).
pub fn load_authorized_keys(text: &str) -> Result<Vec<PublicKey>, SimError> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = PublicKey::from_openssh(line)
            .map_err(|e| SimError::Invalid(format!("authorized_keys line {}: {e}", n + 1)))?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(SimError::Invalid("authorized_keys holds no key".into()));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn host_key_is_stable_and_alternate_differs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("host_key");
        let a = load_or_generate_host_key(&p).unwrap();
        let b = load_or_generate_host_key(&p).unwrap();
        assert_eq!(fingerprint(a.public_key()), fingerprint(b.public_key()));
        assert!(fingerprint(a.public_key()).starts_with("SHA256:"));
        let alt = alternate_key(&a);
        assert_ne!(fingerprint(a.public_key()), fingerprint(alt.public_key()));
        assert_eq!(
            fingerprint(alt.public_key()),
            fingerprint(alternate_key(&b).public_key())
        );
    }

    #[test]
    fn authorized_keys_parse() {
        let k = PrivateKey::from(Ed25519Keypair::from_seed(&[7; 32]));
        let line = k.public_key().to_openssh().unwrap();
        let text = format!("# comment\n\n{line} user@host\n");
        let keys = load_authorized_keys(&text).unwrap();
        assert_eq!(keys.len(), 1);
        assert!(load_authorized_keys("# nothing\n").is_err());
        assert!(load_authorized_keys("garbage\n").is_err());
    }
}
