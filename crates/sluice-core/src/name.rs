//! Interned names: columns, tables and sources.
//!
//! Every change carries its column names beside its values. With a reference-counted name per
//! column, each row built on one thread and dropped on another bounced the names' counters
//! between cores: in the PostgreSQL snapshot (two reader threads, one sink thread) those
//! counter updates were a quarter of the client's CPU time. A [`Name`] is a copied pointer to
//! a string that lives for the rest of the process, so building and dropping a row touches no
//! shared memory.
//!
//! The same holds for the source and table name every change carries (two more counters per
//! row, shared by every reader thread).
//!
//! Interned strings are never freed. What is interned is bounded by the names of the
//! configured sources and of the captured tables and their columns (and of the transforms'
//! renames), a few kilobytes for most databases: create names with [`Name::new`] from a
//! table's shape, not per row from data.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An interned name (column, table or source): `Copy`, compared, hashed and ordered as its text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(&'static str);

fn interned() -> &'static Mutex<HashSet<&'static str>> {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    NAMES.get_or_init(Mutex::default)
}

impl Name {
    /// The name for `text`, interning it on first use.
    pub fn new(text: &str) -> Name {
        // A panic while the set is locked leaves it whole (insert is the only write).
        let mut names = interned().lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&known) = names.get(text) {
            return Name(known);
        }
        let leaked: &'static str = Box::leak(Box::from(text));
        names.insert(leaked);
        Name(leaked)
    }

    /// The name's text.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.0
    }
}

impl From<&str> for Name {
    fn from(text: &str) -> Self {
        Name::new(text)
    }
}

impl From<&String> for Name {
    fn from(text: &String) -> Self {
        Name::new(text)
    }
}

impl From<String> for Name {
    fn from(text: String) -> Self {
        Name::new(&text)
    }
}

impl From<&Arc<str>> for Name {
    fn from(text: &Arc<str>) -> Self {
        Name::new(text)
    }
}

impl From<Name> for Arc<str> {
    fn from(name: Name) -> Self {
        Arc::from(name.0)
    }
}

impl From<Name> for String {
    fn from(name: Name) -> Self {
        name.0.to_owned()
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<Name> for str {
    fn eq(&self, other: &Name) -> bool {
        self == other.0
    }
}

impl PartialEq<Name> for &str {
    fn eq(&self, other: &Name) -> bool {
        *self == other.0
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Name::new(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_text_is_the_same_string() {
        let a = Name::new("customer_id");
        let b = Name::from(String::from("customer_id"));
        assert_eq!(a, b);
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
        assert_ne!(a, Name::new("customer"));
        assert_eq!(a, "customer_id");
        assert_eq!(&*a, "customer_id");
    }

    #[test]
    fn ordered_and_hashed_as_text() {
        let mut names = vec![Name::new("b"), Name::new("a"), Name::new("c")];
        names.sort();
        assert_eq!(names, ["a", "b", "c"].map(Name::new));
        let set: HashSet<Name> = names.iter().copied().collect();
        assert!(set.contains("b"));
    }

    #[test]
    fn serialises_as_a_string() {
        let name = Name::new("héllo \"x\"");
        let json = serde_json::to_string(&name).unwrap();
        assert_eq!(json, r#""héllo \"x\"""#);
        let back: Name = serde_json::from_str(&json).unwrap();
        assert_eq!(back, name);
    }
}
