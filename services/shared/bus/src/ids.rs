//! The id newtypes live in the dependency-free `rds-ids` crate so that
//! rds-routeros (pure, no bus) uses the same types; re-exported here so
//! `rds_bus::ids::*` and `rds_bus::{VolumeId, …}` keep working.

pub use rds_ids::*;
