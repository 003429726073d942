//! rds-dataplane
