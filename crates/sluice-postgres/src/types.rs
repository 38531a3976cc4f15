//! PostgreSQL values in text output format, turned into [`Value`]s by type OID.
//!
//! pgoutput sends every column in its type's text output format (unless `binary` is on), so
//! this is where a `'t'` [`crate::pgoutput::Cell`] becomes a typed value. The text it expects
//! is what a session with `DateStyle = ISO` and `bytea_output = hex` (the defaults) prints;
//! the transport should pin those settings on the replication connection.
//!
//! The conversion never fails and never panics: a value of a known type that does not parse
//! as that type (another `DateStyle`, say) is kept as [`Value::Text`], unchanged, rather than
//! lost. Types sluice does not map (interval, inet, money, ranges, enums, domains, unknown
//! OIDs, ...) are [`Value::Text`] too.

mod array;
pub(crate) mod names;
#[cfg(test)]
mod tests;

use sluice_core::{CompactString, Value, format_compact};

/// OIDs of the built-in types sluice maps (from `pg_type.dat`; stable across releases).
pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const TIMETZ: u32 = 1266;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;

    pub const JSON_ARRAY: u32 = 199;
    pub const BOOL_ARRAY: u32 = 1000;
    pub const BYTEA_ARRAY: u32 = 1001;
    pub const CHAR_ARRAY: u32 = 1002;
    pub const NAME_ARRAY: u32 = 1003;
    pub const INT2_ARRAY: u32 = 1005;
    pub const INT4_ARRAY: u32 = 1007;
    pub const TEXT_ARRAY: u32 = 1009;
    pub const BPCHAR_ARRAY: u32 = 1014;
    pub const VARCHAR_ARRAY: u32 = 1015;
    pub const INT8_ARRAY: u32 = 1016;
    pub const FLOAT4_ARRAY: u32 = 1021;
    pub const FLOAT8_ARRAY: u32 = 1022;
    pub const OID_ARRAY: u32 = 1028;
    pub const TIMESTAMP_ARRAY: u32 = 1115;
    pub const DATE_ARRAY: u32 = 1182;
    pub const TIME_ARRAY: u32 = 1183;
    pub const TIMESTAMPTZ_ARRAY: u32 = 1185;
    pub const NUMERIC_ARRAY: u32 = 1231;
    pub const TIMETZ_ARRAY: u32 = 1270;
    pub const UUID_ARRAY: u32 = 2951;
    pub const JSONB_ARRAY: u32 = 3807;

    /// Every OID above: the types [`super::text_to_value`] maps.
    pub const MAPPED: [u32; 44] = [
        BOOL,
        BYTEA,
        CHAR,
        NAME,
        INT8,
        INT2,
        INT4,
        TEXT,
        OID,
        JSON,
        FLOAT4,
        FLOAT8,
        BPCHAR,
        VARCHAR,
        DATE,
        TIME,
        TIMESTAMP,
        TIMESTAMPTZ,
        TIMETZ,
        NUMERIC,
        UUID,
        JSONB,
        JSON_ARRAY,
        BOOL_ARRAY,
        BYTEA_ARRAY,
        CHAR_ARRAY,
        NAME_ARRAY,
        INT2_ARRAY,
        INT4_ARRAY,
        TEXT_ARRAY,
        BPCHAR_ARRAY,
        VARCHAR_ARRAY,
        INT8_ARRAY,
        FLOAT4_ARRAY,
        FLOAT8_ARRAY,
        OID_ARRAY,
        TIMESTAMP_ARRAY,
        DATE_ARRAY,
        TIME_ARRAY,
        TIMESTAMPTZ_ARRAY,
        NUMERIC_ARRAY,
        TIMETZ_ARRAY,
        UUID_ARRAY,
        JSONB_ARRAY,
    ];
}

/// The element type of the array types sluice maps.
pub fn array_element_type(array_oid: u32) -> Option<u32> {
    use oid::*;
    Some(match array_oid {
        BOOL_ARRAY => BOOL,
        BYTEA_ARRAY => BYTEA,
        CHAR_ARRAY => CHAR,
        NAME_ARRAY => NAME,
        INT2_ARRAY => INT2,
        INT4_ARRAY => INT4,
        INT8_ARRAY => INT8,
        TEXT_ARRAY => TEXT,
        BPCHAR_ARRAY => BPCHAR,
        VARCHAR_ARRAY => VARCHAR,
        FLOAT4_ARRAY => FLOAT4,
        FLOAT8_ARRAY => FLOAT8,
        OID_ARRAY => OID,
        TIMESTAMP_ARRAY => TIMESTAMP,
        DATE_ARRAY => DATE,
        TIME_ARRAY => TIME,
        TIMESTAMPTZ_ARRAY => TIMESTAMPTZ,
        NUMERIC_ARRAY => NUMERIC,
        TIMETZ_ARRAY => TIMETZ,
        UUID_ARRAY => UUID,
        JSON_ARRAY => JSON,
        JSONB_ARRAY => JSONB,
        _ => return None,
    })
}

