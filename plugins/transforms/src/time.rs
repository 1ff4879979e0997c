//! Time: `TimestampConverter$Key` / `$Value`, `TimestampRouter`, and the subset of Java's
//! `SimpleDateFormat` patterns they take (always in UTC, as Kafka sets it).

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, Timelike};
use wasmconnect_sdk::config::ConfigIssue;
use wasmconnect_sdk::data::{Field, logical};
use wasmconnect_sdk::prelude::*;

use crate::util::{
    SchemaMemo, outcome, put, require_map, require_struct, struct_data, struct_like, take,
};
use crate::{Part, Smt};

const DAY_MS: i64 = 86_400_000;

/// One piece of a date pattern.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Literal(String),
    /// A pattern letter and how many times it repeats.
    Letter(char, usize),
}

/// A compiled `SimpleDateFormat` pattern: `y M d H h k K m s S E a z Z X` and quoted text.
#[derive(Debug, Clone)]
pub struct DateFormat {
    pattern: String,
    tokens: Vec<Token>,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

fn numeric(letter: char, count: usize) -> bool {
    match letter {
        'M' => count < 3,
        'y' | 'd' | 'H' | 'h' | 'k' | 'K' | 'm' | 's' | 'S' => true,
        _ => false,
    }
}

impl DateFormat {
    /// Compiles a pattern.
    ///
    /// # Errors
    /// An unsupported letter or an unterminated quote, named.
    pub fn new(pattern: &str) -> Result<DateFormat, String> {
        let mut tokens = Vec::new();
        let chars: Vec<char> = pattern.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("Unterminated quote in pattern {pattern}")),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            text.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&c) => {
                            text.push(c);
                            i += 1;
                        }
                    }
                }
                // '' outside a quoted run is a literal quote.
                tokens.push(Token::Literal(if text.is_empty() {
                    "'".into()
                } else {
                    text
                }));
            } else if c.is_ascii_alphabetic() {
                if !"yMdHhkKmsSEazZX".contains(c) {
                    return Err(format!("Illegal pattern character '{c}'"));
                }
                let mut count = 1;
                while chars.get(i + count) == Some(&c) {
                    count += 1;
                }
                tokens.push(Token::Letter(c, count));
                i += count;
            } else {
                tokens.push(Token::Literal(c.to_string()));
                i += 1;
            }
        }
        Ok(DateFormat {
            pattern: pattern.to_owned(),
            tokens,
        })
    }

    /// Formats milliseconds since the epoch in UTC.
    pub fn format(&self, millis: i64) -> String {
        let Some(t) = DateTime::from_timestamp_millis(millis) else {
            return millis.to_string();
        };
        let mut out = String::new();
        let pad = |out: &mut String, v: i64, n: usize| out.push_str(&format!("{v:0n$}"));
        for token in &self.tokens {
            match *token {
                Token::Literal(ref s) => out.push_str(s),
                Token::Letter('y', 2) => pad(&mut out, i64::from(t.year()).rem_euclid(100), 2),
                Token::Letter('y', n) => pad(&mut out, i64::from(t.year()), n),
                Token::Letter('M', n) if n >= 4 => out.push_str(MONTHS[t.month0() as usize]),
                Token::Letter('M', 3) => out.push_str(&MONTHS[t.month0() as usize][..3]),
                Token::Letter('M', n) => pad(&mut out, i64::from(t.month()), n),
                Token::Letter('d', n) => pad(&mut out, i64::from(t.day()), n),
                Token::Letter('H', n) => pad(&mut out, i64::from(t.hour()), n),
                Token::Letter('k', n) => {
                    pad(
                        &mut out,
                        i64::from(if t.hour() == 0 { 24 } else { t.hour() }),
                        n,
                    );
                }
                Token::Letter('K', n) => pad(&mut out, i64::from(t.hour() % 12), n),
                Token::Letter('h', n) => {
                    let h = t.hour() % 12;
                    pad(&mut out, i64::from(if h == 0 { 12 } else { h }), n);
                }
                Token::Letter('m', n) => pad(&mut out, i64::from(t.minute()), n),
                Token::Letter('s', n) => pad(&mut out, i64::from(t.second()), n),
                Token::Letter('S', n) => pad(&mut out, millis.rem_euclid(1000), n),
                Token::Letter('E', n) => {
                    let day = DAYS[t.weekday().num_days_from_monday() as usize];
                    out.push_str(if n >= 4 { day } else { &day[..3] });
                }
                Token::Letter('a', _) => out.push_str(if t.hour() < 12 { "AM" } else { "PM" }),
                Token::Letter('z', _) => out.push_str("UTC"),
                Token::Letter('Z', _) => out.push_str("+0000"),
                Token::Letter('X', _) => out.push('Z'),
                Token::Letter(..) => {}
            }
        }
        out
    }

    /// Parses text in this pattern as a UTC time, to milliseconds since the epoch.
    ///
    /// # Errors
    /// Kafka's message when the text does not match.
    pub fn parse(&self, text: &str) -> Result<i64, String> {
        self.parse_fields(text).ok_or_else(|| {
            format!(
                "Could not parse timestamp: value ({text}) does not match pattern ({})",
                self.pattern
            )
        })
    }

    fn parse_fields(&self, text: &str) -> Option<i64> {
        let (mut year, mut month, mut day) = (1970_i64, 1_i64, 1_i64);
        let (mut hour, mut minute, mut second, mut milli) = (0_i64, 0_i64, 0_i64, 0_i64);
        let (mut pm, mut offset_minutes) = (None, 0_i64);
        let mut rest = text;
        for (i, token) in self.tokens.iter().enumerate() {
            match *token {
                Token::Literal(ref s) => rest = rest.strip_prefix(s.as_str())?,
                Token::Letter(c, n) if numeric(c, n) => {
                    let adjacent = matches!(self.tokens.get(i + 1), Some(Token::Letter(c2, n2)) if numeric(*c2, *n2));
                    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                    let take = if adjacent { n.min(digits) } else { digits };
                    if take == 0 {
                        return None;
                    }
                    let v: i64 = rest[..take].parse().ok()?;
                    rest = &rest[take..];
                    match c {
                        'y' if n == 2 && take == 2 => year = 2000 + v,
                        'y' => year = v,
                        'M' => month = v,
                        'd' => day = v,
                        'H' | 'k' => hour = v % 24,
                        'h' | 'K' => hour = v % 12,
                        'm' => minute = v,
                        's' => second = v,
                        _ => milli = v,
                    }
                }
                Token::Letter('M', _) => {
                    let (index, len) = MONTHS.iter().enumerate().find_map(|(i, m)| {
                        if rest.starts_with(m) {
                            Some((i, m.len()))
                        } else if rest.starts_with(&m[..3]) {
                            Some((i, 3))
                        } else {
                            None
                        }
                    })?;
                    month = i64::try_from(index).ok()? + 1;
                    rest = &rest[len..];
                }
                Token::Letter('E', _) => {
                    let len = DAYS.iter().find_map(|d| {
                        if rest.starts_with(d) {
                            Some(d.len())
                        } else {
                            rest.starts_with(&d[..3]).then_some(3)
                        }
                    })?;
                    rest = &rest[len..];
                }
                Token::Letter('a', _) => {
                    if let Some(r) = rest.strip_prefix("AM") {
                        pm = Some(false);
                        rest = r;
                    } else {
                        rest = rest.strip_prefix("PM")?;
                        pm = Some(true);
                    }
                }
                Token::Letter(_, _) => {
                    // A zone: Z, UTC/GMT, or +hh[:]mm.
                    if let Some(r) = rest.strip_prefix('Z') {
                        rest = r;
                    } else if let Some(r) = rest
                        .strip_prefix("UTC")
                        .or_else(|| rest.strip_prefix("GMT"))
                    {
                        rest = r;
                    } else {
                        let sign = match rest.as_bytes().first()? {
                            b'+' => 1,
                            b'-' => -1,
                            _ => return None,
                        };
                        let digits: String = rest[1..]
                            .chars()
                            .take(5)
                            .filter(char::is_ascii_digit)
                            .take(4)
                            .collect();
                        let used = rest[1..]
                            .char_indices()
                            .take_while(|(_, c)| c.is_ascii_digit() || *c == ':')
                            .count();
                        if digits.len() < 2 {
                            return None;
                        }
                        let h: i64 = digits[..2].parse().ok()?;
                        let m: i64 = digits.get(2..4).map_or(Some(0), |m| m.parse().ok())?;
                        offset_minutes = sign * (h * 60 + m);
                        rest = &rest[1 + used..];
                    }
                }
            }
        }
        if !rest.is_empty() {
            return None;
        }
        if pm == Some(true) {
            hour += 12;
        }
        let date = NaiveDate::from_ymd_opt(
            i32::try_from(year).ok()?,
            u32::try_from(month).ok()?,
            u32::try_from(day).ok()?,
        )?;
        if hour > 23 || minute > 59 || second > 59 || milli > 999 {
            return None;
        }
        let days = i64::from(date.num_days_from_ce()) - 719_163;
        Some(
            days * DAY_MS + ((hour * 60 + minute) * 60 + second) * 1000 + milli
                - offset_minutes * 60_000,
        )
    }
}

