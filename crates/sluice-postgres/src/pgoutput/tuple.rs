//! Tuple data: the column values of a row.

use super::error::{DecodeError, Field};
use super::reader::Reader;

/// The column values of one row, in the column order of the table's
/// [`super::Relation`] message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tuple {
    /// One cell per published column.
    pub cells: Vec<Cell>,
}

/// One column value of a [`Tuple`].
///
/// Text is validated UTF-8: the server sends text in the database encoding, and sluice
/// requires UTF8 databases, so a non-UTF-8 value is a decode error that names the column
/// rather than mojibake found later by a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// `'n'`: SQL NULL. In a key tuple ([`super::OldTuple::Key`]) also every non-key column.
    Null,
    /// `'u'`: an unchanged TOAST value the server did not resend. It is not null: the row
    /// still has its old value, and sinks must keep it.
    Unchanged,
    /// `'t'`: the value in the type's text output format.
    Text(String),
    /// `'b'`: the value in the type's binary send format (only with the `binary` option).
    Binary(Vec<u8>),
}

/// Reads TupleData: Int16 column count, then per column a kind byte and, for `'t'` and
/// `'b'`, an Int32 length and that many bytes.
pub(crate) fn read_tuple(r: &mut Reader<'_>) -> Result<Tuple, DecodeError> {
    let count = r.count16(Field::Named("the tuple column count"))?;
    // Every cell takes at least its kind byte, so a count larger than the rest of the
    // message is already known to be truncated: never allocate for it.
    if count > r.remaining() {
        return Err(r.truncated(
            Field::Named("the tuple's columns (at least 1 byte each)"),
            count as u64,
        ));
    }
    let mut cells = Vec::with_capacity(count);
    for column in 1..=count {
        cells.push(read_cell(r, column)?);
    }
    Ok(Tuple { cells })
}

fn read_cell(r: &mut Reader<'_>, column: usize) -> Result<Cell, DecodeError> {
    let at = |part| Field::Column { part, column };
    let offset = r.pos();
    let cell_kind = r.u8(at("the kind"))?;
    Ok(match cell_kind {
        b'n' => Cell::Null,
        b'u' => Cell::Unchanged,
        b't' | b'b' => {
            let len = r.count32(at("the length"))?;
            let start = r.pos();
            let bytes = r.bytes(len, at("the value"))?;
            if cell_kind == b't' {
                Cell::Text(r.utf8(bytes, start, at("the text value"))?)
            } else {
                Cell::Binary(bytes.to_vec())
            }
        }
        _ => {
            return Err(DecodeError::UnknownCellKind {
                kind: r.kind(),
                column,
                cell_kind,
                offset,
            });
        }
    })
}