/// Converts one non-null column value in PostgreSQL's text output format into a [`Value`].
///
/// | Type | Value |
/// |---|---|
/// | `bool` | `Bool` |
/// | `int2`, `int4`, `int8`, `oid` | `Int` |
/// | `float4`, `float8` | `Float` (including `NaN`, `Infinity`, `-Infinity`) |
/// | `numeric` | `Decimal`, the text exactly (including `NaN`, `Infinity`) |
/// | `text`, `varchar`, `bpchar`, `name`, `"char"` | `Text` |
/// | `bytea` (hex, or the older escape format) | `Bytes` |
/// | `json`, `jsonb` | `Json` |
/// | `date`, `time`, `timetz`, `timestamp`, `timestamptz` | `Date`, `Time`, `Timestamp`, `TimestampTz`, in ISO 8601 (`T` separator, `+HH:MM` offsets, BC years as negative astronomical years); `infinity` and `-infinity` stay `Text` |
/// | `uuid` | `Uuid` |
/// | arrays of the above | `Array`, nested per dimension; lower bounds other than 1 are dropped |
/// | anything else, or a malformed value | `Text`, unchanged |
///
/// Null and unchanged-TOAST cells never reach this function: they are
/// [`Value::Null`] and [`Value::Unchanged`] whatever the type.
pub fn text_to_value(type_oid: u32, text: &str) -> Value {
    convert(type_oid, text).unwrap_or_else(|| Value::Text(text.into()))
}

/// [`text_to_value`] for text the caller owns: text-like values take the string over instead
/// of copying it (the stream's hot path).
pub fn text_to_value_owned(type_oid: u32, text: String) -> Value {
    use oid::*;
    match type_oid {
        TEXT | VARCHAR | BPCHAR | NAME | CHAR => Value::Text(text.into()),
        NUMERIC if is_numeric(&text) => Value::Decimal(text.into()),
        _ => convert(type_oid, &text).unwrap_or_else(|| Value::Text(text.into())),
    }
}

fn convert(type_oid: u32, text: &str) -> Option<Value> {
    use oid::*;
    Some(match type_oid {
        BOOL => match text {
            "t" => Value::Bool(true),
            "f" => Value::Bool(false),
            _ => return None,
        },
        INT2 | INT4 | INT8 => Value::Int(text.parse().ok()?),
        OID => Value::Int(text.parse::<u32>().ok()?.into()),
        FLOAT4 | FLOAT8 => Value::Float(parse_float(text)?),
        NUMERIC => {
            is_numeric(text).then_some(())?;
            Value::Decimal(text.into())
        }
        TEXT | VARCHAR | BPCHAR | NAME | CHAR => Value::Text(text.into()),
        BYTEA => Value::Bytes(parse_bytea(text)?),
        JSON | JSONB => Value::Json(serde_json::from_str(text).ok()?),
        DATE => Value::Date(iso_date(text)?),
        TIME => {
            is_time(text).then_some(())?;
            Value::Time(text.into())
        }
        TIMETZ => Value::Time(iso_time_tz(text)?),
        TIMESTAMP => Value::Timestamp(iso_timestamp(text, false)?),
        TIMESTAMPTZ => Value::TimestampTz(iso_timestamp(text, true)?),
        UUID => {
            is_uuid(text).then_some(())?;
            Value::Uuid(text.to_ascii_lowercase().into())
        }
        _ => array::parse(array_element_type(type_oid)?, text)?,
    })
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        // Rust also accepts "inf" and "nan"; PostgreSQL never prints them.
        _ if text
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
        {
            text.parse().ok()
        }
        _ => None,
    }
}