/// How Kafka's `Values` writes a Date, Time or Timestamp as a string.
pub fn iso_format(millis: i64, logical: Option<&str>) -> String {
    let pattern = match logical {
        Some(logical::DATE) => "yyyy-MM-dd",
        Some(logical::TIME) => "HH:mm:ss.SSS'Z'",
        _ => "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'",
    };
    DateFormat::new(pattern).map_or_else(|_| millis.to_string(), |f| f.format(millis))
}

// ---------------------------------------------------------------------------------------
// TimestampConverter

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Unix,
    Date,
    Time,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Precision {
    Seconds,
    Milliseconds,
    Microseconds,
    Nanoseconds,
}

impl Precision {
    fn to_millis(self, v: i64) -> i64 {
        match self {
            Precision::Seconds => v.saturating_mul(1000),
            Precision::Milliseconds => v,
            Precision::Microseconds => v / 1000,
            Precision::Nanoseconds => v / 1_000_000,
        }
    }

    fn of_millis(self, ms: i64) -> i64 {
        match self {
            Precision::Seconds => ms / 1000,
            Precision::Milliseconds => ms,
            Precision::Microseconds => ms.saturating_mul(1000),
            Precision::Nanoseconds => ms.saturating_mul(1_000_000),
        }
    }
}

/// `TimestampConverter$Key` / `$Value`: converts a timestamp (the whole key or value, or
/// one field) between strings, Unix epoch numbers, Date, Time and Timestamp.
#[derive(Debug)]
pub struct TimestampConverter {
    part: Part,
    field: Option<String>,
    target: Kind,
    format: Option<DateFormat>,
    precision: Precision,
    memo: SchemaMemo,
}

