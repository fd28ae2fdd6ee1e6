//! The deserializer that feeds [`RawSettings`]' derived `Deserialize`.
//!
//! serde's own value deserializers would refuse an unknown variable with
//! "unknown field `x`, expected one of" all forty fields, and a wrong type
//! without saying which key. This one knows where each value came from (the
//! environment variable, or the TOML file and key), so every refusal names
//! the variable, or the file and its key, in the words the README promises.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::value::MapDeserializer;
use serde::de::{self, IntoDeserializer, Visitor};

use super::ConfigError;
use super::raw::RawSettings;
use super::source::{CONFIG, PREFIX};

/// The values given, by field name, into [`RawSettings`].
pub(super) fn raw_settings(
    entries: BTreeMap<String, (Origin, Value)>,
) -> Result<RawSettings, ConfigError> {
    let map = entries
        .into_iter()
        .map(|(field, (origin, value))| (Key(field, origin.clone()), Field(origin, value)));
    RawSettings::deserialize(MapDeserializer::new(map)).map_err(|e| match e {
        DeError::Config(e) => e,
        // `Key` turns unknown fields into `Config`; nothing else reaches here.
        DeError::UnknownField(field) => ConfigError::new(&field, "unknown variable"),
        DeError::Other(problem) => ConfigError::new(CONFIG, problem),
    })
}

/// Where a value was given.
#[derive(Debug, Clone)]
pub(super) enum Origin {
    /// The environment variable, as written.
    Env(String),
    /// A key of the TOML file, as written.
    File { path: PathBuf, key: String },
}

impl Origin {
    /// The variable an error about this value names.
    fn variable(&self) -> String {
        match self {
            Origin::Env(var) => var.clone(),
            Origin::File { key, .. } => format!("{PREFIX}{}", key.to_ascii_uppercase()),
        }
    }

    /// The refusal of an unknown variable or key.
    pub(super) fn unknown(&self) -> ConfigError {
        match self {
            Origin::Env(var) => ConfigError::new(
                var,
                "unknown variable (see the configuration table in the README)",
            ),
            Origin::File { path, key } => {
                ConfigError::new(CONFIG, format!("{}: unknown key `{key}`", path.display()))
            }
        }
    }
}

/// A value as given: environment variables are text; the file has TOML types.
#[derive(Debug, Clone)]
pub(super) enum Value {
    Text(String),
    Toml(toml::Value),
}

/// A deserialization error: the derive's unknown field, or one naming its variable.
#[derive(Debug)]
enum DeError {
    UnknownField(String),
    Config(ConfigError),
    Other(String),
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeError::UnknownField(field) => write!(f, "unknown field `{field}`"),
            DeError::Config(e) => e.fmt(f),
            DeError::Other(problem) => f.write_str(problem),
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::Other(msg.to_string())
    }

    fn unknown_field(field: &str, _expected: &'static [&'static str]) -> Self {
        DeError::UnknownField(field.to_owned())
    }
}

/// A field name, which turns the derive's "unknown field" into the error
/// naming the variable or the file's key.
struct Key(String, Origin);

impl<'de> de::Deserializer<'de> for Key {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let Key(field, origin) = self;
        visitor.visit_string(field).map_err(|e| match e {
            DeError::UnknownField(_) => DeError::Config(origin.unknown()),
            other => other,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

impl IntoDeserializer<'_, DeError> for Key {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// A field's value: text from the environment; from the file also an integer
/// or a boolean (read as its text), anything else refused naming the variable.
/// An empty value is no value.
struct Field(Origin, Value);

impl Field {
    fn text(self) -> Result<String, ConfigError> {
        match self.1 {
            Value::Text(s) | Value::Toml(toml::Value::String(s)) => Ok(s),
            Value::Toml(toml::Value::Integer(i)) => Ok(i.to_string()),
            Value::Toml(toml::Value::Boolean(b)) => Ok(b.to_string()),
            Value::Toml(other) => {
                let Origin::File { path, key } = &self.0 else {
                    unreachable!("TOML values come from the file")
                };
                Err(ConfigError::new(
                    &self.0.variable(),
                    format!(
                        "{}: `{key}` must be a string or a number, not {}",
                        path.display(),
                        other.type_str()
                    ),
                ))
            }
        }
    }

    fn is_empty(&self) -> bool {
        matches!(&self.1, Value::Text(s) | Value::Toml(toml::Value::String(s)) if s.is_empty())
    }
}

impl<'de> de::Deserializer<'de> for Field {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let variable = self.0.variable();
        let text = self.text().map_err(DeError::Config)?;
        // A typed field's own complaint still names the variable.
        visitor.visit_string(text).map_err(|e| match e {
            DeError::Other(problem) => DeError::Config(ConfigError::new(&variable, problem)),
            other => other,
        })
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.is_empty() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

impl IntoDeserializer<'_, DeError> for Field {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}