/// `[-]digits[.digits][e[+-]digits]`, or the special values. Output never has an exponent,
/// but accepting one costs nothing.
fn is_numeric(text: &str) -> bool {
    if matches!(text, "NaN" | "Infinity" | "-Infinity") {
        return true;
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (unsigned, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = !(int.is_empty() && frac.is_empty()) && digits(int) && digits(frac);
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

fn parse_bytea(text: &str) -> Option<Vec<u8>> {
    if let Some(hex) = text.strip_prefix("\\x") {
        let hex = hex.as_bytes();
        if hex.len() % 2 != 0 {
            return None;
        }
        return hex
            .chunks_exact(2)
            .map(|pair| Some(hex_digit(pair[0])? << 4 | hex_digit(pair[1])?))
            .collect();
    }
    // The escape format (`bytea_output = escape`): `\\` and `\ooo` octal; the rest printable
    // ASCII.
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'\\' => match bytes.next()? {
                b'\\' => out.push(b'\\'),
                first @ b'0'..=b'3' => {
                    let mut value = first - b'0';
                    for _ in 0..2 {
                        let d = bytes.next().filter(|d| (b'0'..=b'7').contains(d))?;
                        value = value << 3 | (d - b'0');
                    }
                    out.push(value);
                }
                _ => return None,
            },
            0x20..=0x7e => out.push(b),
            _ => return None,
        }
    }
    Some(out)
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn is_uuid(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn all_digits(s: &str, len: std::ops::RangeInclusive<usize>) -> bool {
    len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// `YYYY-MM-DD[ BC]` with a 4+ digit year → ISO 8601; BC years become astronomical years
/// (1 BC is `0000`, 44 BC is `-0043`).
/// The shape nearly every value has (four-digit year, `+HH` offset as the pinned UTC session
/// prints it), converted with byte checks and one allocation; `None` sends anything else to
/// the general path. This runs once per timestamp column per row, so it matters.
fn iso_timestamp_common(text: &str, with_tz: bool) -> Option<CompactString> {
    let b = text.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let digit = |i: usize| b[i].is_ascii_digit();
    let shape = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
        .iter()
        .all(|&i| digit(i))
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':';
    if !shape {
        return None;
    }
    let mut end = 19;
    if b.get(19) == Some(&b'.') {
        end = 20;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        if end == 20 || end > 26 {
            return None;
        }
    }
    let rest = &b[end..];
    let offset_hh = with_tz
        && rest.len() == 3
        && (rest[0] == b'+' || rest[0] == b'-')
        && rest[1].is_ascii_digit()
        && rest[2].is_ascii_digit();
    if !(rest.is_empty() && !with_tz || offset_hh) {
        return None;
    }
    let mut out = CompactString::with_capacity(text.len() + 3);
    out.push_str(&text[..10]);
    out.push('T');
    out.push_str(&text[11..]);
    if offset_hh {
        out.push_str(":00");
    }
    Some(out)
}

fn iso_date(text: &str) -> Option<CompactString> {
    let (date, bc) = match text.strip_suffix(" BC") {
        Some(date) => (date, true),
        None => (text, false),
    };
    let mut parts = date.splitn(3, '-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    let ok = all_digits(year, 4..=7) && all_digits(month, 2..=2) && all_digits(day, 2..=2);
    if !ok {
        return None;
    }
    if !bc {
        return Some(date.into());
    }
    let year: i64 = year.parse().ok()?;
    let astronomical = 1 - year;
    let sign = if astronomical < 0 { "-" } else { "" };
    Some(format_compact!(
        "{sign}{:04}-{month}-{day}",
        astronomical.unsigned_abs()
    ))
}

/// `HH:MM:SS[.f{1,6}]`.
fn is_time(text: &str) -> bool {
    let (hms, frac) = text.split_once('.').unwrap_or((text, "0"));
    let mut parts = hms.split(':');
    let fields_ok = (0..3).all(|_| parts.next().is_some_and(|p| all_digits(p, 2..=2)));
    fields_ok && parts.next().is_none() && all_digits(frac, 1..=6)
}

/// A UTC offset as printed by PostgreSQL (`+HH`, `+HH:MM`, `+HH:MM:SS`) in ISO 8601 form
/// (`+HH:MM`). Offsets with seconds (historic local mean time) cannot be written in ISO 8601
/// and are kept as they are.
fn iso_offset(offset: &str) -> Option<CompactString> {
    let digits = offset.strip_prefix(['+', '-'])?;
    let parts: Vec<&str> = digits.split(':').collect();
    if parts.is_empty() || parts.len() > 3 || !parts.iter().all(|p| all_digits(p, 2..=2)) {
        return None;
    }
    Some(if parts.len() == 1 {
        format_compact!("{offset}:00")
    } else {
        offset.into()
    })
}

/// Splits `HH:MM:SS[.f]±HH[:MM[:SS]]` into the time and its offset.
fn split_offset(text: &str) -> Option<(&str, &str)> {
    let at = text.find(['+', '-'])?;
    Some((text.get(..at)?, text.get(at..)?))
}

fn iso_time_tz(text: &str) -> Option<CompactString> {
    let (time, offset) = split_offset(text)?;
    is_time(time).then_some(())?;
    Some(format_compact!("{time}{}", iso_offset(offset)?))
}

/// `YYYY-MM-DD HH:MM:SS[.f][±HH[:MM]][ BC]` → `YYYY-MM-DDTHH:MM:SS[.f][±HH:MM]`.
fn iso_timestamp(text: &str, with_tz: bool) -> Option<CompactString> {
    iso_timestamp_common(text, with_tz).or_else(|| iso_timestamp_general(text, with_tz))
}

fn iso_timestamp_general(text: &str, with_tz: bool) -> Option<CompactString> {
    let (body, bc) = match text.strip_suffix(" BC") {
        Some(body) => (body, " BC"),
        None => (text, ""),
    };
    let (date, time) = body.split_once(' ')?;
    let date = iso_date(&format!("{date}{bc}"))?;
    let time = if with_tz {
        iso_time_tz(time)?
    } else {
        is_time(time).then_some(())?;
        time.into()
    };
    Some(format_compact!("{date}T{time}"))
}