const CONVERTER_PURPOSE: &str = "converting timestamp formats";

impl TimestampConverter {
    pub fn build(config: &Config, part: Part) -> Result<Box<dyn Smt>, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let target = match config.get("target.type").map(str::trim) {
            Some("string") => Kind::String,
            Some("unix") => Kind::Unix,
            Some("Date") => Kind::Date,
            Some("Time") => Kind::Time,
            Some("Timestamp") => Kind::Timestamp,
            Some(other) => {
                issues.push(ConfigIssue::new(
                    "target.type",
                    format!("Invalid value {other} for configuration target.type: String must be one of: string, unix, Date, Time, Timestamp"),
                ));
                Kind::Timestamp
            }
            None => {
                issues.push(ConfigIssue::new(
                    "target.type",
                    "Missing required configuration \"target.type\" which has no default value.",
                ));
                Kind::Timestamp
            }
        };
        let format = match config
            .get("format")
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            Some(pattern) => match DateFormat::new(pattern) {
                Ok(f) => Some(f),
                Err(e) => {
                    issues.push(ConfigIssue::new(
                        "format",
                        format!("TimestampConverter requires a SimpleDateFormat-compatible pattern for string timestamps: {pattern} ({e})"),
                    ));
                    None
                }
            },
            None => {
                if target == Kind::String {
                    issues.push(ConfigIssue::new(
                        "format",
                        "TimestampConverter requires format option to be specified when using string timestamps",
                    ));
                }
                None
            }
        };
        let precision = match config.get("unix.precision").map(str::trim) {
            None | Some("milliseconds") => Precision::Milliseconds,
            Some("seconds") => Precision::Seconds,
            Some("microseconds") => Precision::Microseconds,
            Some("nanoseconds") => Precision::Nanoseconds,
            Some(other) => {
                issues.push(ConfigIssue::new(
                    "unix.precision",
                    format!("Invalid value {other} for configuration unix.precision: String must be one of: nanoseconds, microseconds, milliseconds, seconds"),
                ));
                Precision::Milliseconds
            }
        };
        crate::util::done(
            Box::new(TimestampConverter {
                part,
                field: config
                    .get("field")
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned),
                target,
                format,
                precision,
                memo: SchemaMemo::default(),
            }) as Box<dyn Smt>,
            issues,
        )
    }

    fn target_schema(&self, optional: bool) -> Schema {
        let s = match self.target {
            Kind::String => Schema::new(SchemaType::String),
            Kind::Unix => Schema::new(SchemaType::Int64),
            Kind::Date => Schema::date(),
            Kind::Time => Schema::time(),
            Kind::Timestamp => Schema::timestamp(),
        };
        if optional { s.optional() } else { s }
    }

    fn to_millis(&self, value: &Value, schema: Option<&Schema>) -> Result<i64, String> {
        let parse = |s: &str| {
            match &self.format {
            Some(f) => f.parse(s),
            None => Err("TimestampConverter requires format option to be specified when using string timestamps".into()),
        }
        };
        if let Some(schema) = schema {
            return match (schema.name.as_deref(), value) {
                (Some(logical::TIMESTAMP), Value::Int64(ms)) => Ok(*ms),
                (Some(logical::DATE), Value::Int32(days)) => Ok(i64::from(*days) * DAY_MS),
                (Some(logical::TIME), Value::Int32(ms)) => Ok(i64::from(*ms)),
                (None, Value::Int64(v)) => Ok(self.precision.to_millis(*v)),
                (None, Value::String(s)) => parse(s),
                _ => Err(format!(
                    "Schema {} does not correspond to a known timestamp type format",
                    schema
                        .name
                        .clone()
                        .unwrap_or_else(|| schema.schema_type.json_name().to_ascii_uppercase())
                )),
            };
        }
        match value {
            Value::String(s) => parse(s),
            v => v
                .as_i64()
                .map(|n| self.precision.to_millis(n))
                .ok_or_else(|| {
                    format!(
                        "TimestampConverter does not support {} objects as timestamps",
                        crate::util::java_class(v)
                    )
                }),
        }
    }

    fn convert(&self, value: &Value, schema: Option<&Schema>) -> Result<Value, String> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        let ms = self.to_millis(value, schema)?;
        Ok(match self.target {
            Kind::String => Value::String(
                self.format
                    .as_ref()
                    .map_or_else(|| ms.to_string(), |f| f.format(ms)),
            ),
            Kind::Unix => Value::Int64(self.precision.of_millis(ms)),
            Kind::Date => {
                Value::Int32(i32::try_from(ms.div_euclid(DAY_MS)).map_err(|e| e.to_string())?)
            }
            Kind::Time => {
                Value::Int32(i32::try_from(ms.rem_euclid(DAY_MS)).map_err(|e| e.to_string())?)
            }
            Kind::Timestamp => Value::Int64(ms),
        })
    }

    fn apply_to(&mut self, mut record: Record) -> Result<Record, String> {
        let data = take(&mut record, self.part);
        let converted = match (data.schema.clone(), self.field.clone()) {
            (None, None) => Data::schemaless(self.convert(data.value(), None)?),
            (Some(schema), None) => {
                let value = self.convert(data.value(), Some(&schema))?;
                Data::new(Arc::new(self.target_schema(schema.optional)), value)
            }
            (None, Some(field)) => {
                if data.is_null() {
                    data
                } else {
                    let mut entries = require_map(data.into_value(), CONVERTER_PURPOSE)?;
                    for (k, v) in &mut entries {
                        if k.as_str() == Some(&field) {
                            *v = self.convert(v, None)?;
                        }
                    }
                    Data::schemaless(Value::Map(entries))
                }
            }
            (Some(schema), Some(field)) => {
                let mut memo = std::mem::take(&mut self.memo);
                let updated = memo.get(&schema, |s| {
                    let mut out = struct_like(s);
                    out.optional = s.optional;
                    for f in &s.fields {
                        let fs = if f.name == field {
                            Arc::new(self.target_schema(f.schema.optional))
                        } else {
                            f.schema.clone()
                        };
                        out.fields.push(Field {
                            name: f.name.clone(),
                            schema: fs,
                        });
                    }
                    Ok(out)
                });
                self.memo = memo;
                let updated = updated?;
                let value = data.into_value();
                if value.is_null() {
                    Data::new(updated, Value::Null)
                } else {
                    let value = require_struct(value, CONVERTER_PURPOSE)?;
                    let mut values = value.into_values();
                    for (f, v) in schema.fields.iter().zip(values.iter_mut()) {
                        if f.name == field {
                            *v = self.convert(v, Some(&f.schema))?;
                        }
                    }
                    struct_data(updated, values)?
                }
            }
        };
        put(&mut record, self.part, converted);
        Ok(record)
    }
}

