//! SSH keys of a local stack, generated once and kept in DIR so a restart
//! with the same DIR logs in and pins exactly as before:
//! - `DIR/keys/admin` (+ `.pub`): the client key rds-agent logs in with as
//!   user `admin`; the `.pub` is the sim's authorized_keys.
//! - `DIR/sim/host_key`: the sim's host key; its fingerprint is pinned in
//!   rds-agent (`--rds-host-key-fingerprint`), so a changed key is refused.
//!
//! Both are Ed25519 keys from /dev/urandom, written 0600 by the sim's own
//! loader (one implementation of "load or generate a key file").

use crate::error::{CtlError, Result};
use crate::stack::layout::{Layout, write_atomic};

/// The fingerprints a stack needs (public data only).
pub struct Keys {
    pub host_key_fingerprint: String,
    pub client_key_fingerprint: String,
}

pub fn ensure(layout: &Layout) -> Result<Keys> {
    let client = rds_sim::load_or_generate_host_key(&layout.client_key())
        .map_err(|e| CtlError::Stack(format!("client key: {e}")))?;
    let public = client
        .public_key()
        .to_openssh()
        .map_err(|e| CtlError::Stack(format!("client key: {e}")))?;
    write_atomic(&layout.client_pub(), format!("{public}\n").as_bytes())?;
    let host = rds_sim::load_or_generate_host_key(&layout.sim_host_key())
        .map_err(|e| CtlError::Stack(format!("sim host key: {e}")))?;
    Ok(Keys {
        host_key_fingerprint: rds_sim::fingerprint(host.public_key()),
        client_key_fingerprint: rds_sim::fingerprint(client.public_key()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_are_generated_once_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::new(dir.path()).unwrap();
        l.create().unwrap();
        let a = ensure(&l).unwrap();
        let b = ensure(&l).unwrap();
        assert_eq!(a.host_key_fingerprint, b.host_key_fingerprint);
        assert_eq!(a.client_key_fingerprint, b.client_key_fingerprint);
        assert_ne!(a.host_key_fingerprint, a.client_key_fingerprint);
        assert!(a.host_key_fingerprint.starts_with("SHA256:"));
        let mode = std::fs::metadata(l.client_key())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let pubkey = std::fs::read_to_string(l.client_pub()).unwrap();
        assert!(pubkey.starts_with("ssh-ed25519 "), "{pubkey}");
        assert_eq!(rds_sim::load_authorized_keys(&pubkey).unwrap().len(), 1);
    }
}
