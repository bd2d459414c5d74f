//! Typed wire models of the LLM APIs the gateway speaks: OpenAI chat,
//! completions, embeddings and Responses, and Anthropic Messages. Each
//! names the fields the gateway reads and keeps every other field in a
//! flattened `rest` map, so a body parsed and written again loses nothing a
//! caller or upstream sent (unknown fields, explicit `null`s, nested
//! unknowns: `tests` round-trips every fixture). A named field keeps
//! "absent" apart from `null` ([`Field`]) for the same reason.
//!
//! Owns: the shapes and their serde mapping. Must not: validate (ingress
//! checks ranges and names the field), translate (tollgate-translate), or
//! know HTTP.

pub mod anthropic;
pub mod chat;
pub mod completions;
pub mod embeddings;
pub mod responses;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// The fields a model does not name, in the order serde_json keeps them.
pub type Rest = Map<String, Value>;

/// A named field as the sender wrote it: left out, `null`, or a value.
/// Written back the same way (`Absent` is skipped by
/// `skip_serializing_if = "Field::is_absent"`).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Field<T> {
    #[default]
    Absent,
    Null,
    Set(T),
}

impl<T> Field<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }

    /// The value, if there is one (absent and `null` read alike).
    pub fn get(&self) -> Option<&T> {
        match self {
            Field::Set(v) => Some(v),
            _ => None,
        }
    }

    pub fn get_mut(&mut self) -> Option<&mut T> {
        match self {
            Field::Set(v) => Some(v),
            _ => None,
        }
    }

    pub fn take(&mut self) -> Option<T> {
        match std::mem::take(self) {
            Field::Set(v) => Some(v),
            _ => None,
        }
    }
}

impl<T> From<Option<T>> for Field<T> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Field::Null, Field::Set)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<T>::deserialize(d).map(Field::from)
    }
}

impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Set(v) => v.serialize(s),
            _ => s.serialize_unit(),
        }
    }
}

/// `stream_options`, shared by chat and completions.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct StreamOptions {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub include_usage: Field<bool>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// OpenAI `usage` (chat, completions, embeddings).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub prompt_tokens: Field<i64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub completion_tokens: Field<i64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub total_tokens: Field<i64>,
    #[serde(flatten)]
    pub rest: Rest,
}
