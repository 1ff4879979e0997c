//! The parameter frame: a statement's bound parameters as one `list<u8>`, which crosses
//! the component boundary as a single copy (`sql.connection.submit-encoded`). A multi-row
//! INSERT of a thousand rows has thousands of parameters; passed as `list<sql-value>`,
//! each text would be allocated and copied on its own on each side of the boundary.
//!
//! The format is specified in `wit/plugin/BATCH-FORMAT.md` ("The parameter frame"): per
//! parameter a tag byte, then its payload.

use std::borrow::Cow;

use super::SqlValue;

/// A bound parameter whose text or bytes may be borrowed, e.g. from a record's field: a
/// plugin builds rows of a batch's records and passes their text on without a copy of its
/// own. [`SqlValue`] is the owned form.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam<'a> {
    Null,
    Boolean(bool),
    Int(i64),
    /// Unsigned 64-bit columns (MySQL `BIGINT UNSIGNED`).
    Uint(u64),
    Double(f64),
    Text(Cow<'a, str>),
    Bytes(Cow<'a, [u8]>),
    /// An exact decimal as text, e.g. `-12.340`.
    Decimal(Cow<'a, str>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since midnight.
    Time(i64),
    /// Microseconds since 1970-01-01T00:00:00, in the database's zone.
    Timestamp(i64),
}

impl<'a> From<&'a SqlValue> for SqlParam<'a> {
    fn from(value: &'a SqlValue) -> SqlParam<'a> {
        match value {
            SqlValue::Null => SqlParam::Null,
            SqlValue::Boolean(b) => SqlParam::Boolean(*b),
            SqlValue::Int(i) => SqlParam::Int(*i),
            SqlValue::Uint(u) => SqlParam::Uint(*u),
            SqlValue::Double(f) => SqlParam::Double(*f),
            SqlValue::Text(s) => SqlParam::Text(Cow::Borrowed(s)),
            SqlValue::Bytes(b) => SqlParam::Bytes(Cow::Borrowed(b)),
            SqlValue::Decimal(s) => SqlParam::Decimal(Cow::Borrowed(s)),
            SqlValue::Date(d) => SqlParam::Date(*d),
            SqlValue::Time(t) => SqlParam::Time(*t),
            SqlValue::Timestamp(t) => SqlParam::Timestamp(*t),
        }
    }
}

impl<'a, 'b> From<&'b SqlParam<'a>> for SqlParam<'b> {
    fn from(param: &'b SqlParam<'a>) -> SqlParam<'b> {
        param.borrowed()
    }
}

impl SqlParam<'_> {
    /// The same parameter, borrowing its text or bytes from this one.
    pub fn borrowed(&self) -> SqlParam<'_> {
        match self {
            SqlParam::Null => SqlParam::Null,
            SqlParam::Boolean(b) => SqlParam::Boolean(*b),
            SqlParam::Int(i) => SqlParam::Int(*i),
            SqlParam::Uint(u) => SqlParam::Uint(*u),
            SqlParam::Double(f) => SqlParam::Double(*f),
            SqlParam::Text(s) => SqlParam::Text(Cow::Borrowed(s)),
            SqlParam::Bytes(b) => SqlParam::Bytes(Cow::Borrowed(b)),
            SqlParam::Decimal(s) => SqlParam::Decimal(Cow::Borrowed(s)),
            SqlParam::Date(d) => SqlParam::Date(*d),
            SqlParam::Time(t) => SqlParam::Time(*t),
            SqlParam::Timestamp(t) => SqlParam::Timestamp(*t),
        }
    }

    /// The same parameter owning its text or bytes.
    pub fn into_owned(self) -> SqlParam<'static> {
        match self {
            SqlParam::Null => SqlParam::Null,
            SqlParam::Boolean(b) => SqlParam::Boolean(b),
            SqlParam::Int(i) => SqlParam::Int(i),
            SqlParam::Uint(u) => SqlParam::Uint(u),
            SqlParam::Double(f) => SqlParam::Double(f),
            SqlParam::Text(s) => SqlParam::Text(Cow::Owned(s.into_owned())),
            SqlParam::Bytes(b) => SqlParam::Bytes(Cow::Owned(b.into_owned())),
            SqlParam::Decimal(s) => SqlParam::Decimal(Cow::Owned(s.into_owned())),
            SqlParam::Date(d) => SqlParam::Date(d),
            SqlParam::Time(t) => SqlParam::Time(t),
            SqlParam::Timestamp(t) => SqlParam::Timestamp(t),
        }
    }

    /// A text's or a decimal's text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            SqlParam::Text(s) | SqlParam::Decimal(s) => Some(s),
            _ => None,
        }
    }

    /// As an integer: an int, an unsigned int that fits, a boolean, or text that parses.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            SqlParam::Int(i) => Some(*i),
            SqlParam::Uint(u) => i64::try_from(*u).ok(),
            SqlParam::Boolean(b) => Some(i64::from(*b)),
            SqlParam::Text(s) | SqlParam::Decimal(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The owned form.
    pub fn to_value(&self) -> SqlValue {
        match self {
            SqlParam::Null => SqlValue::Null,
            SqlParam::Boolean(b) => SqlValue::Boolean(*b),
            SqlParam::Int(i) => SqlValue::Int(*i),
            SqlParam::Uint(u) => SqlValue::Uint(*u),
            SqlParam::Double(f) => SqlValue::Double(*f),
            SqlParam::Text(s) => SqlValue::Text(s.clone().into_owned()),
            SqlParam::Bytes(b) => SqlValue::Bytes(b.clone().into_owned()),
            SqlParam::Decimal(s) => SqlValue::Decimal(s.clone().into_owned()),
            SqlParam::Date(d) => SqlValue::Date(*d),
            SqlParam::Time(t) => SqlValue::Time(*t),
            SqlParam::Timestamp(t) => SqlValue::Timestamp(*t),
        }
    }
}

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT: u8 = 3;
const UINT: u8 = 4;
const DOUBLE: u8 = 5;
const TEXT: u8 = 6;
const BYTES: u8 = 7;
const DECIMAL: u8 = 8;
const DATE: u8 = 9;
const TIME: u8 = 10;
const TIMESTAMP: u8 = 11;

