//! Pinning the RDS host key (docs/safety.md §5.1).
//!
//! async-ssh2-tokio's own check (`ServerCheckMethod`) answers a bare bool
//! from a private handler, so it can neither pin a SHA256 fingerprint nor tell
//! us which key the server presented. We therefore verify in our own russh
//! client handler ([`super::connection`]), for all three pin forms, and on a
//! mismatch refuse the connection and write one security log line with the
//! expected and presented fingerprints. Skipping verification needs an
//! explicit flag and logs a loud warning on every connect.

use std::path::{Path, PathBuf};

use russh::keys::{HashAlg, PublicKey};

use crate::error::AgentError;

#[derive(Debug, Clone)]
pub enum HostKeyPolicy {
    /// The exact public key (from a `.pub` / authorized_keys-style line).
    PublicKey(PublicKey),
    /// `SHA256:<base64>` fingerprint (as `ssh-keygen -lf` prints it).
    Fingerprint(String),
    /// A known_hosts file with an entry for the RDS address (hashed or plain).
    KnownHosts(PathBuf),
    /// No verification (explicit flag only).
    InsecureSkip,
}

/// `SHA256:<base64 without padding>` of a key.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Accepts `SHA256:abc`, `sha256:abc=` or bare `abc`; returns `SHA256:abc`.
pub fn normalize_fingerprint(s: &str) -> Result<String, AgentError> {
    let s = s.trim();
    let body = s
        .strip_prefix("SHA256:")
        .or_else(|| s.strip_prefix("sha256:"))
        .unwrap_or(s)
        .trim_end_matches('=');
    // 32 bytes of SHA-256 = 43 base64 characters without padding.
    let ok = body.len() == 43
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/');
    if !ok {
        return Err(AgentError::Config(format!(
            "host key fingerprint {s:?} is not a SHA256 fingerprint (expected SHA256:<43 base64 chars>)"
        )));
    }
    Ok(format!("SHA256:{body}"))
}

/// Reads a public key file: `ssh-ed25519 AAAA… comment`, a known_hosts-like
/// `host ssh-ed25519 AAAA…` line, or the bare base64 blob.
pub fn load_public_key(path: &Path) -> Result<PublicKey, AgentError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| AgentError::Config(format!("cannot read {}: {e}", path.display())))?;
    parse_public_key_text(&text).ok_or_else(|| {
        AgentError::Config(format!(
            "{} holds no SSH public key (expected e.g. \"ssh-ed25519 AAAA…\")",
            path.display()
        ))
    })
}

fn parse_public_key_text(text: &str) -> Option<PublicKey> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .find_map(|line| {
            line.split_whitespace()
                .find_map(|tok| russh::keys::parse_public_key_base64(tok).ok())
        })
}

impl HostKeyPolicy {
    /// A short description for `--check-config` (public data only).
    pub fn describe(&self) -> String {
        match self {
            HostKeyPolicy::PublicKey(k) => format!("public key {}", fingerprint(k)),
            HostKeyPolicy::Fingerprint(f) => format!("fingerprint {f}"),
            HostKeyPolicy::KnownHosts(p) => format!("known_hosts {}", p.display()),
            HostKeyPolicy::InsecureSkip => "NOT VERIFIED (insecure flag)".to_owned(),
        }
    }

