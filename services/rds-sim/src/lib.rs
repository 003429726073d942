//! rds-sim
