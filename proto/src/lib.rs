//! Generated protobuf/gRPC code for rds-csi.
//!
//! - [`csi::v1`]: the Container Storage Interface as stated by this project in
//!   `csi/v1/csi.proto`, wire-compatible with CSI spec v1.12.0 (checked by
//!   `tests/wire_compat.rs`; see proto/README.md).
//! - [`rds::agent::v1`], [`rds::attachment::v1`], [`rds::event::v1`]: the
//!   internal bus (docs/ARCHITECTURE.md §4); [`rds::common::v1`]: messages
//!   they share (`PvcRef`).

#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod csi {
    pub mod v1 {
        tonic::include_proto!("csi.v1");
    }
}

pub mod rds {
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("rds.common.v1");
        }
    }
    pub mod agent {
        pub mod v1 {
            tonic::include_proto!("rds.agent.v1");
        }
    }
    pub mod attachment {
        pub mod v1 {
            tonic::include_proto!("rds.attachment.v1");
        }
    }
    pub mod event {
        pub mod v1 {
            tonic::include_proto!("rds.event.v1");
        }
    }
}

/// Encoded `FileDescriptorSet` of every proto above (for reflection and tests).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("rds_descriptor");

pub use rds::agent::v1 as agent;
pub use rds::attachment::v1 as attachment;
pub use rds::common::v1 as common;
pub use rds::event::v1 as event;
