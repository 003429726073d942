//! The RDS checks, in order; a failed connection skips the rest.

use rds_agent::AgentError;
use rds_agent::inspect::Inspector;
use rds_routeros::DiskPath;

use super::Check;

/// Below this share of free pool space: warn.
const LOW_FREE_PERCENT: u64 = 10;

pub(super) fn describe_err(e: &AgentError) -> String {
    format!("{e} (reason {})", e.reason())
}

pub async fn checks(i: &Inspector) -> Vec<Check> {
    let s = i.settings();
    let addr = format!("{}@{}:{}", s.rds_user, s.rds_host, s.rds_port);
    let pin = s.host_key.describe();
    let mut out = Vec::new();
    let version = match i.version().await {
        Ok(v) => {
            out.push(Check::pass("ssh", format!("{addr} answers")));
            out.push(Check::pass("host-key", format!("matches the pin ({pin})")));
            v
        }
        Err(e) => {
            out.extend(no_session(i, &addr, &pin, &e));
            return out;
        }
    };
    out.push(version_check(&version));
    out.push(rose_storage_check(i).await);
    out.push(pool_check(i).await);
    out.push(base_paths_check(i).await);
    out.push(sessions_check(i).await);
    out
}

/// The checks when no session could be opened: what did answer, what
/// failed, and every later check skipped.
fn no_session(i: &Inspector, addr: &str, pin: &str, e: &AgentError) -> Vec<Check> {
    let s = i.settings();
    let mut out = Vec::new();
    match e {
        AgentError::HostKeyMismatch { presented, .. } => {
            out.push(Check::pass(
                "ssh",
                format!("{addr} answers the SSH handshake"),
            ));
            out.push(Check::fail(
                "host-key",
                format!("the RDS presented {presented}; pinned: {pin}"),
                "confirm the new key on the RDS console (`/ip ssh print`), then update the pin \
                 (--rds-host-key-fingerprint / the Secret); if the RDS did not change, treat it as an attack",
            ));
        }
        AgentError::AuthFailed { user } => {
            out.push(Check::pass(
                "ssh",
                format!("{addr} answers the SSH handshake"),
            ));
            out.push(Check::pass("host-key", format!("matches the pin ({pin})")));
            out.push(Check::fail(
                "auth",
                format!("the RDS refused the key of user {user}"),
                format!(
                    "import the public key of {} for {user} on the RDS (`/user ssh-keys import`)",
                    s.key_file.display()
                ),
            ));
        }
        _ => {
            out.push(Check::fail(
                "ssh",
                format!("{addr}: {}", describe_err(e)),
                "check the address and port, that the RDS is up, that `/ip service` ssh is enabled \
                 and that no firewall drops port 22 from here",
            ));
            out.push(Check::skip("host-key", "no SSH handshake"));
        }
    }
    for name in [
        "routeros-version",
        "rose-storage",
        "pool",
        "base-paths",
        "ssh-sessions",
    ] {
        out.push(Check::skip(name, "the RDS is not reachable"));
    }
    out
}

/// The rose-storage package: installed and enabled.
async fn rose_storage_check(i: &Inspector) -> Check {
    match i.packages().await {
        Ok(pkgs) => match pkgs.iter().find(|p| p.name == "rose-storage") {
            Some(p) if !p.disabled => Check::pass(
                "rose-storage",
                format!("installed, version {}", p.version.as_deref().unwrap_or("?")),
            ),
            Some(_) => Check::fail(
                "rose-storage",
                "installed but disabled",
                "`/system package enable rose-storage`, then reboot the RDS",
            ),
            None => Check::fail(
                "rose-storage",
                format!(
                    "not installed (packages: {})",
                    pkgs.iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "install the rose-storage package matching the RouterOS version and reboot",
            ),
        },
        Err(e) => Check::fail(
            "rose-storage",
            format!("cannot read /system package: {}", describe_err(&e)),
            "check the RDS user may read `/system package` (group read or full)",
        ),
    }
}

fn version_check(v: &str) -> Check {
    let major: Option<u32> = v
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|m| m.parse().ok());
    match major {
        Some(m) if m >= 7 => Check::pass("routeros-version", format!("RouterOS {v}")),
        Some(_) => Check::fail(
            "routeros-version",
            format!("RouterOS {v}"),
            "upgrade to RouterOS 7 (rose-storage and `/disk` file exports need it)",
        ),
        None => Check::warn(
            "routeros-version",
            format!("unrecognised version {v:?}"),
            "check `/system resource print` on the RDS",
        ),
    }
}

