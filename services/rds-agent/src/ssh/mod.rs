//! SSH towards the RDS: host-key pinning and one connection's exec.

pub mod connection;
pub mod hostkey;

pub use connection::{OUTPUT_CAP, RawOutput, SshConnection, SshTarget};
pub use hostkey::{HostKeyPolicy, fingerprint};
