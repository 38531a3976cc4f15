//! Config errors that say what is wrong and where: file, line, column and field path.

use std::fmt;
use std::path::PathBuf;

/// A line and column (both 1-based) in a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` in `text`.
    pub fn of_offset(text: &str, offset: usize) -> Location {
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Location { line, column }
    }
}

/// An invalid configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// Where in it, when known.
    pub location: Option<Location>,
    /// Dotted path of the offending field (`sinks.out.path`), when known.
    pub path: Option<String>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid config {}", self.file.display())?;
        if let Some(loc) = self.location {
            write!(f, ":{}:{}", loc.line, loc.column)?;
        }
        if let Some(path) = &self.path {
            write!(f, " at `{path}`")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// An error raised while deserializing a node, before the file name is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeError {
    pub location: Option<Location>,
    pub path: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

impl NodeError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            location: None,
            path: None,
            message: message.into(),
            hint: None,
        }
    }

    pub fn at(mut self, location: Location, path: &str) -> Self {
        if self.location.is_none() {
            self.location = Some(location);
        }
        if self.path.is_none() && !path.is_empty() {
            self.path = Some(path.to_owned());
        }
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn in_file(self, file: &std::path::Path) -> ConfigError {
        ConfigError {
            file: file.to_path_buf(),
            location: self.location,
            path: self.path,
            message: self.message,
            hint: self.hint,
        }
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NodeError {}

impl serde::de::Error for NodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        NodeError::new(msg.to_string())
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let mut e = NodeError::new(format!("unknown field `{field}`"));
        e.hint = Some(match closest(field, expected) {
            Some(best) => format!(
                "did you mean `{best}`? valid fields: {}",
                expected.join(", ")
            ),
            None if expected.is_empty() => "this section takes no fields".to_owned(),
            None => format!("valid fields: {}", expected.join(", ")),
        });
        e
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut e = NodeError::new(format!("unknown value `{variant}`"));
        e.hint = Some(match closest(variant, expected) {
            Some(best) => format!(
                "did you mean `{best}`? expected one of {}",
                expected.join(", ")
            ),
            None => format!("expected one of {}", expected.join(", ")),
        });
        e
    }
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a typo.
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_to_locations() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(
            Location::of_offset(text, 0),
            Location { line: 1, column: 1 }
        );
        assert_eq!(
            Location::of_offset(text, 6),
            Location { line: 2, column: 1 }
        );
        assert_eq!(
            Location::of_offset(text, 9),
            Location { line: 2, column: 3 }
        );
    }

    #[test]
    fn typo_suggestions() {
        assert_eq!(closest("pth", &["path", "inputs"]), Some("path"));
        assert_eq!(closest("zzzzzz", &["path", "inputs"]), None);
        assert_eq!(closest("stdot", &["stdout", "file"]), Some("stdout"));
    }
}
