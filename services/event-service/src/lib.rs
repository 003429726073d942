//! event-service