fn put_len_prefixed(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    // A parameter of 4 GiB or more cannot be sent; its length is cut off and the host
    // refuses the frame as truncated.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.push(tag);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Appends one parameter to a frame.
pub fn encode_param(param: &SqlParam<'_>, out: &mut Vec<u8>) {
    match param {
        SqlParam::Null => out.push(NULL),
        SqlParam::Boolean(false) => out.push(FALSE),
        SqlParam::Boolean(true) => out.push(TRUE),
        SqlParam::Int(i) => {
            out.push(INT);
            out.extend_from_slice(&i.to_le_bytes());
        }
        SqlParam::Uint(u) => {
            out.push(UINT);
            out.extend_from_slice(&u.to_le_bytes());
        }
        SqlParam::Double(f) => {
            out.push(DOUBLE);
            out.extend_from_slice(&f.to_le_bytes());
        }
        SqlParam::Text(s) => put_len_prefixed(out, TEXT, s.as_bytes()),
        SqlParam::Bytes(b) => put_len_prefixed(out, BYTES, b),
        SqlParam::Decimal(s) => put_len_prefixed(out, DECIMAL, s.as_bytes()),
        SqlParam::Date(d) => {
            out.push(DATE);
            out.extend_from_slice(&d.to_le_bytes());
        }
        SqlParam::Time(t) => {
            out.push(TIME);
            out.extend_from_slice(&t.to_le_bytes());
        }
        SqlParam::Timestamp(t) => {
            out.push(TIMESTAMP);
            out.extend_from_slice(&t.to_le_bytes());
        }
    }
}

/// A frame of `params`.
pub fn encode<'p, P: Into<SqlParam<'p>>>(params: impl IntoIterator<Item = P>) -> Vec<u8> {
    let params = params.into_iter();
    // Room for the numbers and short texts of a typical row; longer ones grow it.
    let mut out = Vec::with_capacity(params.size_hint().0 * 16);
    for param in params {
        encode_param(&param.into(), &mut out);
    }
    out
}

/// The parameters of a frame, in order, borrowing their text and bytes from it; a
/// malformed frame yields one error, naming the byte where it goes wrong, and ends.
pub fn decode(frame: &[u8]) -> Decoder<'_> {
    Decoder { frame, at: 0 }
}

/// See [`decode`].
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    frame: &'a [u8],
    at: usize,
}

