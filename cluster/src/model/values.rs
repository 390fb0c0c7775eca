//! Typed values: the column types a table may have, a value of one, and a row's encoding as the
//! storage keeps it (an encoded tuple under the row's key).

use serde::{Deserialize, Serialize};

use super::schema::SqlError;
pub use super::schema::SqlType;

/// One value of a row, or of a parameter.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Datum {
    Null,
    Int4(i32),
    Int8(i64),
    Text(String),
    Bool(bool),
    /// Microseconds since 2000-01-01 00:00:00.
    Timestamp(i64),
}

/// Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_UNIX_US: i64 = 946_684_800_000_000;

impl Datum {
    pub fn is_null(&self) -> bool {
        matches!(self, Datum::Null)
    }

    /// The value in PostgreSQL's text format; `None` for NULL.
    pub fn to_text(&self) -> Option<String> {
        match self {
            Datum::Null => None,
            Datum::Int4(v) => Some(v.to_string()),
            Datum::Int8(v) => Some(v.to_string()),
            Datum::Text(v) => Some(v.clone()),
            Datum::Bool(v) => Some(if *v { "t" } else { "f" }.to_string()),
            Datum::Timestamp(us) => Some(format_timestamp(*us)),
        }
    }

    /// An integer value, whatever its width.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Datum::Int4(v) => Some(*v as i64),
            Datum::Int8(v) => Some(*v),
            _ => None,
        }
    }

    /// Parses a value of `ty` from PostgreSQL's text format (a literal, or a parameter sent as
    /// text): `22P02` where it is no such value, `22003` where it is out of the type's range.
    pub fn parse(ty: SqlType, text: &str) -> Result<Datum, SqlError> {
        let t = text.trim();
        match ty {
            SqlType::Int4 => match t.parse::<i64>() {
                Ok(v) => i32::try_from(v).map(Datum::Int4).map_err(|_| {
                    SqlError::new(
                        "22003",
                        format!("value \"{t}\" is out of range for type integer"),
                    )
                }),
                Err(_) => Err(invalid(ty, text)),
            },
            SqlType::Int8 => match t.parse::<i64>() {
                Ok(v) => Ok(Datum::Int8(v)),
                Err(_)
                    if !t.is_empty()
                        && t.trim_start_matches('-')
                            .bytes()
                            .all(|b| b.is_ascii_digit()) =>
                {
                    Err(SqlError::new(
                        "22003",
                        format!("value \"{t}\" is out of range for type bigint"),
                    ))
                }
                Err(_) => Err(invalid(ty, text)),
            },
            SqlType::Text => Ok(Datum::Text(text.to_string())),
            SqlType::Bool => match t.to_ascii_lowercase().as_str() {
                "t" | "true" | "yes" | "y" | "on" | "1" => Ok(Datum::Bool(true)),
                "f" | "false" | "no" | "n" | "off" | "0" => Ok(Datum::Bool(false)),
                _ => Err(invalid(ty, text)),
            },
            SqlType::Timestamp => parse_timestamp(t)
                .map(Datum::Timestamp)
                .ok_or_else(|| invalid(ty, text)),
        }
    }

    /// This value as a value of `ty`, as an assignment casts it (an integer into a wider or
    /// narrower integer column, a string literal into any type), or a type error: `42804`.
    pub fn coerce(self, ty: SqlType) -> Result<Datum, SqlError> {
        match (self, ty) {
            (Datum::Null, _) => Ok(Datum::Null),
            (Datum::Int4(v), SqlType::Int4) => Ok(Datum::Int4(v)),
            (Datum::Int8(v), SqlType::Int8) => Ok(Datum::Int8(v)),
            (Datum::Int4(v), SqlType::Int8) => Ok(Datum::Int8(v as i64)),
            (Datum::Int8(v), SqlType::Int4) => i32::try_from(v)
                .map(Datum::Int4)
                .map_err(|_| SqlError::new("22003", "integer out of range")),
            (Datum::Bool(v), SqlType::Bool) => Ok(Datum::Bool(v)),
            (Datum::Timestamp(v), SqlType::Timestamp) => Ok(Datum::Timestamp(v)),
            (Datum::Text(s), ty) => Datum::parse(ty, &s),
            (other, ty) => Err(SqlError::new(
                "42804",
                format!(
                    "a value of type {} cannot be stored in a column of type {}",
                    other.type_name(),
                    ty.name()
                ),
            )),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Datum::Null => "unknown",
            Datum::Int4(_) => "integer",
            Datum::Int8(_) => "bigint",
            Datum::Text(_) => "text",
            Datum::Bool(_) => "boolean",
            Datum::Timestamp(_) => "timestamp without time zone",
        }
    }

    /// A 64-bit value that places the row on a content: the integer itself for integers (so a
    /// table distributed by an integer key places its rows as the key-value workload does),
    /// and a stable hash of the text form otherwise.
    pub fn distribution_hash(&self) -> i64 {
        match self {
            Datum::Int4(v) => *v as i64,
            Datum::Int8(v) => *v,
            Datum::Null => 0,
            other => {
                let text = other.to_text().unwrap_or_default();
                crc32c::crc32c(text.as_bytes()) as i64
            }
        }
    }
}

