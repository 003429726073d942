//! rds-dataplane: the node role's engine.
//!
//! [`NodePlane`] stages, publishes, unpublishes, unstages, reports stats for
//! and expands volumes on this node over a [`DataPlane`] — NVMe/TCP to the
//! RDS ([`nvme::NvmePlane`]) or loop devices over rds-sim's files in local
//! mode ([`loopdev::LoopPlane`]). csi-frontend's Node service is a thin gRPC
//! layer over it; errors map to gRPC status in one place
//! ([`DataPlaneError::to_status`]).
//!
//! Every rule here is an incident of the Go driver (docs/safety.md §2,
//! §3): see [`node`] for where each lives.

pub mod breaker;
pub mod command;
pub mod dataplane;
pub mod device;
pub mod error;
pub mod events;
pub mod flags;
pub mod fs;
pub mod inuse;
pub mod loopdev;
pub mod metrics;
pub mod mountinfo;
pub mod node;
pub mod nvme;
pub mod paths;
pub mod scripted;
pub mod source;
pub mod state;
mod sys;
#[cfg(feature = "testing")]
pub mod testing;

pub use command::{Cmd, CmdError, CmdOutput, CommandRunner, SystemRunner};
pub use dataplane::{Attachment, Backend, DataPlane, OrphanReport};
pub use device::Device;
pub use error::{DataPlaneError, Result};
pub use events::{EventSink, NodeEvent, NodeEventKind, NoopEventSink, RecordingEventSink};
pub use flags::MountFlags;
pub use fs::FsType;
pub use loopdev::{LoopConfig, LoopPlane};
pub use metrics::NodeMetrics;
pub use node::{
    AccessType, ContentOrigin, ExpandOutcome, ExpandRequest, NodeConfig, NodePlane, PublishOutcome,
    PublishRequest, StageOutcome, StageRequest, StatsRequest, UnpublishOutcome, UnpublishRequest,
    UnstageOutcome, UnstageRequest, VolumeCondition, VolumeStats,
};
pub use nvme::{DEFAULT_MANAGED_NQN_PREFIX, NvmeConfig, NvmePlane};
pub use paths::NodePath;
pub use scripted::{Reply, ScriptedRunner};
pub use source::{BackendKind, LoopTarget, NvmeTarget, PvcRef, VolumeSource};
pub use sys::FsUsage;
