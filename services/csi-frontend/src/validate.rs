//! Value checks shared by flags, StorageClass parameters and volume_context
//! (docs/csi.md §3): every value is checked before it is stored in a PV or sent
//! anywhere, whether or not it reaches RouterOS. Each returns a short reason;
//! callers prefix the offending key or flag.

use std::net::IpAddr;

/// Filesystems the node role can make and mount.
pub const FS_TYPES: [&str; 3] = ["ext4", "ext3", "xfs"];

/// `unix:///abs/path`, `tcp://host:port`, `http://host:port` or `host:port`.
pub fn endpoint(ep: &str) -> Result<(), String> {
    if let Some(path) = ep.strip_prefix("unix://") {
        if !path.starts_with('/') || path.len() < 2 {
            return Err(format!("{ep:?}: unix endpoints need an absolute path"));
        }
        return Ok(());
    }
    let hostport = ep
        .strip_prefix("tcp://")
        .or_else(|| ep.strip_prefix("http://"))
        .unwrap_or(ep);
    let Some((host, port)) = hostport.rsplit_once(':') else {
        return Err(format!("{ep:?}: expected unix:///path or tcp://host:port"));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    address(host).map_err(|e| format!("{ep:?}: {e}"))?;
    port.parse::<u16>()
        .map_err(|_| format!("{ep:?}: port must be 0-65535"))?;
    Ok(())
}

/// csi-sanity's rule for plugin names (≤ 63, starts and ends with a letter).
pub fn driver_name(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphabetic()
        && b[b.len() - 1].is_ascii_alphabetic()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?}: must be 1-63 characters of [A-Za-z0-9-._], starting and ending with a letter"
        ))
    }
}

/// An IP literal or an RFC 1123 host name.
pub fn address(a: &str) -> Result<(), String> {
    if a.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let host_ok = !a.is_empty()
        && a.len() <= 253
        && a.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        });
    if host_ok {
        Ok(())
    } else {
        Err(format!(
            "{:?} is neither an IP address nor a host name",
            truncate(a)
        ))
    }
}

/// A TCP port 1-65535 given as text.
pub fn port(v: &str) -> Result<u16, String> {
    match v.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("{:?} is not a port number (1-65535)", truncate(v))),
    }
}

pub fn fs_type(v: &str) -> Result<(), String> {
    if FS_TYPES.contains(&v) {
        Ok(())
    } else {
        Err(format!("{:?} is not one of ext4, ext3, xfs", truncate(v)))
    }
}

/// The pool a base path lives in: its first component (`/storage-pool`).
pub fn pool_root_of(base: &str) -> Result<String, String> {
    let rest = base
        .strip_prefix('/')
        .ok_or_else(|| format!("{:?} is not absolute", truncate(base)))?;
    let first = rest.split('/').next().unwrap_or_default();
    if first.is_empty() {
        return Err(format!("{:?} names no pool", truncate(base)));
    }
    Ok(format!("/{first}"))
}

/// An absolute, clean path of `[A-Za-z0-9._/-]` at or under `pool_root`
/// (no `.`/`..` components, no `//`, no trailing `/`).
pub fn storage_path(p: &str, pool_root: &str) -> Result<(), String> {
    let shown = truncate(p);
    if !p.starts_with('/') {
        return Err(format!("{shown:?} is not absolute"));
    }
    if p.len() > 255 {
        return Err(format!("{shown:?} is longer than 255 characters"));
    }
    if let Some(c) = p
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-')))
    {
        return Err(format!(
            "{shown:?} contains {c:?} (allowed: A-Z a-z 0-9 . _ / -)"
        ));
    }
    if p.len() > 1 && p.ends_with('/') {
        return Err(format!("{shown:?} ends with '/'"));
    }
    if p[1..]
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!(
            "{shown:?} is not a clean path (empty, '.' or '..' component)"
        ));
    }
    if p != pool_root && !p.starts_with(&format!("{pool_root}/")) {
        return Err(format!("{shown:?} is not under the pool {pool_root}"));
    }
    Ok(())
}