    /// Checks the key the server presented. `host`/`port` select the
    /// known_hosts entry. A mismatch is logged as a security event.
    pub fn verify(&self, host: &str, port: u16, presented: &PublicKey) -> Result<(), AgentError> {
        let presented_fp = fingerprint(presented);
        let expected: Vec<String> = match self {
            HostKeyPolicy::InsecureSkip => {
                tracing::warn!(
                    target: "security",
                    host,
                    port,
                    presented = %presented_fp,
                    "[SECURITY] type=ssh_host_key_unverified severity=warning \
                     RDS host key NOT verified (--rds-insecure-skip-host-key-verify); \
                     anyone on the path can impersonate the RDS"
                );
                return Ok(());
            }
            HostKeyPolicy::PublicKey(k) => {
                if k.key_data() == presented.key_data() {
                    return Ok(());
                }
                vec![fingerprint(k)]
            }
            HostKeyPolicy::Fingerprint(f) => {
                if *f == presented_fp {
                    return Ok(());
                }
                vec![f.clone()]
            }
            HostKeyPolicy::KnownHosts(path) => {
                let entries = russh::keys::known_hosts::known_host_keys_path(host, port, path)
                    .map_err(|e| {
                        AgentError::Config(format!(
                            "cannot read known_hosts {}: {e}",
                            path.display()
                        ))
                    })?;
                if entries
                    .iter()
                    .any(|(_, k)| k.key_data() == presented.key_data())
                {
                    return Ok(());
                }
                if entries.is_empty() {
                    vec![format!(
                        "<no entry for {host}:{port} in {}>",
                        path.display()
                    )]
                } else {
                    entries.iter().map(|(_, k)| fingerprint(k)).collect()
                }
            }
        };
        let expected = expected.join(",");
        tracing::error!(
            target: "security",
            host,
            port,
            expected = %expected,
            presented = %presented_fp,
            "[SECURITY] type=ssh_host_key_mismatch severity=critical outcome=denied \
             RDS host key does not match the pinned key; refusing to connect"
        );
        Err(AgentError::HostKeyMismatch {
            host: format!("{host}:{port}"),
            expected,
            presented: presented_fp,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use russh::keys::PrivateKey;
    use russh::keys::ssh_key::private::Ed25519Keypair;

    fn key(n: u8) -> PublicKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[n; 32]))
            .public_key()
            .clone()
    }

    #[test]
    fn public_key_and_fingerprint_pins() {
        let (good, bad) = (key(1), key(2));
        let by_key = HostKeyPolicy::PublicKey(good.clone());
        assert!(by_key.verify("rds", 22, &good).is_ok());
        let err = by_key.verify("rds", 22, &bad).unwrap_err();
        match &err {
            AgentError::HostKeyMismatch {
                expected,
                presented,
                ..
            } => {
                assert_eq!(*expected, fingerprint(&good));
                assert_eq!(*presented, fingerprint(&bad));
            }
            other => panic!("{other:?}"),
        }
        let fp = normalize_fingerprint(&fingerprint(&good)).unwrap();
        let by_fp = HostKeyPolicy::Fingerprint(fp);
        assert!(by_fp.verify("rds", 22, &good).is_ok());
        assert!(by_fp.verify("rds", 22, &bad).is_err());
        assert!(HostKeyPolicy::InsecureSkip.verify("rds", 22, &bad).is_ok());
    }

    #[test]
    fn fingerprint_forms() {
        let fp = fingerprint(&key(3));
        let body = fp.strip_prefix("SHA256:").unwrap();
        assert_eq!(normalize_fingerprint(body).unwrap(), fp);
        assert_eq!(normalize_fingerprint(&format!("{body}=")).unwrap(), fp);
        assert!(normalize_fingerprint("SHA256:short").is_err());
        assert!(normalize_fingerprint("MD5:aa:bb").is_err());
    }

    #[test]
    fn known_hosts_file_and_public_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let good = key(4);
        let line = good.to_openssh().unwrap();
        let kh = dir.path().join("known_hosts");
        std::fs::write(&kh, format!("[127.0.0.1]:2222 {line}\n")).unwrap();
        let p = HostKeyPolicy::KnownHosts(kh.clone());
        assert!(p.verify("127.0.0.1", 2222, &good).is_ok());
        assert!(p.verify("127.0.0.1", 2222, &key(5)).is_err());
        // No entry for another port: refused, naming the missing entry.
        let err = p.verify("127.0.0.1", 22, &good).unwrap_err();
        assert!(err.to_string().contains("no entry"), "{err}");

        let pubf = dir.path().join("rds.pub");
        std::fs::write(&pubf, format!("{line} rds-host\n")).unwrap();
        assert_eq!(load_public_key(&pubf).unwrap().key_data(), good.key_data());
        std::fs::write(&pubf, "not a key\n").unwrap();
        assert!(load_public_key(&pubf).is_err());
    }
}
