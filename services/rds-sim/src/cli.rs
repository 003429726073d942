//! The `rds-sim` command line (kept in the library so `main.rs` stays thin and `rdsctl` can
//! reuse it), run by the shared runner (`rds_bus::runner`) like every service.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::{Behaviour, FaultRule, Sim, SimConfig};

/// `rds-sim` arguments.
#[derive(Parser, Debug)]
#[command(
    name = "rds-sim",
    about = "Simulated MikroTik RDS (RouterOS 7 + rose-storage) over SSH"
)]
pub struct Args {
    /// SSH listen address.
    #[arg(long, env = "RDS_SIM_LISTEN", default_value = "127.0.0.1:2222")]
    pub listen: SocketAddr,
    /// State directory (state.json, files/, commands.log, host_key).
    #[arg(long, env = "RDS_SIM_STATE_DIR")]
    pub state_dir: PathBuf,
    /// OpenSSH authorized_keys file; any user name with one of these keys may log in.
    #[arg(long, env = "RDS_SIM_AUTHORIZED_KEYS")]
    pub authorized_keys: PathBuf,
    /// Host private key (OpenSSH format; an RSA key presents ssh-rsa like the real box).
    /// Default: <state-dir>/host_key, generated (Ed25519) on first start.
    #[arg(long, env = "RDS_SIM_HOST_KEY")]
    pub host_key: Option<PathBuf>,
    /// Pool size in bytes.
    #[arg(long, env = "RDS_SIM_POOL_SIZE", default_value_t = crate::DEFAULT_POOL_SIZE)]
    pub pool_size: u64,
    /// Behaviour switches as a JSON file (fields of `Behaviour`; missing fields = defaults).
    #[arg(long, env = "RDS_SIM_BEHAVIOUR")]
    pub behaviour: Option<PathBuf>,
    /// Local mode (docs/local-mode.md §7): pre-create storage-pool/metal-csi, copy-from = data-clone.
    #[arg(long, env = "RDS_SIM_LOCAL_MODE")]
    pub local_mode: bool,
    /// Control endpoint (HTTP/JSON) address, e.g. 127.0.0.1:9222. Off when absent.
    #[arg(long, env = "RDS_SIM_CONTROL")]
    pub control: Option<SocketAddr>,
    /// Mirror every NVMe/TCP-exported disk into the Linux kernel target (nvmet over configfs),
    /// so real initiators can `nvme connect` to it. Needs configfs with nvmet loaded.
    #[arg(long, env = "RDS_SIM_NVMET_EXPORT")]
    pub nvmet_export: bool,
    /// configfs mount point used by --nvmet-export.
    #[arg(long, env = "RDS_SIM_NVMET_CONFIGFS_ROOT", default_value = crate::DEFAULT_CONFIGFS_ROOT)]
    pub nvmet_configfs_root: PathBuf,
    /// Address the kernel target listens on for every exported port (--nvmet-export).
    #[arg(long, env = "RDS_SIM_NVMET_TRADDR", default_value = "127.0.0.1")]
    pub nvmet_traddr: std::net::IpAddr,
    /// --nvmet-export: read a disk's nvme-tcp-server-allow-host-name as ONE host name (not a
    /// list). Unverified on RouterOS; the default reads a list.
    #[arg(long, env = "RDS_SIM_NVMET_ALLOW_SINGLE")]
    pub nvmet_allow_single: bool,
    /// --nvmet-export: separator of the allow list.
    #[arg(long, env = "RDS_SIM_NVMET_ALLOW_SEPARATOR", default_value_t = ',')]
    pub nvmet_allow_separator: char,
    /// --nvmet-export: a change of the allow list disconnects connected controllers.
    #[arg(long, env = "RDS_SIM_NVMET_ALLOW_CHANGE_DROPS")]
    pub nvmet_allow_change_drops: bool,
    /// Fault rule (JSON) active from start; repeatable.
    #[arg(long = "fault")]
    pub faults: Vec<String>,
    /// Validate and print the effective configuration, then exit.
    #[arg(long)]
    pub check_config: bool,
}

/// The effective configuration printed by `--check-config` (no secrets: key counts only).
#[derive(serde::Serialize)]
pub struct Effective {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    pub authorized_keys: usize,
    pub host_key: Option<PathBuf>,
    pub pool_size: u64,
    pub base_dirs: Vec<String>,
    pub control: Option<SocketAddr>,
    pub faults: usize,
    pub behaviour: Behaviour,
    pub nvmet: crate::NvmetExportConfig,
}

