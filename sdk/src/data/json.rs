//! Connect values as JSON text, the way a schemaless JsonConverter writes them: structs and
//! string-keyed maps as objects, bytes as base64, other maps as `[key, value]` pairs.

use super::Value;

/// Appends `value` as JSON to `out`.
pub fn write_value(value: &Value, out: &mut String) {
    use std::fmt::Write as _;
    match value {
        Value::Null => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int8(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Int16(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Int32(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Int64(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Float32(v) => write_float(f64::from(*v), out),
        Value::Float64(v) => write_float(*v, out),
        Value::String(s) => write_string(s, out),
        Value::Bytes(b) => {
            out.push('"');
            out.push_str(&base64(b));
            out.push('"');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            let string_keys = entries.iter().all(|(k, _)| matches!(k, Value::String(_)));
            if string_keys {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_value(k, out);
                    out.push(':');
                    write_value(v, out);
                }
                out.push('}');
            } else {
                out.push('[');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('[');
                    write_value(k, out);
                    out.push(',');
                    write_value(v, out);
                    out.push(']');
                }
                out.push(']');
            }
        }
        Value::Struct(s) => {
            out.push('{');
            for (i, (name, v)) in s.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(name, out);
                out.push(':');
                write_value(v, out);
            }
            out.push('}');
        }
    }
}

/// `value` as JSON text.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

fn write_float(v: f64, out: &mut String) {
    use std::fmt::Write as _;
    if v.is_finite() {
        let _ = write!(out, "{v:?}");
    } else {
        out.push_str("null");
    }
}

/// Appends `s` as a JSON string literal.
pub fn write_string(s: &str, out: &mut String) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Schema, SchemaType, Struct};
    use std::sync::Arc;

    #[test]
    fn writes_structs_maps_bytes_and_escapes() {
        let schema = Arc::new(
            Schema::structure()
                .field("a", Schema::new(SchemaType::String))
                .field("b", Schema::new(SchemaType::Bytes)),
        );
        let s = Struct::from_values(schema, vec!["q\"\n".into(), Value::Bytes(vec![1, 0xf4])])
            .expect("struct");
        assert_eq!(to_string(&Value::Struct(s)), r#"{"a":"q\"\n","b":"AfQ="}"#);
        let m = Value::Map(vec![(Value::Int32(1), Value::Float64(0.5))]);
        assert_eq!(to_string(&m), "[[1,0.5]]");
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
    }
}
