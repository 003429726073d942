//! Validated paths: node paths from kubelet (staging/target) and the RDS
//! backing-file path from volume_context (mapped under the sim's files root).

use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::error::{DataPlaneError, Result};

const MAX_PATH: usize = 4096;

/// An absolute node path without `..` (staging or target path from kubelet).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodePath(PathBuf);

impl NodePath {
    pub fn parse(what: &str, s: &str) -> Result<Self> {
        let bad = |why: &str| {
            let shown: String = s.chars().take(128).collect();
            Err(DataPlaneError::InvalidArgument(format!(
                "{what} {shown:?}: {why}"
            )))
        };
        if s.is_empty() {
            return bad("must not be empty");
        }
        if s.len() > MAX_PATH {
            return bad("longer than 4096 bytes");
        }
        if s.contains('\0') {
            return bad("contains a NUL byte");
        }
        let p = Path::new(s);
        if !p.is_absolute() {
            return bad("must be an absolute path");
        }
        if p.components().any(|c| matches!(c, Component::ParentDir)) {
            return bad("must not contain '..'");
        }
        if p.parent().is_none() {
            return bad("must not be the root directory");
        }
        Ok(NodePath(p.to_path_buf()))
    }

    pub fn as_path(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for NodePath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl fmt::Display for NodePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.display().fmt(f)
    }
}

/// Checks an RDS backing-file path (`volumePath` in volume_context, e.g.
/// `/storage-pool/metal-csi/pvc-x.img`): absolute, `[A-Za-z0-9._/-]` only,
/// no empty, `.` or `..` components (docs/csi.md §3).
pub fn validate_volume_path(s: &str) -> Result<()> {
    let bad = |why: &str| {
        let shown: String = s.chars().take(128).collect();
        Err(DataPlaneError::InvalidArgument(format!(
            "volume context volumePath {shown:?}: {why}"
        )))
    };
    if s.is_empty() {
        return bad("must not be empty");
    }
    if s.len() > MAX_PATH {
        return bad("longer than 4096 bytes");
    }
    if !s.starts_with('/') {
        return bad("must be an absolute path");
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
    {
        return bad("only [A-Za-z0-9._/-] are allowed");
    }
    let parts: Vec<&str> = s[1..].split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return bad("must not contain empty, '.' or '..' components");
    }
    Ok(())
}

/// Where the sim keeps the file of RDS path `volume_path` (docs/local-mode.md §2:
/// `/storage-pool/x/y.img` → `<files_root>/storage-pool/x/y.img`).
pub fn file_under(files_root: &Path, volume_path: &str) -> Result<PathBuf> {
    validate_volume_path(volume_path)?;
    Ok(files_root.join(volume_path.trim_start_matches('/')))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn node_paths() {
        assert!(NodePath::parse("staging path", "/var/lib/kubelet/plugins/x/globalmount").is_ok());
        for bad in ["", "relative/p", "/a/../b", "/", "/a\0b"] {
            let e = NodePath::parse("staging path", bad).unwrap_err();
            assert_eq!(e.reason(), rds_bus::Reason::InvalidArgument, "{bad:?}");
        }
    }

    #[test]
    fn volume_paths_map_under_the_files_root() {
        let f = file_under(
            Path::new("/state/sim/files"),
            "/storage-pool/metal-csi/pvc-1.img",
        )
        .unwrap();
        assert_eq!(
            f,
            PathBuf::from("/state/sim/files/storage-pool/metal-csi/pvc-1.img")
        );
        for bad in [
            "",
            "storage-pool/x.img",
            "/storage-pool/../etc/passwd",
            "/storage-pool/./x.img",
            "/storage-pool//x.img",
            "/storage-pool/x y.img",
            "/storage-pool/x;rm.img",
            "/storage-pool/$(x).img",
            "/storage-pool/x.img/",
        ] {
            assert!(file_under(Path::new("/f"), bad).is_err(), "{bad:?}");
        }
    }
}
