//! `rdsctl doctor`: is this RDS (and this cluster) set up for rds-csi?
//!
//! Each check says pass / warn / fail (or skip, when an earlier failure makes
//! it meaningless), what it saw, and for anything not passing the fix in one
//! line. Exit code by the worst result: 0 pass, 5 warn, 6 fail (README.md,
//! "Exit codes"). RDS checks go through rds-agent's library (read-only
//! prints); cluster checks through the kubeconfig.

pub mod btrfs;
pub mod cluster;
pub mod nvme_tcp;
pub mod rds;

use clap::Args;
use serde::Serialize;

use crate::error::{CtlError, Result};
use crate::output::{Format, OutputArgs, table};
use crate::target::{KubeArgs, RdsArgs};

#[derive(Args, Debug, Clone)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub rds: RdsArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Skip the RDS checks.
    #[arg(long)]
    pub no_rds: bool,
    /// Skip the cluster checks (otherwise they run when a kubeconfig is found).
    #[arg(long)]
    pub no_cluster: bool,
    /// Also check the Btrfs assumptions behind `volumeLayout: subvolume`
    /// (read-only; run once on a real RDS, docs/btrfs.md).
    #[arg(long)]
    pub btrfs: bool,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// Not run: an earlier check failed (or the part was not asked for).
    Skip,
    Warn,
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Skip => "SKIP",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable name (`ssh`, `host-key`, `pool`, `csinode/<node>`, ...).
    pub name: String,
    pub status: Status,
    /// What was seen.
    pub detail: String,
    /// One line: what to do (empty when passing).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

impl Check {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(name, Status::Pass, detail, "")
    }
    pub fn warn(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check::new(name, Status::Warn, detail, fix)
    }
    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check::new(name, Status::Fail, detail, fix)
    }
    pub fn skip(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(name, Status::Skip, detail, "")
    }
    fn new(
        name: impl Into<String>,
        status: Status,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            status,
            detail: detail.into(),
            fix: fix.into(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub worst: Status,
    pub checks: Vec<Check>,
}

pub fn worst(checks: &[Check]) -> Status {
    checks
        .iter()
        .map(|c| c.status)
        .filter(|s| *s != Status::Skip)
        .max()
        .unwrap_or(Status::Pass)
}

pub fn human(r: &Report) -> String {
    let rows: Vec<Vec<String>> = r
        .checks
        .iter()
        .map(|c| {
            vec![
                c.status.label().to_owned(),
                c.name.clone(),
                c.detail.clone(),
            ]
        })
        .collect();
    let mut out = table(&["STATUS", "CHECK", "DETAIL"], &rows);
    let fixes: Vec<&Check> = r.checks.iter().filter(|c| !c.fix.is_empty()).collect();
    if !fixes.is_empty() {
        out.push_str("\nfixes:\n");
        for c in fixes {
            out.push_str(&format!("  {} {}: {}\n", c.status.label(), c.name, c.fix));
        }
    }
    out.push_str(&format!("\nresult: {}\n", r.worst.label()));
    out
}

pub async fn run(args: DoctorArgs) -> Result<std::process::ExitCode> {
    let mut checks = Vec::new();
    if args.no_rds {
        checks.push(Check::skip("rds", "--no-rds"));
        if args.btrfs {
            checks.push(Check::skip("btrfs", "--no-rds"));
        }
    } else if !args.rds.given() {
        checks.push(Check::warn(
            "rds",
            "no RDS given: RDS checks not run",
            "pass --rds-address (or $RDS_ADDRESS) with --rds-key-file and a host-key pin, as for rds-agent",
        ));
    } else {
        let inspector = args.rds.inspector()?;
        let rds_checks = rds::checks(&inspector).await;
        let reachable = !rds_checks
            .iter()
            .any(|c| c.name == "ssh" && c.status == Status::Fail);
        checks.extend(rds_checks);
        if args.btrfs {
            if reachable {
                checks.extend(btrfs::checks(&inspector).await);
            } else {
                checks.push(Check::skip("btrfs", "the RDS is not reachable"));
            }
        }
        inspector.close().await;
    }
    if args.no_cluster {
        checks.push(Check::skip("cluster", "--no-cluster"));
    } else {
        match args.kube.client(args.kube.kubeconfig.is_some()).await? {
            Some(client) => checks.extend(cluster::checks(&args.kube, &client).await),
            None => checks.push(Check::skip(
                "cluster",
                "no kubeconfig found: cluster checks not run",
            )),
        }
    }
    let report = Report {
        worst: worst(&checks),
        checks,
    };
    let format: Format = args.out.format();
    crate::output::print(format, &report, || human(&report))?;
    match report.worst {
        Status::Pass | Status::Skip => Ok(std::process::ExitCode::SUCCESS),
        Status::Warn => Err(CtlError::Findings {
            what: "doctor: warnings (see above)".into(),
            unhealthy: false,
        }),
        Status::Fail => Err(CtlError::Findings {
            what: "doctor: checks failed (see above)".into(),
            unhealthy: true,
        }),
    }
}
