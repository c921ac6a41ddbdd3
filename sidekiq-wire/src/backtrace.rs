//! The `error_backtrace` codec: Base64( zlib( JSON array of strings ) ).
//!
//! Sidekiq 7/8 decode it with `unpack1("m")` + `Zlib::Inflate` + JSON and crash on anything
//! else (a raw array, raw deflate); 6.4 also takes a raw array. We write strict base64 of
//! zlib-wrapped deflate and read strict base64, MIME base64 (6.4's `encode64`) or a raw array.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use std::io::{Read, Write};

/// A stored backtrace could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BacktraceError {
    /// Neither base64 nor a JSON array.
    #[error("error_backtrace is not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// Base64, but not zlib-compressed data.
    #[error("error_backtrace is not zlib data: {0}")]
    Zlib(#[from] std::io::Error),
    /// Decoded, but not a JSON array of strings.
    #[error("error_backtrace is not a JSON array of strings: {0}")]
    Json(#[from] serde_json::Error),
}

/// Encodes lines the way Sidekiq 7/8 store them.
pub fn encode(lines: &[String]) -> String {
    let json = serde_json::to_vec(lines).unwrap_or_else(|_| b"[]".to_vec());
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    // Writing into a Vec cannot fail.
    let _ = z.write_all(&json);
    let compressed = z.finish().unwrap_or_default();
    STANDARD.encode(compressed)
}

/// Decodes any format a Sidekiq version has written.
///
/// # Errors
/// When the value is neither a JSON array nor base64 of zlib-compressed JSON.
pub fn decode(stored: &str) -> Result<Vec<String>, BacktraceError> {
    let trimmed = stored.trim();
    if trimmed.starts_with('[') {
        return Ok(serde_json::from_str(trimmed)?);
    }
    let compact: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = STANDARD.decode(compact)?;
    let mut json = Vec::new();
    ZlibDecoder::new(&bytes[..]).read_to_end(&mut json)?;
    Ok(serde_json::from_slice(&json)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_strict_base64() {
        let lines = vec!["a.rb:1:in `x'".to_string(), "b.rs:2".to_string()];
        let enc = encode(&lines);
        assert!(!enc.contains('\n'));
        assert_eq!(decode(&enc).unwrap(), lines);
        // zlib header: 0x78 → base64 starts with "eJ"
        assert!(enc.starts_with("eJ"));
    }

    #[test]
    fn mime_base64_and_raw_arrays_decode() {
        let lines: Vec<String> = (0..40).map(|i| format!("frame number {i}")).collect();
        let enc = encode(&lines);
        let mime: String = enc
            .as_bytes()
            .chunks(60)
            .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
            .collect();
        assert_eq!(decode(&mime).unwrap(), lines);
        assert_eq!(decode(r#"["x"]"#).unwrap(), vec!["x".to_string()]);
        assert!(decode("!!!").is_err());
    }
}
