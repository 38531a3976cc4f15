//! A format-neutral document tree in which every value and key knows its location.
//!
//! TOML and YAML are both parsed into [`Node`]s; deserialization then works on nodes, so both
//! formats get the same field paths, locations and hints in their errors.

use std::borrow::Cow;

use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::error::{Location, NodeError};

/// A value with its location.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub kind: NodeKind,
    pub location: Location,
}

/// A key of a map with its location.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub name: String,
    pub location: Location,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NodeKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

impl NodeKind {
    pub fn describe(&self) -> &'static str {
        match self {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) => "an integer",
            NodeKind::Float(_) => "a float",
            NodeKind::Str(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a table",
        }
    }
}

/// Parse TOML text into a node tree.
pub(crate) fn parse_toml(text: &str) -> Result<Node, NodeError> {
    let doc = toml::de::DeTable::parse(text).map_err(|e| {
        let mut err = NodeError::new(format!("TOML syntax error: {}", e.message().trim_end()));
        if let Some(span) = e.span() {
            err.location = Some(Location::of_offset(text, span.start));
        }
        err
    })?;
    let location = Location::of_offset(text, doc.span().start);
    Ok(Node {
        kind: toml_table(text, doc.get_ref())?,
        location,
    })
}

fn toml_table(text: &str, table: &toml::de::DeTable<'_>) -> Result<NodeKind, NodeError> {
    let mut entries = Vec::with_capacity(table.len());
    for (key, value) in table.iter() {
        let key = Key {
            name: key.get_ref().to_string(),
            location: Location::of_offset(text, key.span().start),
        };
        entries.push((key, toml_value(text, value)?));
    }
    Ok(NodeKind::Map(entries))
}

fn toml_value(text: &str, value: &toml::Spanned<toml::de::DeValue<'_>>) -> Result<Node, NodeError> {
    use toml::de::DeValue;
    let location = Location::of_offset(text, value.span().start);
    let kind = match value.get_ref() {
        DeValue::String(s) => NodeKind::Str(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            match i64::from_str_radix(&digits, i.radix()) {
                Ok(v) => NodeKind::Int(v),
                Err(_) => {
                    return Err(
                        NodeError::new(format!("integer {i} does not fit in 64 bits"))
                            .at(location, ""),
                    );
                }
            }
        }
        DeValue::Float(f) => match f.as_str().replace('_', "").parse::<f64>() {
            Ok(v) => NodeKind::Float(v),
            Err(_) => return Err(NodeError::new(format!("invalid float {f}")).at(location, "")),
        },
        DeValue::Boolean(b) => NodeKind::Bool(*b),
        DeValue::Datetime(d) => NodeKind::Str(d.to_string()),
        DeValue::Array(items) => NodeKind::Seq(
            items
                .iter()
                .map(|v| toml_value(text, v))
                .collect::<Result<_, _>>()?,
        ),
        DeValue::Table(t) => toml_table(text, t)?,
    };
    Ok(Node { kind, location })
}

/// Parse YAML text (one document) into a node tree.
pub(crate) fn parse_yaml(text: &str) -> Result<Node, NodeError> {
    let mut parser = Parser::new_from_str(text);
    let mut anchors: Vec<(usize, Node)> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let (event, span) = next(&mut parser)?;
        match event {
            Event::StreamStart | Event::DocumentStart(_) | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => break,
            other => {
                if root.is_some() {
                    return Err(NodeError::new(
                        "a config file holds one YAML document, found more",
                    )
                    .at(yaml_loc(&span), ""));
                }
                root = Some(yaml_node(&mut parser, other, &span, &mut anchors)?);
            }
        }
    }
    Ok(root.unwrap_or(Node {
        kind: NodeKind::Map(Vec::new()),
        location: Location { line: 1, column: 1 },
    }))
}

type Span = saphyr_parser::Span;

fn next<'a>(
    parser: &mut Parser<'a, saphyr_parser::StrInput<'a>>,
) -> Result<(Event<'a>, Span), NodeError> {
    match parser.next_event() {
        Some(Ok(ev)) => Ok(ev),
        Some(Err(e)) => {
            let m = e.marker();
            Err(
                NodeError::new(format!("YAML syntax error: {}", e.info())).at(
                    Location {
                        line: m.line(),
                        column: m.col() + 1,
                    },
                    "",
                ),
            )
        }
        None => Err(NodeError::new("YAML document ended unexpectedly")),
    }
}