async fn pool_check(i: &Inspector) -> Check {
    let pool = i.settings().pool.as_str().to_owned();
    match i.pool().await {
        Ok(Some(d)) => {
            let fs = d.fs.clone().unwrap_or_else(|| "?".into());
            let (size, free) = (d.size.unwrap_or(0), d.free.unwrap_or(0));
            let detail = format!(
                "{pool} mounted, fs={fs}, {} free of {}",
                crate::units::format_size(free),
                crate::units::format_size(size)
            );
            if size > 0 && free.saturating_mul(100) < size.saturating_mul(LOW_FREE_PERCENT) {
                Check::warn(
                    "pool",
                    detail,
                    "free space below 10 %: delete unused volumes (`rdsctl orphans`) or grow the pool",
                )
            } else {
                Check::pass("pool", detail)
            }
        }
        Ok(None) => Check::fail(
            "pool",
            format!("no disk is mounted at {pool:?}"),
            "set --pool (RDS_POOL) to the pool's mount-point (`/disk print where mount-point`), or mount the pool",
        ),
        Err(e) => Check::fail(
            "pool",
            format!("cannot read the pool: {}", describe_err(&e)),
            "check `/disk print detail where mount-point=…` on the RDS",
        ),
    }
}

async fn base_paths_check(i: &Inspector) -> Check {
    let mut missing = Vec::new();
    let mut seen = Vec::new();
    for b in i.bases().paths() {
        match i.file(b).await {
            Ok(Some(f)) if f.file_type.as_deref() == Some("directory") => seen.push(b.to_string()),
            Ok(Some(f)) => missing.push(format!(
                "{b} is a {}, not a directory",
                f.file_type.as_deref().unwrap_or("?")
            )),
            Ok(None) => missing.push(format!("{b} does not exist")),
            Err(e) => missing.push(format!("{b}: {}", describe_err(&e))),
        }
    }
    if missing.is_empty() {
        Check::pass("base-paths", seen.join(", "))
    } else {
        let first: Option<&DiskPath> = i.bases().paths().first();
        Check::fail(
            "base-paths",
            missing.join("; "),
            format!(
                "create it on the RDS: `/file add type=directory name={}`",
                first.map(|p| p.file_name()).unwrap_or("<path>")
            ),
        )
    }
}

async fn sessions_check(i: &Inspector) -> Check {
    let svc = match i.ssh_service().await {
        Ok(s) => s,
        Err(e) => {
            return Check::fail(
                "ssh-sessions",
                format!("cannot read /ip service: {}", describe_err(&e)),
                "check the RDS user may read `/ip service`",
            );
        }
    };
    let users = match i.active_users().await {
        Ok(u) => u,
        Err(e) => {
            return Check::fail(
                "ssh-sessions",
                format!("cannot read /user active: {}", describe_err(&e)),
                "check the RDS user may read `/user active`",
            );
        }
    };
    let Some(svc) = svc else {
        return Check::fail(
            "ssh-sessions",
            "`/ip service` lists no ssh service",
            "enable SSH: `/ip service enable ssh`",
        );
    };
    if svc.disabled {
        return Check::fail(
            "ssh-sessions",
            "the ssh service is disabled",
            "`/ip service enable ssh`",
        );
    }
    // RouterOS's documented default when the print does not say.
    let max = svc.max_sessions.unwrap_or(20);
    let in_use = users
        .iter()
        .filter(|u| u.via.as_deref() == Some("ssh"))
        .count();
    let in_use = u32::try_from(in_use).unwrap_or(u32::MAX);
    let need = u32::try_from(i.settings().max_connections).unwrap_or(2);
    let detail = format!("{in_use} of max-sessions={max} in use (this check's own login included)");
    let free = max.saturating_sub(in_use);
    if free == 0 {
        Check::fail(
            "ssh-sessions",
            format!("{detail}: no session left"),
            format!(
                "raise it (`/ip service set ssh max-sessions={}`) or close idle logins (`/user active print`)",
                max + need
            ),
        )
    } else if free < need {
        Check::warn(
            "ssh-sessions",
            format!("{detail}: {free} left, the driver needs {need} per controller replica"),
            format!(
                "raise it: `/ip service set ssh max-sessions={}`",
                max + need
            ),
        )
    } else {
        Check::pass("ssh-sessions", detail)
    }
}
