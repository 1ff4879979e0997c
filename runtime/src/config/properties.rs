//! Java `.properties` files, as `java.util.Properties.load` reads them: `=`, `:` or
//! white space between key and value, `#` and `!` comments, backslash line continuations,
//! and the `\t \n \r \f \uXXXX` escapes.

use std::collections::BTreeMap;

/// A malformed properties file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {message}")]
pub struct PropertiesError {
    pub line: usize,
    pub message: String,
}

/// Joins continued lines into logical lines, remembering where each started.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = match &current {
            Some(_) => raw.trim_start(),
            None => {
                let trimmed = raw.trim_start();
                if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
                    continue;
                }
                trimmed
            }
        };
        let trailing = line.chars().rev().take_while(|&c| c == '\\').count();
        let continues = trailing % 2 == 1;
        let content = if continues {
            &line[..line.len() - 1]
        } else {
            line
        };
        let entry = current.get_or_insert_with(|| (index + 1, String::new()));
        entry.1.push_str(content);
        if !continues && let Some(done) = current.take() {
            out.push(done);
        }
    }
    if let Some(done) = current.take() {
        out.push(done);
    }
    out
}

fn unescape(s: &str, line: usize) -> Result<String, PropertiesError> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .ok_or_else(|| PropertiesError {
                        line,
                        message: format!("malformed \\uxxxx encoding: \\u{hex}"),
                    })?;
                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

/// Splits a logical line into its raw key and raw value.
fn split_entry(line: &str) -> (&str, &str) {
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' => return (&line[..i], line[i + 1..].trim_start()),
            c if c.is_whitespace() => {
                let rest = line[i..].trim_start();
                let rest = rest
                    .strip_prefix('=')
                    .or_else(|| rest.strip_prefix(':'))
                    .unwrap_or(rest);
                return (&line[..i], rest.trim_start());
            }
            _ => {}
        }
    }
    (line, "")
}

/// Parses properties text. Later keys win, as in Java.
///
/// # Errors
/// On a malformed `\u` escape, naming the line.
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, PropertiesError> {
    let mut map = BTreeMap::new();
    for (line, content) in logical_lines(text) {
        let (key, value) = split_entry(&content);
        map.insert(unescape(key, line)?, unescape(value, line)?);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_java_properties_syntax() {
        let text = "# comment\n! also a comment\n\
            bootstrap.servers=localhost:9092\n\
            key.converter : org.apache.kafka.connect.json.JsonConverter\n\
            name  spaced\n\
            list=a,\\\n    b,\\\n    c\n\
            escaped\\=key=v\\tw\n\
            unicode=caf\\u00e9\n\
            empty=\n\
            path=C:\\\\temp\n";
        let map = parse(text).expect("valid");
        assert_eq!(map["bootstrap.servers"], "localhost:9092");
        assert_eq!(
            map["key.converter"],
            "org.apache.kafka.connect.json.JsonConverter"
        );
        assert_eq!(map["name"], "spaced");
        assert_eq!(map["list"], "a,b,c");
        assert_eq!(map["escaped=key"], "v\tw");
        assert_eq!(map["unicode"], "café");
        assert_eq!(map["empty"], "");
        assert_eq!(map["path"], "C:\\temp");
    }

    #[test]
    fn bad_unicode_escape_names_the_line() {
        let err = parse("a=1\nb=\\u12").expect_err("malformed");
        assert_eq!(err.line, 2);
    }
}
