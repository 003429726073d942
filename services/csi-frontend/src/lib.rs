//! csi-frontend: what kubelet and the CSI sidecars see. Speaks CSI v1
//! (Identity, Controller, Node) on a unix socket and turns each call
//! into bus requests to rds-agent and attachment-service, as the root span of
//! its trace (docs/ARCHITECTURE.md §1, §4, §5; docs/csi.md).
//!
//! - [`config`]: flags/env → validated [`Config`].
//! - [`start`]: run in-process (tests, `rdsctl`), the entry shape every
//!   service shares; [`cli`] runs the binary through `rds_bus::runner`.
//! - `controller/`: one module per concern; `identity`: Identity + Probe;
//!   `node/`: the Node service over rds-dataplane.
//! - `params`, `volume_context`, `capability`, `capacity`: the docs/csi.md contract.
//! - `error`: the one error type and its CSI status table.
//! - `deadline`, `guard`, `span`: per-call deadline, per-volume guard, root span.

pub mod authority;
pub mod backends;
pub mod capability;
pub mod capacity;
pub mod cli;
pub mod config;
pub mod controller;
pub mod deadline;
pub mod error;
pub mod guard;
pub mod identity;
pub mod ids;
pub mod known_nodes;
pub mod kube_nodes;
pub mod metrics;
pub mod node;
pub mod paging;
pub mod params;
pub mod server;
mod span;
pub mod spec;
pub mod validate;
pub mod volume_context;

pub use config::{Args, Config, DataPlaneKind, NodeRegistry, Role};
pub use error::FrontendError;
pub use server::{Deps, Running, start, start_with};
