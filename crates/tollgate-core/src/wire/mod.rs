//! Typed wire models of the LLM APIs the gateway speaks: OpenAI chat,
//! completions, embeddings and Responses, and Anthropic Messages. Each
//! names the fields the gateway reads and keeps every other field in a
//! `rest` map, so a body parsed and written again loses nothing a
//! caller or upstream sent (unknown fields, explicit `null`s, nested
//! unknowns: `tests` round-trips every fixture). A named field keeps
//! "absent" apart from `null` ([`Field`]) for the same reason.
//!
//! Owns: the shapes and their serde mapping. Must not: validate (ingress
//! checks ranges and names the field), translate (tollgate-translate), or
//! know HTTP.

/// Defines a wire struct: every named field is a [`Field`] (written as
/// `name: Field<T>`, or `name as "json-name": Field<T>`), every other key
/// lands in `rest`. Serialization is derived (`rest` flattened). The
/// `Deserialize` impl is written out instead of derived because serde's
/// `#[serde(flatten)]` buffers the whole object into its private `Content`
/// tree and deserializes every field a second time from it, at every
/// nesting level: for a streamed chunk (chunk → choice → delta, each with a
/// `rest`) that made the typed parse 14 % more instructions per streamed
/// request than the untyped `Value` parse it replaced. This impl reads each
/// key once: a named field straight into its type, anything else into a
/// `Value` in `rest`. Like the derive, a named field given twice is an
/// error (`duplicate field`).
macro_rules! wire_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $field:ident $(as $wire:literal)? : $fty:ty,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
        pub struct $name {
            $(
                $(#[$fmeta])*
                $(#[serde(rename = $wire)])?
                #[serde(skip_serializing_if = "Field::is_absent")]
                pub $field: $fty,
            )*
            /// Every key the struct does not name, as sent.
            #[serde(flatten)]
            pub rest: Rest,
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Visit;
                impl<'de> serde::de::Visitor<'de> for Visit {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("struct ", stringify!($name)))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$name, A::Error> {
                        let mut out = $name::default();
                        while let Some($crate::wire::Key(key)) = map.next_key()? {
                            $(
                                if &*key == wire_struct!(@name $field $($wire)?) {
                                    if !out.$field.is_absent() {
                                        return Err(serde::de::Error::duplicate_field(
                                            wire_struct!(@name $field $($wire)?),
                                        ));
                                    }
                                    out.$field = map.next_value()?;
                                    continue;
                                }
                            )*
                            let value: serde_json::Value = map.next_value()?;
                            out.rest.insert(key.into_owned(), value);
                        }
                        Ok(out)
                    }
                }
                d.deserialize_map(Visit)
            }
        }
    };
    (@name $field:ident) => { stringify!($field) };
    (@name $field:ident $wire:literal) => { $wire };
}

pub mod anthropic;
pub mod chat;
pub mod completions;
pub mod embeddings;
pub mod responses;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

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

wire_struct! {
    /// `stream_options`, shared by chat and completions.
    pub struct StreamOptions {
        include_usage: Field<bool>,
    }
}

wire_struct! {
    /// OpenAI `usage` (chat, completions, embeddings).
    pub struct Usage {
        prompt_tokens: Field<i64>,
        completion_tokens: Field<i64>,
        total_tokens: Field<i64>,
        prompt_tokens_details: Field<PromptTokensDetails>,
        completion_tokens_details: Field<CompletionTokensDetails>,
    }
}

wire_struct! {
    /// `usage.prompt_tokens_details`: the cached part of the prompt
    /// (`cache_creation_tokens` is the gateway's extension, written when
    /// an Anthropic upstream reports cache writes).
    pub struct PromptTokensDetails {
        cached_tokens: Field<i64>,
        cache_creation_tokens: Field<i64>,
    }
}

wire_struct! {
    /// `usage.completion_tokens_details`.
    pub struct CompletionTokensDetails {
        reasoning_tokens: Field<i64>,
    }
}

/// An object key, borrowed from the input when it has no escapes.
pub(crate) struct Key<'de>(pub(crate) Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Visit)
    }
}