/// Validate the arguments into a [`SimConfig`] and start-up fault rules.
pub fn build(a: &Args) -> Result<(SimConfig, Vec<FaultRule>), String> {
    let keys_text = rds_bus::config::read_secret_file(&a.authorized_keys)?;
    let keys = crate::load_authorized_keys(&keys_text).map_err(|e| e.to_string())?;
    let mut cfg = SimConfig::new(&a.state_dir, keys);
    cfg.listen = a.listen;
    cfg.pool_size = a.pool_size;
    cfg.nvmet.enabled = a.nvmet_export;
    cfg.nvmet.configfs_root.clone_from(&a.nvmet_configfs_root);
    cfg.nvmet.traddr = a.nvmet_traddr;
    cfg.nvmet.allow_list = crate::AllowListSwitches {
        single_value: a.nvmet_allow_single,
        separator: a.nvmet_allow_separator,
        drop_on_change: a.nvmet_allow_change_drops,
    };
    if a.local_mode {
        cfg = cfg.local_mode();
    }
    if let Some(p) = &a.host_key {
        cfg.host_key = Some(crate::load_or_generate_host_key(p).map_err(|e| e.to_string())?);
    }
    if let Some(p) = &a.behaviour {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        cfg.behaviour = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    let faults = a
        .faults
        .iter()
        .map(|f| FaultRule::from_json(f).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    Ok((cfg, faults))
}

impl Effective {
    /// What `--check-config` prints.
    pub fn new(c: &SimConfig, args: &Args, faults: usize) -> Self {
        Self {
            listen: c.listen,
            state_dir: c.state_dir.clone(),
            authorized_keys: c.authorized_keys.len(),
            host_key: args.host_key.clone(),
            pool_size: c.pool_size,
            base_dirs: c.base_dirs.clone(),
            control: args.control,
            faults,
            behaviour: c.behaviour.clone(),
            nvmet: c.nvmet.clone(),
        }
    }
}

/// What [`build`] gives the runner: the simulator's config, its start-up
/// fault rules and the control endpoint's address.
pub struct Built {
    pub sim: SimConfig,
    pub faults: Vec<FaultRule>,
    pub control: Option<SocketAddr>,
}

/// A simulator started by the runner: serves until the shutdown token fires,
/// then closes every connection.
pub struct Running {
    sim: crate::SimHandle,
    shutdown: rds_bus::Shutdown,
}

impl rds_bus::Serving for Running {
    type Error = crate::SimError;
    async fn wait(self) -> Result<(), crate::SimError> {
        self.shutdown.wait().await;
        self.sim.stop().await;
        Ok(())
    }
}

/// rds-sim as the runner sees it (`rds_bus::runner`: exit codes, drain on
/// SIGTERM).
pub struct SimMain;

impl rds_bus::Service for SimMain {
    const NAME: &'static str = "rds-sim";
    type Args = Args;
    type Settings = Built;
    type Effective = Effective;
    type Running = Running;
    type StartError = crate::SimError;

    fn check_only(args: &Args) -> bool {
        args.check_config
    }

    fn validate(args: &Args) -> Result<Built, String> {
        let (sim, faults) = build(args)?;
        Ok(Built {
            sim,
            faults,
            control: args.control,
        })
    }

    fn effective(args: &Args, b: &Built) -> Effective {
        Effective::new(&b.sim, args, b.faults.len())
    }

    /// Starts the simulator (and the control endpoint) and prints the
    /// fingerprint.
    async fn start(b: Built, shutdown: rds_bus::Shutdown) -> Result<Running, crate::SimError> {
        let sim = Sim::start(b.sim).await?;
        for f in b.faults {
            sim.faults().try_add(f)?;
        }
        println!(
            "rds-sim listening on {} host key {}",
            sim.addr(),
            sim.host_key_fingerprint()
        );
        if let Some(c) = b.control {
            let addr = crate::serve_control(sim.clone(), c).await?;
            println!("rds-sim control on http://{addr}");
        }
        Ok(Running { sim, shutdown })
    }
}

/// Runs rds-sim exactly as its binary does: `args` is the whole command line
/// (`argv[0]` first). Builds its own tokio runtime, so `rdsctl serve rds-sim`
/// runs this very code path.
pub fn cli_main(args: Vec<std::ffi::OsString>) -> std::process::ExitCode {
    rds_bus::runner::main::<SimMain>(args)
}
