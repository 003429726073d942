//! The command line (clap derive). Handlers live in their own modules.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::attachments::AttachmentsArgs;
use crate::csi::requests::AccessMode;
use crate::doctor::DoctorArgs;
use crate::orphans::OrphansArgs;
use crate::output::OutputArgs;
use crate::units::parse_duration;

#[derive(Parser, Debug)]
#[command(
    name = "rdsctl",
    version,
    about = "rds-csi operator CLI: check an RDS and a cluster, find orphans, list attachments; \
             the whole stack on one machine, a demo, CSI client commands, events, sim faults"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run rds-sim, rds-agent, attachment-service, event-service and csi-frontend
    /// as supervised child processes; print `READY csi=<endpoint> node=<node-id>`.
    Up(UpArgs),
    /// Start a stack in a temporary directory and walk one volume through its life.
    Demo(DemoArgs),
    /// Run one service in this process, exactly as its own binary would
    /// (`rdsctl serve rds-agent --help`). `up` starts its children this way.
    Serve {
        /// csi-frontend, attachment-service, event-service, rds-agent or rds-sim.
        service: String,
        /// The service's own flags.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Plugin info, capabilities and readiness of a CSI endpoint.
    Info(ClientArgs),
    /// CSI volumes: create, list, delete, expand.
    Volume {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: VolumeCmd,
    },
    /// Controller publish/unpublish (attach/detach a volume to/from a node).
    Controller {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: ControllerCmd,
    },
    /// Node stage/unstage/publish/unpublish/expand and node info.
    Node {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: NodeCmd,
    },
    /// CSI snapshots: create, list, delete.
    Snapshot {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: SnapshotCmd,
    },
    /// The event sink of a local stack, oldest first.
    Events(EventsArgs),
    /// Check an RDS (SSH, host key, RouterOS, rose-storage, pool, base paths,
    /// sessions) and a cluster (CSIDriver, pods, CSINodes, nvme_tcp, sidecars).
    Doctor(DoctorArgs),
    /// Disks and files on the RDS no PV references, and PVs whose disk is
    /// missing (report only).
    Orphans(OrphansArgs),
    /// Which node holds which volume (VolumeAttachments), checked against the
    /// RDS's exports.
    Attachments(AttachmentsArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Drive the simulator's fault controls of a local stack.
    Sim(SimArgs),
}

#[derive(Args, Debug, Clone)]
pub struct UpArgs {
    /// State directory (sim state, attachments, events.jsonl, node state, sockets).
    #[arg(long, env = "RDSCTL_STATE_DIR")]
    pub state_dir: PathBuf,
    /// CSI endpoint to serve. Default: unix://DIR/csi.sock.
    #[arg(long)]
    pub csi_endpoint: Option<String>,
    /// This node's id. Default: the host name.
    #[arg(long)]
    pub node_id: Option<String>,
    /// OTLP/gRPC collector for every child (e.g. http://127.0.0.1:4317).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// How long the services may take to answer their health checks.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub ready_timeout: Duration,
    /// Validate the flags, print the effective configuration and exit without starting anything.
    #[arg(long)]
    pub check_config: bool,
}

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Run the stack in this directory instead of a fresh temporary one.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Keep the temporary directory (sim files, events, logs) afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Size of the demo volume (it is expanded to twice what the plugin made).
    #[arg(long, default_value = "1Gi")]
    pub size: String,
    /// Node id of the demo stack. Default: the host name.
    #[arg(long)]
    pub node_id: Option<String>,
    /// OTLP/gRPC collector for every child and for rdsctl's client spans.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// After the walk, save each service's `/metrics` (what the walk
    /// counted) to DIR/<service>.prom before the stack stops.
    #[arg(long, value_name = "DIR")]
    pub metrics_dir: Option<PathBuf>,
}

/// Where and how to talk CSI.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// CSI endpoint: unix:///path, /path, tcp://host:port.
    #[arg(long, global = true, env = "CSI_ENDPOINT")]
    pub endpoint: Option<String>,
    /// A local stack's state directory: use its DIR/csi.sock.
    #[arg(long, global = true, conflicts_with = "endpoint")]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub out: OutputArgs,
    /// Deadline of each call.
    #[arg(long, global = true, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print each call's trace id on stderr.
    #[arg(long, global = true)]
    pub show_trace: bool,
}

/// Filesystem or block, and the access mode.
#[derive(Args, Debug, Clone)]
pub struct AccessArgs {
    /// Raw block volume instead of a filesystem.
    #[arg(long)]
    pub block: bool,
    /// Filesystem type (mount volumes).
    #[arg(long, default_value = "ext4")]
    pub fs_type: String,
    /// Mount flag (repeatable).
    #[arg(long = "mount-flag")]
    pub mount_flags: Vec<String>,
    #[arg(long, value_enum, default_value = "single-node-writer")]
    pub access_mode: AccessMode,
}