impl<'a> Decoder<'a> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let bytes = self.frame.get(self.at..self.at + N)?.try_into().ok()?;
        self.at += N;
        Some(bytes)
    }

    fn len_prefixed(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(u32::from_le_bytes(self.take()?)).ok()?;
        let bytes = self.frame.get(self.at..self.at.checked_add(len)?)?;
        self.at += len;
        Some(bytes)
    }

    fn text(&mut self, tag_at: usize) -> Result<Cow<'a, str>, String> {
        let bytes = self.len_prefixed().ok_or_else(|| truncated(tag_at))?;
        std::str::from_utf8(bytes)
            .map(Cow::Borrowed)
            .map_err(|_| format!("the parameter at byte {tag_at} of the frame is not UTF-8"))
    }

    fn param(&mut self, tag: u8, tag_at: usize) -> Result<SqlParam<'a>, String> {
        let short = || truncated(tag_at);
        Ok(match tag {
            NULL => SqlParam::Null,
            FALSE => SqlParam::Boolean(false),
            TRUE => SqlParam::Boolean(true),
            INT => SqlParam::Int(i64::from_le_bytes(self.take().ok_or_else(short)?)),
            UINT => SqlParam::Uint(u64::from_le_bytes(self.take().ok_or_else(short)?)),
            DOUBLE => SqlParam::Double(f64::from_le_bytes(self.take().ok_or_else(short)?)),
            TEXT => SqlParam::Text(self.text(tag_at)?),
            BYTES => SqlParam::Bytes(Cow::Borrowed(self.len_prefixed().ok_or_else(short)?)),
            DECIMAL => SqlParam::Decimal(self.text(tag_at)?),
            DATE => SqlParam::Date(i32::from_le_bytes(self.take().ok_or_else(short)?)),
            TIME => SqlParam::Time(i64::from_le_bytes(self.take().ok_or_else(short)?)),
            TIMESTAMP => SqlParam::Timestamp(i64::from_le_bytes(self.take().ok_or_else(short)?)),
            other => {
                return Err(format!(
                    "unknown parameter tag {other} at byte {tag_at} of the frame"
                ));
            }
        })
    }
}

fn truncated(tag_at: usize) -> String {
    format!("the parameter at byte {tag_at} of the frame is cut off")
}

impl<'a> Iterator for Decoder<'a> {
    type Item = Result<SqlParam<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let tag_at = self.at;
        let tag = *self.frame.get(tag_at)?;
        self.at += 1;
        let param = self.param(tag, tag_at);
        if param.is_err() {
            // One error, then nothing: the rest of the frame cannot be read.
            self.at = self.frame.len();
        }
        Some(param)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<SqlValue> {
        vec![
            SqlValue::Null,
            SqlValue::Boolean(false),
            SqlValue::Boolean(true),
            SqlValue::Int(-42),
            SqlValue::Uint(u64::MAX),
            SqlValue::Double(-0.5),
            SqlValue::Text("grüße, 'quoted' \"text\"".into()),
            SqlValue::Text(String::new()),
            SqlValue::Bytes(vec![0, 255, 7]),
            SqlValue::Decimal("-12.340".into()),
            SqlValue::Date(-1),
            SqlValue::Time(86_399_999_999),
            SqlValue::Timestamp(i64::MIN),
        ]
    }

    #[test]
    fn every_kind_round_trips_borrowing_from_the_frame() {
        let values = every_kind();
        let frame = encode(values.iter().map(SqlParam::from));
        let decoded: Vec<SqlParam<'_>> = decode(&frame)
            .collect::<Result<_, _>>()
            .expect("a well-formed frame");
        assert!(
            decoded.iter().all(|p| !matches!(
                p,
                SqlParam::Text(Cow::Owned(_)) | SqlParam::Bytes(Cow::Owned(_))
            )),
            "text and bytes borrow from the frame"
        );
        let back: Vec<SqlValue> = decoded.iter().map(SqlParam::to_value).collect();
        assert_eq!(back, values);
        assert_eq!(decode(&[]).count(), 0, "an empty frame has no parameters");
    }

    #[test]
    fn malformed_frames_are_one_error_naming_the_byte() {
        let frame = encode([SqlParam::Int(1), SqlParam::Text("abc".into())]);
        // Cut inside the text: the int reads, then the text is cut off.
        let cut: Vec<_> = decode(&frame[..frame.len() - 1]).collect();
        assert_eq!(cut.len(), 2);
        assert_eq!(cut[0], Ok(SqlParam::Int(1)));
        assert_eq!(
            cut[1],
            Err("the parameter at byte 9 of the frame is cut off".to_owned())
        );
        let unknown: Vec<_> = decode(&[INT, 0, 0, 0, 0, 0, 0, 0, 0, 99, NULL]).collect();
        assert_eq!(
            unknown[1],
            Err("unknown parameter tag 99 at byte 9 of the frame".to_owned())
        );
        assert_eq!(unknown.len(), 2, "nothing is read after an error");
        let not_utf8 = [TEXT, 2, 0, 0, 0, 0xff, 0xfe];
        assert_eq!(
            decode(&not_utf8).next(),
            Some(Err(
                "the parameter at byte 0 of the frame is not UTF-8".to_owned()
            ))
        );
        // A length past the end, including one that overflows, and a number cut off.
        for cut in [&[BYTES, 0xff, 0xff, 0xff, 0xff, 1][..], &[DATE, 1, 2]] {
            let first = decode(cut).next();
            assert!(matches!(first, Some(Err(_))), "{first:?}");
        }
    }
}