fn invalid(ty: SqlType, text: &str) -> SqlError {
    SqlError::new(
        "22P02",
        format!("invalid input syntax for type {}: \"{text}\"", ty.name()),
    )
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD[ HH:MM:SS[.ffffff]]` (or a `T` between) into microseconds since 2000-01-01.
fn parse_timestamp(t: &str) -> Option<i64> {
    let (date, time) = match t.split_once([' ', 'T']) {
        Some((d, tm)) => (d, Some(tm.trim())),
        None => (t, None),
    };
    let mut parts = date.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    if civil_from_days(days) != (y, m, d) {
        return None;
    }
    let mut us = 0i64;
    if let Some(time) = time {
        let mut hms = time.splitn(3, ':');
        let h: i64 = hms.next()?.parse().ok()?;
        let mi: i64 = hms.next()?.parse().ok()?;
        let sec = hms.next().unwrap_or("0");
        let (s, frac) = sec.split_once('.').unwrap_or((sec, ""));
        let s: i64 = s.parse().ok()?;
        if h > 23
            || mi > 59
            || s > 59
            || frac.len() > 6
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let frac_us: i64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<6}").parse().ok()?
        };
        us = ((h * 60 + mi) * 60 + s) * 1_000_000 + frac_us;
    }
    Some(days * 86_400_000_000 + us - PG_EPOCH_UNIX_US)
}

fn format_timestamp(us: i64) -> String {
    let unix = us + PG_EPOCH_UNIX_US;
    let days = unix.div_euclid(86_400_000_000);
    let rest = unix.rem_euclid(86_400_000_000);
    let (y, m, d) = civil_from_days(days);
    let secs = rest / 1_000_000;
    let frac = rest % 1_000_000;
    let mut s = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac != 0 {
        let f = format!("{frac:06}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s
}

/// A row as the storage keeps it: the schema's version, then each column's value tagged by
/// type. Decoding checks the row against the schema it is read with.
pub fn encode_row(row: &[Datum]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + row.len() * 9);
    out.push(ROW_FORMAT);
    out.extend_from_slice(&(row.len() as u16).to_le_bytes());
    for d in row {
        match d {
            Datum::Null => out.push(0),
            Datum::Int4(v) => {
                out.push(1);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Datum::Int8(v) => {
                out.push(2);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Datum::Text(v) => {
                out.push(3);
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(v.as_bytes());
            }
            Datum::Bool(v) => {
                out.push(4);
                out.push(*v as u8);
            }
            Datum::Timestamp(v) => {
                out.push(5);
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    out
}

const ROW_FORMAT: u8 = 1;

/// The values of a stored row; `XX001` (data corrupted) where the bytes are no row.
pub fn decode_row(bytes: &[u8]) -> Result<Vec<Datum>, SqlError> {
    let corrupt = || {
        SqlError::new(
            "XX001",
            "a stored row does not decode: the row's bytes are damaged",
        )
    };
    let mut r = Reader(bytes);
    if r.take(1).ok_or_else(corrupt)?[0] != ROW_FORMAT {
        return Err(corrupt());
    }
    let n = u16::from_le_bytes(r.take(2).ok_or_else(corrupt)?.try_into().unwrap());
    let mut row = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let tag = r.take(1).ok_or_else(corrupt)?[0];
        let d = match tag {
            0 => Datum::Null,
            1 => Datum::Int4(i32::from_le_bytes(
                r.take(4).ok_or_else(corrupt)?.try_into().unwrap(),
            )),
            2 => Datum::Int8(i64::from_le_bytes(
                r.take(8).ok_or_else(corrupt)?.try_into().unwrap(),
            )),
            3 => {
                let len = u32::from_le_bytes(r.take(4).ok_or_else(corrupt)?.try_into().unwrap());
                let s = r.take(len as usize).ok_or_else(corrupt)?;
                Datum::Text(String::from_utf8(s.to_vec()).map_err(|_| corrupt())?)
            }
            4 => Datum::Bool(r.take(1).ok_or_else(corrupt)?[0] != 0),
            5 => Datum::Timestamp(i64::from_le_bytes(
                r.take(8).ok_or_else(corrupt)?.try_into().unwrap(),
            )),
            _ => return Err(corrupt()),
        };
        row.push(d);
    }
    if !r.0.is_empty() {
        return Err(corrupt());
    }
    Ok(row)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_damage_is_refused() {
        let row = vec![
            Datum::Int8(-5),
            Datum::Int4(7),
            Datum::Text("héllo".into()),
            Datum::Bool(true),
            Datum::Null,
            Datum::Timestamp(123),
        ];
        let bytes = encode_row(&row);
        assert_eq!(decode_row(&bytes).unwrap(), row);
        for cut in 0..bytes.len() {
            assert_eq!(decode_row(&bytes[..cut]).unwrap_err().code, "XX001");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode_row(&longer).unwrap_err().code, "XX001");
    }

    #[test]
    fn text_values_parse_as_postgresql_reads_them() {
        assert_eq!(
            Datum::parse(SqlType::Int4, " 42 ").unwrap(),
            Datum::Int4(42)
        );
        assert_eq!(Datum::parse(SqlType::Int4, "x").unwrap_err().code, "22P02");
        assert_eq!(
            Datum::parse(SqlType::Int4, "3000000000").unwrap_err().code,
            "22003"
        );
        assert_eq!(
            Datum::parse(SqlType::Int8, "99999999999999999999")
                .unwrap_err()
                .code,
            "22003"
        );
        assert_eq!(
            Datum::parse(SqlType::Bool, "on").unwrap(),
            Datum::Bool(true)
        );
        assert_eq!(
            Datum::parse(SqlType::Bool, "maybe").unwrap_err().code,
            "22P02"
        );
        let ts = Datum::parse(SqlType::Timestamp, "2024-02-29 13:45:01.5").unwrap();
        assert_eq!(ts.to_text().unwrap(), "2024-02-29 13:45:01.5");
        assert_eq!(
            Datum::parse(SqlType::Timestamp, "2000-01-01").unwrap(),
            Datum::Timestamp(0)
        );
        assert_eq!(
            Datum::parse(SqlType::Timestamp, "2023-02-29")
                .unwrap_err()
                .code,
            "22P02"
        );
        assert_eq!(
            Datum::parse(SqlType::Timestamp, "1999-12-31 23:59:59")
                .unwrap()
                .to_text()
                .unwrap(),
            "1999-12-31 23:59:59"
        );
    }
}