/// The volume_context a node or publish call needs.
#[derive(Args, Debug, Clone)]
pub struct ContextArgs {
    /// volume_context key=value (repeatable).
    #[arg(long = "context", conflicts_with = "context_from")]
    pub pairs: Vec<String>,
    /// A file holding `rdsctl volume create --json` output: its volume_context is used.
    #[arg(long)]
    pub context_from: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum VolumeCmd {
    /// CreateVolume.
    Create {
        name: String,
        /// Required capacity (1Gi, 512Mi, bytes).
        #[arg(long, default_value = "1Gi")]
        size: String,
        #[command(flatten)]
        access: AccessArgs,
        /// StorageClass parameter key=value (repeatable).
        #[arg(long = "param")]
        params: Vec<String>,
        /// PVC namespace/name (passed as csi.storage.k8s.io/pvc/* parameters).
        #[arg(long)]
        pvc: Option<String>,
        /// Restore from this snapshot.
        #[arg(long, conflicts_with = "from_volume")]
        from_snapshot: Option<String>,
        /// Clone this volume.
        #[arg(long)]
        from_volume: Option<String>,
    },
    /// ListVolumes (all pages).
    List,
    /// DeleteVolume.
    Delete { volume_id: String },
    /// ControllerExpandVolume.
    Expand {
        volume_id: String,
        #[arg(long)]
        size: String,
        #[command(flatten)]
        access: AccessArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum ControllerCmd {
    /// ControllerPublishVolume (attach).
    #[command(visible_alias = "attach")]
    Publish {
        volume_id: String,
        #[arg(long)]
        node: String,
        #[arg(long)]
        readonly: bool,
        #[command(flatten)]
        access: AccessArgs,
        #[command(flatten)]
        context: ContextArgs,
    },
    /// ControllerUnpublishVolume (detach).
    #[command(visible_alias = "detach")]
    Unpublish {
        volume_id: String,
        #[arg(long)]
        node: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum NodeCmd {
    /// NodeStageVolume.
    Stage {
        volume_id: String,
        #[arg(long)]
        staging_path: PathBuf,
        #[command(flatten)]
        access: AccessArgs,
        #[command(flatten)]
        context: ContextArgs,
        /// publish_context key=value (what ControllerPublish returned).
        #[arg(long = "publish-context")]
        publish_context: Vec<String>,
    },
    /// NodeUnstageVolume.
    Unstage {
        volume_id: String,
        #[arg(long)]
        staging_path: PathBuf,
    },
    /// NodePublishVolume.
    Publish {
        volume_id: String,
        #[arg(long)]
        staging_path: PathBuf,
        #[arg(long)]
        target_path: PathBuf,
        #[arg(long)]
        readonly: bool,
        #[command(flatten)]
        access: AccessArgs,
        #[command(flatten)]
        context: ContextArgs,
        #[arg(long = "publish-context")]
        publish_context: Vec<String>,
    },
    /// NodeUnpublishVolume.
    Unpublish {
        volume_id: String,
        #[arg(long)]
        target_path: PathBuf,
    },
    /// NodeExpandVolume (grow the filesystem after a controller expand).
    Expand {
        volume_id: String,
        /// The published (or staged) path of the volume.
        #[arg(long)]
        path: PathBuf,
        #[arg(long)]
        staging_path: Option<PathBuf>,
        #[arg(long)]
        size: String,
        #[command(flatten)]
        access: AccessArgs,
    },
    /// NodeGetInfo and NodeGetCapabilities.
    Info,
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCmd {
    /// CreateSnapshot.
    Create {
        name: String,
        #[arg(long)]
        source: String,
    },
    /// ListSnapshots (all pages), optionally filtered.
    List {
        #[arg(long)]
        source: Option<String>,
        #[arg(long)]
        id: Option<String>,
    },
    /// DeleteSnapshot.
    Delete { snapshot_id: String },
}

#[derive(Args, Debug, Clone)]
pub struct EventsArgs {
    #[arg(long, env = "RDSCTL_STATE_DIR")]
    pub state_dir: PathBuf,
    /// `-o json` (or `--json`) prints the raw JSON lines.
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Args, Debug, Clone)]
pub struct SimArgs {
    /// A local stack's state directory (finds the control address in DIR/run/endpoints.json).
    #[arg(long, global = true, env = "RDSCTL_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// The sim's control address (host:port) instead of --state-dir.
    #[arg(long, global = true, conflicts_with = "state_dir")]
    pub control: Option<String>,
    #[command(flatten)]
    pub out: OutputArgs,
    #[command(subcommand)]
    pub cmd: SimCmd,
}

#[derive(Subcommand, Debug, Clone)]
pub enum SimCmd {
    /// Health of the control endpoint and the active fault rules.
    Status,
    /// The sim's file disks.
    Disks,
    /// Fault rules.
    Fault {
        #[command(subcommand)]
        cmd: FaultCmd,
    },
    /// Reboot the simulated RDS: drop every session, refuse TCP for the downtime.
    Reboot {
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        downtime: Duration,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum FaultCmd {
    /// Add a rule. ACTION: hang, drop-before-effect, drop-after-effect, disk-full,
    /// reject-auth, host-key-change, close-after-ident, latency=500ms, reboot=5s,
    /// handshake-delay=1s, session-limit=2, exit-status=1|none, error-text=TEXT,
    /// garble=lf-line-endings|truncate:10|width:40|..., or the rule's JSON action.
    Add {
        action: String,
        /// Regex on the command line (or the user name for reject-auth).
        #[arg(long)]
        command: Option<String>,
        /// Skip the first N matches.
        #[arg(long, default_value_t = 0)]
        after: u32,
        /// Fire N times (default: until removed).
        #[arg(long)]
        times: Option<u32>,
    },
    /// List rules with their hit counts.
    List,
    /// Remove one rule.
    Remove { id: u64 },
    /// Remove every rule.
    Clear,
}
