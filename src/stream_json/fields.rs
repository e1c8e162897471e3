//! Lenient accessors of a line's fields: a field of an unexpected type reads as absent
//! instead of losing the line.

use serde_json::Value;

pub(super) fn get_str<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

pub(super) fn get_string(v: &Value, key: &str) -> String {
    get_str(v, key).unwrap_or_default().to_string()
}

pub(super) fn get_u64(v: &Value, key: &str) -> Option<u64> {
    let x = v.get(key)?;
    if let Some(n) = x.as_u64() {
        return Some(n);
    }
    if let Some(f) = x.as_f64().filter(|f| f.is_finite() && *f >= 0.0) {
        return Some(f.round() as u64);
    }
    x.as_str().and_then(|s| s.trim().parse().ok())
}

pub(super) fn get_f64(v: &Value, key: &str) -> Option<f64> {
    let x = v.get(key)?;
    x.as_f64()
        .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|f: &f64| f.is_finite())
}

pub(super) fn get_bool(v: &Value, key: &str) -> Option<bool> {
    v.get(key).and_then(Value::as_bool)
}

/// A string field, or the JSON text of a non-string one (`error` is a string today).
pub(super) fn get_text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}
