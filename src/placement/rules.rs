//! The rules a policy states over backend tags, as the configuration spells them:
//! `only = { jurisdiction = "eu" }`, `spread = "provider"`,
//! `require = [{ jurisdiction = "eu", min = 2 }]`, and `read_order` (a list or `"latency"`).
//!
//! This module only knows tags: it imports nothing from the rest of the crate, so the
//! configuration can parse these types and the placement can evaluate them without a loop.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// A backend's tags (`tags = { jurisdiction = "eu", provider = "ovh" }`).
pub type Tags = BTreeMap<String, String>;

/// Tag pairs a backend must all carry to match: `{ jurisdiction = "eu", provider = "ovh" }`.
/// Never empty (an empty match would match every backend, which is never what was meant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagMatch(BTreeMap<String, String>);

impl TagMatch {
    /// `None` for an empty set of pairs.
    pub fn new(pairs: BTreeMap<String, String>) -> Option<TagMatch> {
        (!pairs.is_empty()).then_some(TagMatch(pairs))
    }

    pub fn matches(&self, tags: &Tags) -> bool {
        self.0.iter().all(|(k, v)| tags.get(k) == Some(v))
    }

    pub fn pairs(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

/// `jurisdiction=eu` or `jurisdiction=eu,provider=ovh`: how messages and explanations name it.
impl fmt::Display for TagMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for TagMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pairs = BTreeMap::<String, String>::deserialize(d)?;
        TagMatch::new(pairs).ok_or_else(|| {
            de::Error::custom("needs at least one tag pair, e.g. { jurisdiction = \"eu\" }")
        })
    }
}

/// `spread = "provider"`: no two replicas of an object on backends with the same value of
/// this tag. A backend without the tag conflicts with nobody: it counts as a value of its
/// own (an untagged local disk is a failure domain of its own, not "the same as every other
/// untagged backend"). Tag the backends to group them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spread {
    tag: String,
}

impl Spread {
    pub fn new(tag: &str) -> Option<Spread> {
        (!tag.is_empty()).then(|| Spread {
            tag: tag.to_string(),
        })
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The backend's value of the spread tag; `None`: it has none and conflicts with nobody.
    pub fn value_of<'t>(&self, tags: &'t Tags) -> Option<&'t str> {
        tags.get(&self.tag).map(String::as_str)
    }
}

impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spread on {}", self.tag)
    }
}

impl<'de> Deserialize<'de> for Spread {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let tag = String::deserialize(d)?;
        Spread::new(&tag).ok_or_else(|| de::Error::custom("needs a tag name, e.g. \"provider\""))
    }
}

/// `{ jurisdiction = "eu", min = 2 }`: at least `min` (default 1) replicas on backends whose
/// tags match all the other pairs. `min` is the one reserved name: a tag called `min` cannot
/// be required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub tags: TagMatch,
    pub min: usize,
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "require {} min {}", self.tags, self.min)
    }
}

impl<'de> Deserialize<'de> for Requirement {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RequirementVisitor;
        impl<'de> Visitor<'de> for RequirementVisitor {
            type Value = Requirement;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of tag pairs and an optional min, e.g. { jurisdiction = \"eu\", min = 2 }")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Requirement, A::Error> {
                let mut pairs = BTreeMap::new();
                let mut min = None;
                while let Some(name) = map.next_key::<String>()? {
                    if name == "min" {
                        if min.is_some() {
                            return Err(de::Error::duplicate_field("min"));
                        }
                        let n: u64 = map.next_value()?;
                        if n == 0 {
                            return Err(de::Error::custom(
                                "min must be at least 1 (leave the rule out to require nothing)",
                            ));
                        }
                        min = Some(usize::try_from(n).map_err(de::Error::custom)?);
                    } else {
                        let value: String = map.next_value()?;
                        if pairs.insert(name.clone(), value).is_some() {
                            return Err(de::Error::custom(format!("tag {name:?} given twice")));
                        }
                    }
                }
                let tags = TagMatch::new(pairs).ok_or_else(|| {
                    de::Error::custom(
                        "a require rule needs at least one tag pair, e.g. { jurisdiction = \"eu\" }",
                    )
                })?;
                Ok(Requirement {
                    tags,
                    min: min.unwrap_or(1),
                })
            }
        }
        d.deserialize_map(RequirementVisitor)
    }
}

/// The order reads try an object's present replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOrder {
    /// These backends first, in this order; the others follow as recorded
    /// (`read_order = ["disk-a", "scw-par"]`; empty: as recorded).
    Listed(Vec<String>),
    /// Lowest observed latency first; backends without a measurement last
    /// (`read_order = "latency"`).
    Latency,
}

impl Default for ReadOrder {
    fn default() -> Self {
        ReadOrder::Listed(Vec::new())
    }
}

impl ReadOrder {
    /// The backend ids a listed order names (none for `latency`).
    pub fn listed(&self) -> &[String] {
        match self {
            ReadOrder::Listed(ids) => ids,
            ReadOrder::Latency => &[],
        }
    }
}

/// Accepts the list every existing configuration has, or the one word `"latency"`.
impl<'de> Deserialize<'de> for ReadOrder {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ReadOrderVisitor;
        impl<'de> Visitor<'de> for ReadOrderVisitor {
            type Value = ReadOrder;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of backend ids or \"latency\"")
            }
            fn visit_str<E: de::Error>(self, word: &str) -> Result<ReadOrder, E> {
                match word {
                    "latency" => Ok(ReadOrder::Latency),
                    other => Err(E::custom(format!(
                        "unknown read order {other:?}: give a list of backend ids or \"latency\""
                    ))),
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ReadOrder, A::Error> {
                let mut ids = Vec::new();
                while let Some(id) = seq.next_element::<String>()? {
                    ids.push(id);
                }
                Ok(ReadOrder::Listed(ids))
            }
        }
        d.deserialize_any(ReadOrderVisitor)
    }
}

/// A policy's rules over tags, together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Only backends matching these pairs are members.
    pub only: Option<TagMatch>,
    pub spread: Option<Spread>,
    pub require: Vec<Requirement>,
}

impl Rules {
    /// Each rule as the configuration would name it, for explanations.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(only) = &self.only {
            out.push(format!("only {only}"));
        }
        if let Some(spread) = &self.spread {
            out.push(spread.to_string());
        }
        out.extend(self.require.iter().map(ToString::to_string));
        out
    }

    /// Whether a placement search is needed at all (without spread or require, the best
    /// ranked members are the answer).
    pub fn constrains_choice(&self) -> bool {
        self.spread.is_some() || !self.require.is_empty()
    }
}