/// A Kubernetes object name (DNS subdomain: ≤ 253 of [a-z0-9.-], alphanumeric ends).
pub fn k8s_name(v: &str) -> Result<(), String> {
    dns_like(v, 253, true)
}

/// A Kubernetes namespace (DNS label: ≤ 63 of [a-z0-9-], alphanumeric ends).
pub fn k8s_namespace(v: &str) -> Result<(), String> {
    dns_like(v, 63, false)
}

fn dns_like(v: &str, max: usize, dots: bool) -> Result<(), String> {
    let b = v.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= max
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || (dots && *c == b'.')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a valid Kubernetes {}",
            truncate(v),
            if dots { "name" } else { "namespace" }
        ))
    }
}

/// Durations read the one grammar of every binary (docs/decisions.md §14);
/// zero is refused.
pub use rds_bus::duration::parse_positive as duration;

/// A value of the disk's ownership tag (`comment="rds-csi: cluster=… pv=…
/// pvc=<ns>/<name>"`, docs/btrfs.md): `[a-z0-9][a-z0-9.-]*`, at most 253
/// bytes, the grammar rds-agent checks before quoting it.
pub fn tag_value(v: &str) -> Result<(), String> {
    if rds_bus::ids::is_tag_value(v) {
        Ok(())
    } else {
        Err(format!(
            "{:?} does not fit an ownership tag ([a-z0-9][a-z0-9.-]*)",
            truncate(v)
        ))
    }
}

/// Values echoed in errors are cut short so hostile input cannot flood logs.
pub fn truncate(v: &str) -> String {
    v.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    #[test]
    fn tag_values_are_lowercase_names() {
        for ok in ["default", "prod-cluster-1", "pvc-1", "a.b", "0"] {
            assert!(tag_value(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Prod",
            "a_b",
            "-a",
            "a b",
            "a=b",
            "a\"b",
            &"a".repeat(254),
        ] {
            assert!(tag_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn storage_paths() {
        let pool = "/storage-pool";
        for ok in [
            "/storage-pool",
            "/storage-pool/metal-csi",
            "/storage-pool/a/b_c.d-e",
        ] {
            assert!(storage_path(ok, pool).is_ok(), "{ok}");
        }
        for bad in [
            "storage-pool/x",
            "/storage-pool/x/",
            "/storage-pool//x",
            "/storage-pool/../etc",
            "/storage-pool/./x",
            "/storage-pool-other/x",
            "/other",
            "/storage-pool/a b",
            "/storage-pool/a;b",
            "/storage-pool/a\"b",
            "/storage-pool/$(x)",
            "/storage-pool/a\nb",
        ] {
            assert!(storage_path(bad, pool).is_err(), "{bad:?}");
        }
        assert_eq!(
            pool_root_of("/storage-pool/metal-csi").unwrap(),
            "/storage-pool"
        );
        assert!(pool_root_of("/").is_err());
    }

    #[test]
    fn addresses_and_ports() {
        for ok in ["10.0.0.1", "::1", "rds.example.com", "rds-1"] {
            assert!(address(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "-x", "x-", "a..b", "x;reboot", "a_b"] {
            assert!(address(bad).is_err(), "{bad:?}");
        }
        assert_eq!(port("4420").unwrap(), 4420);
        for bad in ["0", "65536", "-1", "x", "44 20"] {
            assert!(port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints() {
        for ok in [
            "unix:///tmp/x.sock",
            "tcp://127.0.0.1:0",
            "http://localhost:50051",
            "[::1]:5",
        ] {
            assert!(endpoint(ok).is_ok(), "{ok}");
        }
        for bad in ["unix://rel", "localhost", "tcp://a b:1", "tcp://h:99999"] {
            assert!(endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kubernetes_names() {
        assert!(k8s_name("data-web-0").is_ok());
        assert!(k8s_name("a.b").is_ok());
        assert!(k8s_namespace("a.b").is_err());
        assert!(k8s_name("Upper").is_err());
        assert!(k8s_namespace(&"a".repeat(64)).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(duration("7").unwrap(), Duration::from_secs(7));
        for bad in ["", "0s", "x", "5d", "-1s"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }
}
