//! nvme-cli argument building and output classification (docs/ARCHITECTURE.md §9.1).

use rds_bus::HostIdentity;

use crate::command::CmdOutput;
use crate::source::NvmeTarget;

/// `connect -t tcp -a ADDR -s PORT -n NQN [-q HOSTNQN -I HOSTID]
/// --ctrl-loss-tmo=… --reconnect-delay=… [--keep-alive-tmo=…]`.
/// The timers are passed as the Go driver does: ctrl-loss-tmo when ≠ 0
/// (default −1 = reconnect forever, so filesystems never go read-only),
/// reconnect-delay when > 0, keep-alive-tmo when > 0. The host identity is
/// this node's own, never the image's `/etc/nvme/hostnqn`.
pub fn connect_args(t: &NvmeTarget, host: Option<&HostIdentity>) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "connect".into(),
        "-t".into(),
        "tcp".into(),
        "-a".into(),
        t.ip.to_string(),
        "-s".into(),
        t.port.to_string(),
        "-n".into(),
        t.nqn.to_string(),
    ];
    if let Some(h) = host {
        v.extend([
            "-q".into(),
            h.host_nqn().to_owned(),
            "-I".into(),
            h.host_id(),
        ]);
    }
    if t.ctrl_loss_tmo != 0 {
        v.push(format!("--ctrl-loss-tmo={}", t.ctrl_loss_tmo));
    }
    if t.reconnect_delay > 0 {
        v.push(format!("--reconnect-delay={}", t.reconnect_delay));
    }
    if t.keep_alive_tmo > 0 {
        v.push(format!("--keep-alive-tmo={}", t.keep_alive_tmo));
    }
    v
}

/// nvme-cli reports an existing connection as an error (EALREADY, 114).
pub fn already_connected(out: &CmdOutput) -> bool {
    let text = format!("{} {}", out.stderr, out.stdout).to_ascii_lowercase();
    out.code == Some(114)
        || text.contains("already connected")
        || text.contains("operation already in progress")
}

/// Errors worth another connect attempt (the Go driver's list).
pub fn is_retryable(message: &str) -> bool {
    const TRANSIENT: &[&str] = &[
        "connection refused",
        "connection reset",
        "connection timeout",
        "timed out",
        "no route to host",
        "network unreachable",
        "network is unreachable",
        "host is unreachable",
        "device did not appear",
        "i/o timeout",
        "io timeout",
        "temporary failure",
        "resource temporarily unavailable",
        "try again",
    ];
    let m = message.to_ascii_lowercase();
    TRANSIENT.iter().any(|t| m.contains(t))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn classification() {
        assert!(already_connected(&CmdOutput::exit(114, "")));
        assert!(already_connected(&CmdOutput::exit(
            1,
            "Failed to write to /dev/nvme-fabrics: Operation already in progress"
        )));
        assert!(!already_connected(&CmdOutput::exit(
            1,
            "Failed to write to /dev/nvme-fabrics: Connection refused"
        )));
        assert!(is_retryable(
            "nvme failed: exit 1: could not add new controller: Connection refused"
        ));
        assert!(is_retryable("nvme timed out after 30.0 s"));
        assert!(!is_retryable("nvme failed: exit 1: invalid argument"));
    }
}
