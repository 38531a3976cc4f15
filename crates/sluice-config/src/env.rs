//! `${VAR}` and `${VAR:-default}` substitution, done on the raw text before parsing (as Vector
//! does), so a variable may supply any part of a value. `$$` is a literal `$`. Lines whose
//! first non-blank character is `#` (comments in TOML and YAML) are left alone, so a comment
//! may show `${VAR}` without the variable being set.

use crate::error::{Location, NodeError};

/// Substitute variables in `text`, looking them up with `lookup`.
pub(crate) fn substitute(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, NodeError> {
    let mut out = String::with_capacity(text.len());
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
        } else {
            substitute_line(text, offset, line, lookup, &mut out)?;
        }
        offset += line.len();
    }
    Ok(out)
}

/// Substitute within `line`, which starts at byte `offset` of `text` (for error locations).
fn substitute_line(
    text: &str,
    line_offset: usize,
    line: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<(), NodeError> {
    let mut rest = line;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let offset = line_offset + (line.len() - rest.len()) + at;
        let after = &rest[at + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let loc = Location::of_offset(text, offset);
        let Some(end) = body.find('}') else {
            return Err(NodeError::new("unterminated `${` in variable reference")
                .at(loc, "")
                .hint("write `${NAME}` or `${NAME:-default}`, or `$$` for a literal `$`"));
        };
        let inner = &body[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(NodeError::new(format!(
                "invalid variable name `{name}` in `${{{inner}}}`"
            ))
            .at(loc, "")
            .hint("names use letters, digits and `_`; write `$$` for a literal `$`"));
        }
        let value = match (lookup(name), default) {
            (Some(v), Some(d)) if v.is_empty() => d.to_owned(),
            (Some(v), _) => v,
            (None, Some(d)) => d.to_owned(),
            (None, None) => {
                return Err(
                    NodeError::new(format!("environment variable `{name}` is not set"))
                        .at(loc, "")
                        .hint(format!(
                            "export {name}=..., or give a default: `${{{name}:-value}}`"
                        )),
                );
            }
        };
        out.push_str(&value);
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db.local".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes() {
        let s = substitute("a=${HOST} b=${NOPE:-x} c=${EMPTY:-d} e=$$ f=$x", &env).unwrap();
        assert_eq!(s, "a=db.local b=x c=d e=$ f=$x");
    }

    #[test]
    fn missing_variable_is_located() {
        let e = substitute("a = 1\nurl = \"${DB_URL}\"\n", &env).unwrap_err();
        assert_eq!(e.message, "environment variable `DB_URL` is not set");
        assert_eq!(e.location, Some(Location { line: 2, column: 8 }));
        assert!(e.hint.unwrap().contains("DB_URL:-"));
        assert!(substitute("${", &env).is_err());
        assert!(substitute("${1X}", &env).is_err());
        // Comment lines are left alone.
        let s = substitute("  # url = \"${DB_URL}\"\na = \"${HOST}\" # ${HOST}\n", &env).unwrap();
        assert_eq!(s, "  # url = \"${DB_URL}\"\na = \"db.local\" # db.local\n");
    }
}
