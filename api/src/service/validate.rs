//! Checks on identifiers and metadata shared by every adapter.

use std::collections::BTreeMap;

use crate::error::ServiceError;

/// Longest subject or record id, in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// Most metadata entries per record.
pub const MAX_METADATA_ENTRIES: usize = 64;
/// Longest metadata key, in bytes.
pub const MAX_METADATA_KEY_BYTES: usize = 128;
/// Longest metadata value, in bytes.
pub const MAX_METADATA_VALUE_BYTES: usize = 1024;

/// A subject or record id: 1 to 256 bytes, no control characters.
pub fn id(field: &str, value: &str) -> Result<(), ServiceError> {
    if value.is_empty() {
        return Err(ServiceError::InvalidArgument(format!("{field} is required")));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(ServiceError::InvalidArgument(format!(
            "{field} is {} bytes; the limit is {MAX_ID_BYTES}",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ServiceError::InvalidArgument(format!(
            "{field} contains a control character"
        )));
    }
    Ok(())
}

/// Metadata within the size limits.
pub fn metadata(field: &str, m: &BTreeMap<String, String>) -> Result<(), ServiceError> {
    if m.len() > MAX_METADATA_ENTRIES {
        return Err(ServiceError::InvalidArgument(format!(
            "{field} has {} entries; the limit is {MAX_METADATA_ENTRIES}",
            m.len()
        )));
    }
    for (k, v) in m {
        if k.is_empty() || k.len() > MAX_METADATA_KEY_BYTES {
            return Err(ServiceError::InvalidArgument(format!(
                "{field} key {k:?} must be 1 to {MAX_METADATA_KEY_BYTES} bytes"
            )));
        }
        if v.len() > MAX_METADATA_VALUE_BYTES {
            return Err(ServiceError::InvalidArgument(format!(
                "{field}[{k:?}] is {} bytes; the limit is {MAX_METADATA_VALUE_BYTES}",
                v.len()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_metadata_limits() {
        assert!(id("subject_id", "alice").is_ok());
        assert!(
            id("subject_id", "")
                .unwrap_err()
                .to_string()
                .contains("subject_id is required")
        );
        assert!(id("record_id", &"x".repeat(257)).is_err());
        assert!(id("record_id", "a\nb").is_err());
        let big: BTreeMap<String, String> = (0..65).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(metadata("metadata", &big).is_err());
        assert!(metadata("metadata", &[("k".to_string(), "v".repeat(2000))].into()).is_err());
    }
}