fn yaml_loc(span: &Span) -> Location {
    Location {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

fn yaml_node<'a>(
    parser: &mut Parser<'a, saphyr_parser::StrInput<'a>>,
    event: Event<'a>,
    span: &Span,
    anchors: &mut Vec<(usize, Node)>,
) -> Result<Node, NodeError> {
    let location = yaml_loc(span);
    let (node, anchor) = match event {
        Event::Scalar(value, style, anchor, _tag) => (
            Node {
                kind: yaml_scalar(value, style),
                location,
            },
            anchor,
        ),
        Event::Alias(id) => {
            let found = anchors
                .iter()
                .rev()
                .find(|(a, _)| *a == id)
                .map(|(_, n)| n.clone());
            let node =
                found.ok_or_else(|| NodeError::new("unknown YAML alias").at(location, ""))?;
            return Ok(Node { location, ..node });
        }
        Event::SequenceStart(anchor, _) => {
            let mut items = Vec::new();
            loop {
                let (ev, sp) = next(parser)?;
                if matches!(ev, Event::SequenceEnd) {
                    break;
                }
                items.push(yaml_node(parser, ev, &sp, anchors)?);
            }
            (
                Node {
                    kind: NodeKind::Seq(items),
                    location,
                },
                anchor,
            )
        }
        Event::MappingStart(anchor, _) => {
            let mut entries: Vec<(Key, Node)> = Vec::new();
            loop {
                let (ev, sp) = next(parser)?;
                if matches!(ev, Event::MappingEnd) {
                    break;
                }
                let key_loc = yaml_loc(&sp);
                let key = match yaml_node(parser, ev, &sp, anchors)?.kind {
                    NodeKind::Str(s) => s,
                    NodeKind::Int(i) => i.to_string(),
                    NodeKind::Bool(b) => b.to_string(),
                    other => {
                        return Err(NodeError::new(format!(
                            "map keys must be strings, found {}",
                            other.describe()
                        ))
                        .at(key_loc, ""));
                    }
                };
                if entries.iter().any(|(k, _)| k.name == key) {
                    return Err(NodeError::new(format!("duplicate key `{key}`")).at(key_loc, ""));
                }
                let (ev, sp) = next(parser)?;
                let value = yaml_node(parser, ev, &sp, anchors)?;
                entries.push((
                    Key {
                        name: key,
                        location: key_loc,
                    },
                    value,
                ));
            }
            (
                Node {
                    kind: NodeKind::Map(entries),
                    location,
                },
                anchor,
            )
        }
        other => {
            return Err(NodeError::new(format!("unexpected YAML event {other:?}")).at(location, ""));
        }
    };
    if anchor > 0 {
        anchors.push((anchor, node.clone()));
    }
    Ok(node)
}

fn yaml_scalar(value: Cow<'_, str>, style: ScalarStyle) -> NodeKind {
    if style != ScalarStyle::Plain {
        return NodeKind::Str(value.into_owned());
    }
    match &*value {
        "" | "~" | "null" | "Null" | "NULL" => NodeKind::Null,
        "true" | "True" | "TRUE" => NodeKind::Bool(true),
        "false" | "False" | "FALSE" => NodeKind::Bool(false),
        v => {
            if let Ok(i) = v.replace('_', "").parse::<i64>() {
                return NodeKind::Int(i);
            }
            let looks_numeric =
                v.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.');
            match v.parse::<f64>() {
                Ok(f) if looks_numeric && v.chars().any(|c| c.is_ascii_digit()) => {
                    NodeKind::Float(f)
                }
                _ => NodeKind::Str(value.into_owned()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_and_yaml_agree() {
        let t = parse_toml("[a]\nx = 1\ny = \"s\"\nz = [true, 1.5]\n").unwrap();
        let y = parse_yaml("a:\n  x: 1\n  y: s\n  z: [true, 1.5]\n").unwrap();
        let strip = |n: &Node| format!("{:?}", n.kind).replace(char::is_whitespace, "");
        // Locations differ; shapes and values agree.
        let shape = |s: String| {
            let mut out = String::new();
            let mut skip = false;
            for part in s.split("location:") {
                if skip {
                    out.push_str(part.split_once('}').map_or("", |(_, r)| r));
                } else {
                    out.push_str(part);
                }
                skip = true;
            }
            out
        };
        assert_eq!(shape(strip(&t)), shape(strip(&y)));
    }

    #[test]
    fn locations_are_one_based() {
        let n = parse_toml("\n[sinks.out]\npath = 3\n").unwrap();
        let NodeKind::Map(top) = &n.kind else {
            panic!()
        };
        let NodeKind::Map(sinks) = &top[0].1.kind else {
            panic!()
        };
        let NodeKind::Map(out) = &sinks[0].1.kind else {
            panic!()
        };
        assert_eq!(out[0].0.location, Location { line: 3, column: 1 });
        assert_eq!(out[0].1.location, Location { line: 3, column: 8 });
        let n = parse_yaml("sinks:\n  out:\n    path: 3\n").unwrap();
        let NodeKind::Map(top) = &n.kind else {
            panic!()
        };
        let NodeKind::Map(sinks) = &top[0].1.kind else {
            panic!()
        };
        let NodeKind::Map(out) = &sinks[0].1.kind else {
            panic!()
        };
        assert_eq!(out[0].0.location, Location { line: 3, column: 5 });
    }

    #[test]
    fn syntax_errors_have_locations() {
        let e = parse_toml("a = 1\nb = = 2\n").unwrap_err();
        assert_eq!(e.location.map(|l| l.line), Some(2));
        let e = parse_yaml("a: 1\n b: [\n").unwrap_err();
        assert!(e.location.is_some(), "{e:?}");
        let e = parse_yaml("a: 1\na: 2\n").unwrap_err();
        assert!(e.message.contains("duplicate key"), "{e:?}");
    }
}
