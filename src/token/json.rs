//! The JSON inside a token: a hand-written visitor that reads only the three
//! documented keys, borrowing strings from the input, and turns every shape
//! of value into data rather than a serde error. serde's own messages can
//! quote content, so they are never shown; only positions are kept.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{JsonKind, JsonProblem, TokenError};

/// The keys tokenwatch reads. Strings borrow from the JSON text unless they
/// hold escapes.
pub(super) struct Fields<'a> {
    pub(super) exp_date: Option<Field<'a>>,
    pub(super) token: Option<Field<'a>>,
    pub(super) org_name: Option<Field<'a>>,
    pub(super) extra_keys: bool,
}

pub(super) enum Field<'a> {
    Str(Cow<'a, str>),
    Other(JsonKind),
}

/// The top-level JSON value. Every shape deserialises successfully, so serde
/// only fails on syntax, and its messages (which could quote content) are
/// never shown.
enum Top<'a> {
    Object(Fields<'a>),
    Other(JsonKind),
}

pub(super) fn parse_json(json: &[u8], raw: bool) -> Result<Fields<'_>, TokenError> {
    // The visitors recurse at most two levels (top object, one value); any
    // deeper value is skipped by serde_json's `ignore_value`, which keeps
    // its nesting on the heap, bounded by the input size. serde_json's
    // recursion limit (128) stays on as a second guard.
    let mut de = serde_json::Deserializer::from_slice(json);
    let top = de
        .deserialize_any(TopVisitor)
        .and_then(|top| de.end().map(|()| top))
        .map_err(|err| TokenError::NotJson {
            problem: json_problem(json, &err),
            raw,
        })?;
    match top {
        Top::Object(fields) => Ok(fields),
        Top::Other(found) => Err(TokenError::NotObject { found }),
    }
}

fn json_problem(json: &[u8], err: &serde_json::Error) -> JsonProblem {
    let (line, column) = (err.line(), err.column());
    if std::str::from_utf8(json).is_err() {
        JsonProblem::NotUtf8
    } else if err.is_eof() {
        JsonProblem::Truncated { line, column }
    } else {
        JsonProblem::Syntax { line, column }
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        let mut fields = Fields {
            exp_date: None,
            token: None,
            org_name: None,
            extra_keys: false,
        };
        // Duplicate keys: the last one wins, as in Go and Python readers.
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::ExpDate => fields.exp_date = Some(map.next_value()?),
                Key::Token => fields.token = Some(map.next_value()?),
                Key::OrgName => fields.org_name = Some(map.next_value()?),
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                    fields.extra_keys = true;
                }
            }
        }
        Ok(Top::Object(fields))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Top<'de>, A::Error> {
        skip_seq(seq).map(|()| Top::Other(JsonKind::Array))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Top<'de>, E> {
        Ok(Top::Other(JsonKind::String))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Top<'de>, E> {
        Ok(Top::Other(JsonKind::Bool))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Top<'de>, E> {
        Ok(Top::Other(JsonKind::Number))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Top<'de>, E> {
        Ok(Top::Other(JsonKind::Number))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Top<'de>, E> {
        Ok(Top::Other(JsonKind::Number))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Top<'de>, E> {
        Ok(Top::Other(JsonKind::Null))
    }
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

enum Key {
    ExpDate,
    Token,
    OrgName,
    Other,
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "expDate" => Key::ExpDate,
                    "token" => Key::Token,
                    "orgName" => Key::OrgName,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de> serde::Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Field<'de>, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Owned(s)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Field<'de>, E> {
                Ok(Field::Other(JsonKind::Bool))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Field<'de>, E> {
                Ok(Field::Other(JsonKind::Number))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Field<'de>, E> {
                Ok(Field::Other(JsonKind::Number))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Field<'de>, E> {
                Ok(Field::Other(JsonKind::Number))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Field<'de>, E> {
                Ok(Field::Other(JsonKind::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Field<'de>, A::Error> {
                skip_seq(seq).map(|()| Field::Other(JsonKind::Array))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Field<'de>, A::Error> {
                skip_map(map).map(|()| Field::Other(JsonKind::Object))
            }
        }
        d.deserialize_any(FieldVisitor)
    }
}
