//! Array literals in PostgreSQL's text output format: `{1,2,NULL}`, `{{1,2},{3,4}}`,
//! `{"a,b","c\"d",NULL,"NULL"}`, optionally preceded by bounds (`[0:1]={7,8}`).

use sluice_core::Value;

use super::text_to_value;

/// PostgreSQL's `MAXDIM`: deeper literals are not PostgreSQL output, and the limit bounds
/// the parser's recursion.
const MAX_DIMENSIONS: usize = 6;

/// Parses an array literal whose elements have type `element`; `None` when it is malformed.
/// Lower bounds are dropped: `[0:1]={7,8}` is `[7, 8]`.
pub(super) fn parse(element: u32, text: &str) -> Option<Value> {
    let body = match text.split_once('=') {
        Some((bounds, body)) if is_bounds(bounds) => body,
        _ => text,
    };
    let mut parser = Parser {
        text: body.as_bytes(),
        pos: 0,
        element,
    };
    let (items, _shape) = parser.array(1)?;
    parser.skip_whitespace();
    (parser.pos == parser.text.len()).then_some(Value::Array(items))
}

/// `[lo:hi]` once per dimension.
fn is_bounds(text: &str) -> bool {
    let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) else {
        return false;
    };
    inner.split("][").all(|dim| {
        dim.split_once(':')
            .is_some_and(|(lo, hi)| lo.parse::<i32>().is_ok() && hi.parse::<i32>().is_ok())
    })
}

struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
    element: u32,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// `{` items `}` where items are all sub-arrays of one shape or all elements; returns
    /// the items and the shape (length per dimension).
    fn array(&mut self, depth: usize) -> Option<(Vec<Value>, Vec<usize>)> {
        if depth > MAX_DIMENSIONS || self.next()? != b'{' {
            return None;
        }
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some((items, vec![0]));
        }
        let nested = self.peek()? == b'{';
        let mut inner_shape: Option<Vec<usize>> = None;
        loop {
            self.skip_whitespace();
            let item = match self.peek()? {
                b'{' if nested => {
                    let (sub, shape) = self.array(depth + 1)?;
                    // Multi-dimensional arrays are rectangular.
                    match &inner_shape {
                        Some(expected) if *expected != shape => return None,
                        Some(_) => {}
                        None => inner_shape = Some(shape),
                    }
                    Value::Array(sub)
                }
                _ if nested => return None,
                b'{' => return None,
                b'"' => {
                    let text = self.quoted()?;
                    text_to_value(self.element, &text)
                }
                _ => self.unquoted()?,
            };
            items.push(item);
            self.skip_whitespace();
            match self.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
        let mut shape = vec![items.len()];
        shape.extend(inner_shape.unwrap_or_default());
        Some((items, shape))
    }

    /// `"..."` with backslash escapes.
    fn quoted(&mut self) -> Option<String> {
        self.pos += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            match self.next()? {
                b'"' => break,
                b'\\' => out.push(self.next()?),
                b => out.push(b),
            }
        }
        // Only ASCII quotes and backslashes were removed from valid UTF-8.
        String::from_utf8(out).ok()
    }

    /// An unquoted element up to `,` or `}`; `NULL` (any case, no escapes) is null.
    fn unquoted(&mut self) -> Option<Value> {
        let mut out = Vec::new();
        let mut escaped = false;
        while let Some(b) = self.peek() {
            match b {
                b',' | b'}' => break,
                b'{' | b'"' => return None,
                b'\\' => {
                    self.pos += 1;
                    out.push(self.next()?);
                    escaped = true;
                    continue;
                }
                _ => out.push(b),
            }
            self.pos += 1;
        }
        while out.last().is_some_and(u8::is_ascii_whitespace) {
            out.pop();
        }
        if out.is_empty() {
            return None;
        }
        if !escaped && out.eq_ignore_ascii_case(b"NULL") {
            return Some(Value::Null);
        }
        let text = String::from_utf8(out).ok()?;
        Some(text_to_value(self.element, &text))
    }
}