impl Smt for TimestampConverter {
    fn apply(&mut self, record: Record) -> Outcome {
        outcome(self.apply_to(record))
    }
}

// ---------------------------------------------------------------------------------------
// TimestampRouter

/// `TimestampRouter`: routes a record to a topic named from its topic and timestamp.
#[derive(Debug)]
pub struct TimestampRouter {
    topic_format: String,
    timestamp_format: DateFormat,
}

impl TimestampRouter {
    pub fn build(config: &Config, _part: Part) -> Result<Box<dyn Smt>, Vec<ConfigIssue>> {
        let topic_format = config
            .get("topic.format")
            .unwrap_or("${topic}-${timestamp}")
            .to_owned();
        let pattern = config.get("timestamp.format").unwrap_or("yyyyMMdd");
        let timestamp_format = DateFormat::new(pattern).map_err(|e| {
            vec![ConfigIssue::new(
                "timestamp.format",
                format!("Invalid value {pattern} for configuration timestamp.format: {e}"),
            )]
        })?;
        Ok(Box::new(TimestampRouter {
            topic_format,
            timestamp_format,
        }))
    }
}

impl Smt for TimestampRouter {
    fn apply(&mut self, mut record: Record) -> Outcome {
        let Some(ts) = record.timestamp else {
            return Outcome::Failed(format!(
                "Timestamp missing on record: topic={}, partition={:?}, offset={:?}",
                record.topic, record.partition, record.offset
            ));
        };
        let topic = self
            .topic_format
            .replace("${topic}", &record.topic)
            .replace("${timestamp}", &self.timestamp_format.format(ts));
        record.topic = topic.into();
        Outcome::Keep(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_patterns_format_and_parse_in_utc() {
        let f = DateFormat::new("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'").expect("pattern");
        // 2017-01-11T08:51:33.211Z, a value from Kafka's TimestampConverter tests' style.
        let ms = 1_484_124_693_211;
        assert_eq!(f.format(ms), "2017-01-11T08:51:33.211Z");
        assert_eq!(f.parse("2017-01-11T08:51:33.211Z"), Ok(ms));
        let compact = DateFormat::new("yyyyMMdd").expect("pattern");
        assert_eq!(compact.format(ms), "20170111");
        assert_eq!(compact.parse("20170111"), Ok(1_484_092_800_000));
        let zoned = DateFormat::new("yyyy-MM-dd HH:mm Z").expect("pattern");
        assert_eq!(zoned.parse("2017-01-11 10:51 +0200"), Ok(1_484_124_660_000));
        assert_eq!(
            DateFormat::new("dd MMM yyyy, EEE hh a")
                .expect("p")
                .format(ms),
            "11 Jan 2017, Wed 08 AM"
        );
        assert!(
            f.parse("2017-01-11")
                .expect_err("refused")
                .contains("does not match pattern")
        );
        assert!(DateFormat::new("yyyy-qq").is_err());
        assert!(DateFormat::new("'open").is_err());
    }
}
