//! attachment-service
