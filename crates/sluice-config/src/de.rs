//! A serde deserializer over [`Node`]s that records the field path and location of errors.

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use crate::error::NodeError;
use crate::node::{Key, Node, NodeKind};

/// Deserialize `T` from `node`, whose dotted path in the document is `path`.
pub(crate) fn from_node<T: de::DeserializeOwned>(node: &Node, path: &str) -> Result<T, NodeError> {
    T::deserialize(NodeDe {
        node,
        path: path.to_owned(),
    })
    .map_err(|e| e.at(node.location, path))
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

struct NodeDe<'a> {
    node: &'a Node,
    path: String,
}

impl NodeDe<'_> {
    fn mismatch(&self, expected: &str) -> NodeError {
        NodeError::new(format!(
            "expected {expected}, found {}",
            self.node.kind.describe()
        ))
        .at(self.node.location, &self.path)
    }
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = NodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        let location = self.node.location;
        let path = self.path.clone();
        let result = match &self.node.kind {
            NodeKind::Null => visitor.visit_unit(),
            NodeKind::Bool(b) => visitor.visit_bool(*b),
            NodeKind::Int(i) => visitor.visit_i64(*i),
            NodeKind::Float(f) => visitor.visit_f64(*f),
            NodeKind::Str(s) => visitor.visit_str(s),
            NodeKind::Seq(items) => visitor.visit_seq(SeqDe {
                items: items.iter(),
                path: &self.path,
                index: 0,
            }),
            NodeKind::Map(entries) => visitor.visit_map(MapDe {
                entries: entries.iter(),
                path: &self.path,
                pending: None,
            }),
        };
        result.map_err(|e| e.at(location, &path))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        match self.node.kind {
            NodeKind::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, NodeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, NodeError> {
        match &self.node.kind {
            NodeKind::Str(s) => visitor
                .visit_enum(s.as_str().into_deserializer())
                .map_err(|e: NodeError| e.at(self.node.location, &self.path)),
            _ => Err(self.mismatch("a string")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, NodeError> {
        match &self.node.kind {
            NodeKind::Map(_) => self.deserialize_any(visitor),
            _ => Err(self.mismatch("a table")),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        match &self.node.kind {
            NodeKind::Seq(_) => self.deserialize_any(visitor),
            _ => Err(self.mismatch("a list")),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple tuple_struct map identifier ignored_any
    }
}

struct SeqDe<'a> {
    items: std::slice::Iter<'a, Node>,
    path: &'a str,
    index: usize,
}

impl<'de> SeqAccess<'de> for SeqDe<'_> {
    type Error = NodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, NodeError> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let path = format!("{}[{}]", self.path, self.index);
        self.index += 1;
        seed.deserialize(NodeDe {
            node,
            path: path.clone(),
        })
        .map(Some)
        .map_err(|e| e.at(node.location, &path))
    }
}

struct MapDe<'a> {
    entries: std::slice::Iter<'a, (Key, Node)>,
    path: &'a str,
    pending: Option<(&'a Key, &'a Node)>,
}

impl<'de> MapAccess<'de> for MapDe<'_> {
    type Error = NodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, NodeError> {
        let Some((key, node)) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some((key, node));
        let path = join(self.path, &key.name);
        seed.deserialize(key.name.as_str().into_deserializer())
            .map(Some)
            .map_err(|e: NodeError| e.at(key.location, &path))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, NodeError> {
        let Some((key, node)) = self.pending.take() else {
            return Err(NodeError::new("value requested before key"));
        };
        let path = join(self.path, &key.name);
        seed.deserialize(NodeDe {
            node,
            path: path.clone(),
        })
        .map_err(|e| e.at(node.location, &path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::parse_toml;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        path: String,
        #[serde(default)]
        n: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
        list: Vec<u8>,
    }

    #[test]
    fn errors_carry_path_and_location() {
        let doc = parse_toml("list = [1]\n[inner]\npath = \"x\"\nn = \"seven\"\n").unwrap();
        let e = from_node::<Outer>(&doc, "").unwrap_err();
        assert_eq!(e.path.as_deref(), Some("inner.n"));
        assert_eq!(e.location.map(|l| (l.line, l.column)), Some((4, 5)));
        assert!(e.message.contains("invalid type"), "{e:?}");

        let doc = parse_toml("list = [1, 300]\n[inner]\npath = \"x\"\n").unwrap();
        let e = from_node::<Outer>(&doc, "").unwrap_err();
        assert_eq!(e.path.as_deref(), Some("list[1]"));

        let doc = parse_toml("list = []\n[inner]\npth = \"x\"\n").unwrap();
        let e = from_node::<Outer>(&doc, "").unwrap_err();
        assert_eq!(e.path.as_deref(), Some("inner.pth"));
        assert_eq!(e.location.map(|l| l.line), Some(3));
        assert!(
            e.hint
                .as_deref()
                .unwrap_or("")
                .contains("did you mean `path`"),
            "{e:?}"
        );

        let doc = parse_toml("list = []\n[inner]\nn = 1\n").unwrap();
        let e = from_node::<Outer>(&doc, "").unwrap_err();
        assert_eq!(e.message, "missing field `path`");
        assert_eq!(e.path.as_deref(), Some("inner"));
    }
}
