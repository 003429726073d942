//! rds-agent
