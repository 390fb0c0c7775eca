//! Values on the wire: result rows in PostgreSQL's text or binary format, and parameters
//! decoded from either as the statement's types.

use bytes::{BufMut, BytesMut};
use pgwire::messages::data::{DataRow, FieldDescription, RowDescription};

use crate::sql::{Column, Datum, SqlError, SqlType};

pub const TEXT: i16 = 0;
pub const BINARY: i16 = 1;

/// The format of column or parameter `i` given the codes a Bind carried: none means text for
/// all, one applies to all, otherwise one each.
pub fn format_of(codes: &[i16], i: usize) -> i16 {
    match codes {
        [] => TEXT,
        [one] => *one,
        many => many.get(i).copied().unwrap_or(TEXT),
    }
}

/// Checks format codes against `count` columns or parameters (`08P01` otherwise).
pub fn check_formats(codes: &[i16], count: usize, what: &str) -> Result<(), SqlError> {
    if codes.iter().any(|c| *c != TEXT && *c != BINARY) {
        return Err(SqlError::new(
            "22023",
            format!("unsupported format code in {what}"),
        ));
    }
    if codes.len() > 1 && codes.len() != count {
        return Err(SqlError::new(
            "08P01",
            format!(
                "bind message has {} {what} formats but {count} {what}s",
                codes.len()
            ),
        ));
    }
    Ok(())
}

fn type_size(ty: SqlType) -> i16 {
    match ty {
        SqlType::Int4 => 4,
        SqlType::Int8 | SqlType::Timestamp => 8,
        SqlType::Bool => 1,
        SqlType::Text => -1,
    }
}

/// The row description of `columns`, each in its format.
pub fn row_description(columns: &[Column], formats: &[i16]) -> RowDescription {
    RowDescription::new(
        columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                FieldDescription::new(
                    c.name.clone(),
                    0,
                    0,
                    c.ty.oid(),
                    type_size(c.ty),
                    -1,
                    format_of(formats, i),
                )
            })
            .collect(),
    )
}

/// One result row, each value in its column's format.
pub fn data_row(row: &[Datum], formats: &[i16]) -> DataRow {
    let mut data = BytesMut::new();
    for (i, d) in row.iter().enumerate() {
        let bytes: Option<Vec<u8>> = if format_of(formats, i) == BINARY {
            binary(d)
        } else {
            d.to_text().map(String::into_bytes)
        };
        match bytes {
            None => data.put_i32(-1),
            Some(b) => {
                data.put_i32(b.len() as i32);
                data.put_slice(&b);
            }
        }
    }
    DataRow::new(data, row.len() as i16)
}

/// A value in PostgreSQL's binary format; `None` for NULL.
fn binary(d: &Datum) -> Option<Vec<u8>> {
    Some(match d {
        Datum::Null => return None,
        Datum::Int4(v) => v.to_be_bytes().to_vec(),
        Datum::Int8(v) | Datum::Timestamp(v) => v.to_be_bytes().to_vec(),
        Datum::Bool(v) => vec![u8::from(*v)],
        Datum::Text(s) => s.as_bytes().to_vec(),
    })
}

/// A parameter sent in `format`, as a value of `ty`: `22P02` where it is none.
pub fn parameter(ty: SqlType, format: i16, value: Option<&[u8]>) -> Result<Datum, SqlError> {
    let Some(bytes) = value else {
        return Ok(Datum::Null);
    };
    if format == TEXT {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| SqlError::new("22021", "invalid byte sequence for encoding \"UTF8\""))?;
        return Datum::parse(ty, text);
    }
    let wrong = || {
        SqlError::new(
            "22P03",
            format!(
                "incorrect binary data format in bind parameter of type {}",
                ty.name()
            ),
        )
    };
    Ok(match ty {
        SqlType::Int4 => Datum::Int4(i32::from_be_bytes(bytes.try_into().map_err(|_| wrong())?)),
        SqlType::Int8 => Datum::Int8(i64::from_be_bytes(bytes.try_into().map_err(|_| wrong())?)),
        SqlType::Timestamp => {
            Datum::Timestamp(i64::from_be_bytes(bytes.try_into().map_err(|_| wrong())?))
        }
        SqlType::Bool => match bytes {
            [0] => Datum::Bool(false),
            [1] => Datum::Bool(true),
            _ => return Err(wrong()),
        },
        SqlType::Text => {
            Datum::Text(String::from_utf8(bytes.to_vec()).map_err(|_| {
                SqlError::new("22021", "invalid byte sequence for encoding \"UTF8\"")
            })?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_text_parameters_decode_as_their_type() {
        let p = |ty, f, b: &[u8]| parameter(ty, f, Some(b));
        assert_eq!(
            p(SqlType::Int8, BINARY, &7i64.to_be_bytes()),
            Ok(Datum::Int8(7))
        );
        assert_eq!(
            p(SqlType::Int4, BINARY, &(-2i32).to_be_bytes()),
            Ok(Datum::Int4(-2))
        );
        assert_eq!(p(SqlType::Bool, BINARY, &[1]), Ok(Datum::Bool(true)));
        assert_eq!(
            p(SqlType::Text, BINARY, b"hi"),
            Ok(Datum::Text("hi".into()))
        );
        assert_eq!(p(SqlType::Int8, TEXT, b"42"), Ok(Datum::Int8(42)));
        assert_eq!(p(SqlType::Int8, TEXT, b"x").unwrap_err().code, "22P02");
        assert_eq!(p(SqlType::Int8, BINARY, &[1, 2]).unwrap_err().code, "22P03");
        assert_eq!(parameter(SqlType::Int8, BINARY, None), Ok(Datum::Null));
    }

    #[test]
    fn rows_encode_nulls_text_and_binary() {
        let row = [Datum::Int8(5), Datum::Null, Datum::Bool(true)];
        let text = data_row(&row, &[]);
        assert_eq!(text.field_count, 3);
        assert_eq!(
            &text.data[..],
            &[0, 0, 0, 1, b'5', 255, 255, 255, 255, 0, 0, 0, 1, b't']
        );
        let bin = data_row(&row, &[BINARY]);
        assert_eq!(&bin.data[..4], &[0, 0, 0, 8]);
        assert_eq!(&bin.data[4..12], &5i64.to_be_bytes());
        assert_eq!(format_of(&[TEXT, BINARY], 1), BINARY);
        assert!(check_formats(&[TEXT, BINARY], 3, "result").is_err());
    }
}
