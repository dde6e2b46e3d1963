//! The files loadtest's stages exchange, as serde types: the run result
//! ([`run`]), the forecast ([`forecast`]), the purchase plan ([`plan`]) and
//! the verification ([`verify`]); and the vocabulary they are written in
//! ([`units`]: durations and the service-time distribution).
//!
//! A producer builds these types and serializes them; a reader parses them
//! once, through the document's `kind`, with [`read`]. There is one copy of
//! each type, so a field renamed in a producer is renamed for every reader
//! at compile time. This crate depends on serde alone (no runtime, solver
//! or dataframe), so every stage can take it without depending on another
//! stage.
//!
//! ```
//! let text = r#"{"kind": "verify", "note": "two replicas", "cases": []}"#;
//! match contracts::read(text).unwrap() {
//!     contracts::Doc::Verify(v) => assert_eq!(v.note, "two replicas"),
//!     other => panic!("not a verify document: {}", other.kind()),
//! }
//! ```
#![deny(missing_docs)]

pub mod forecast;
pub mod plan;
pub mod run;
pub mod units;
pub mod verify;

pub use forecast::Forecast;
pub use plan::Plan;
pub use run::RunResult;
pub use verify::Verify;

/// A unit type that serializes as one `kind` string and reads only that
/// string, so a document of another kind does not parse as this one.
#[macro_export]
#[doc(hidden)]
macro_rules! tag {
    ($name:ident, $kind:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name;

        impl $name {
            /// The `kind` string.
            pub const KIND: &'static str = $kind;
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($kind)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let k = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                if k == $kind {
                    Ok($name)
                } else {
                    Err(serde::de::Error::invalid_value(
                        serde::de::Unexpected::Str(&k),
                        &concat!("\"", $kind, "\""),
                    ))
                }
            }
        }
    };
}

/// Any document one stage writes and another reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc {
    /// `loadtest run --json`.
    Run(Box<RunResult>),
    /// `loadtest simulate --json`.
    Forecast(Box<Forecast>),
    /// `loadtest optimize --json`.
    Plan(Box<Plan>),
    /// `loadtest plan --verify`'s `verify.json`.
    Verify(Box<Verify>),
}

impl Doc {
    /// The document's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Doc::Run(_) => run::RunTag::KIND,
            Doc::Forecast(_) => forecast::ForecastTag::KIND,
            Doc::Plan(_) => plan::PlanTag::KIND,
            Doc::Verify(_) => verify::VerifyTag::KIND,
        }
    }
}

impl serde::Serialize for Doc {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Doc::Run(d) => d.serialize(s),
            Doc::Forecast(d) => d.serialize(s),
            Doc::Plan(d) => d.serialize(s),
            Doc::Verify(d) => d.serialize(s),
        }
    }
}

/// At most `n` characters of `s`, then `…`: a message that quotes its
/// input (a field's value, a file's first line) must not echo a megabyte
/// of it.
pub fn cut(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Why a document did not read. The caller adds the file's name.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadError {
    /// Not JSON, or JSON of the wrong shape: where and why.
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The field's path, e.g. `windows[3].p95_ms` (empty at the top).
        path: String,
        /// What serde said, without its position.
        why: String,
    },
    /// A `kind` this crate does not know (empty when there is none).
    Kind(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Json {
                line,
                column,
                path,
                why,
            } if path.is_empty() || path == "." => write!(f, "{line}:{column}: {why}"),
            ReadError::Json {
                line,
                column,
                path,
                why,
            } => write!(f, "{line}:{column}: `{path}`: {why}"),
            ReadError::Kind(k) => write!(
                f,
                "`kind` is `{k}`; expected the JSON of `loadtest run`, `simulate`, `optimize` or `plan --verify`"
            ),
        }
    }
}

impl std::error::Error for ReadError {}

/// Parses a document, told apart by its `kind`.
pub fn read(text: &str) -> Result<Doc, ReadError> {
    #[derive(serde::Deserialize)]
    struct Kind {
        #[serde(default)]
        kind: String,
    }
    let k: Kind = serde_json::from_str(text).map_err(|e| json_error(e, String::new()))?;
    read_as(&k.kind, text)
}

/// Parses a document whose `kind` the caller has already read (from a
/// `serde_json::Value` of the same text, say).
pub fn read_as(kind: &str, text: &str) -> Result<Doc, ReadError> {
    Ok(match kind {
        run::RunTag::KIND => Doc::Run(parse(text)?),
        forecast::ForecastTag::KIND => Doc::Forecast(parse(text)?),
        plan::PlanTag::KIND => Doc::Plan(parse(text)?),
        verify::VerifyTag::KIND => Doc::Verify(parse(text)?),
        _ => return Err(ReadError::Kind(kind.to_string())),
    })
}

/// Parses one document of a known type, with the failing field's path.
pub fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ReadError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let v = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        json_error(e.into_inner(), path)
    })?;
    de.end().map_err(|e| json_error(e, String::new()))?;
    Ok(v)
}

fn json_error(e: serde_json::Error, path: String) -> ReadError {
    let (line, column) = (e.line(), e.column());
    let why = e.to_string();
    let why = why
        .strip_suffix(&format!(" at line {line} column {column}"))
        .unwrap_or(&why)
        .to_string();
    ReadError::Json {
        line,
        column,
        path,
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document of one kind never parses as another: the tag is checked.
    #[test]
    fn a_tag_reads_only_its_own_kind() {
        let v = serde_json::to_string(&Verify::default()).unwrap();
        assert!(v.contains(r#""kind":"verify""#), "{v}");
        let e = parse::<Verify>(&v.replace("verify", "plan")).unwrap_err();
        assert!(e.to_string().contains("`kind`"), "{e}");
        assert!(matches!(read(&v), Ok(Doc::Verify(_))));
    }

    #[test]
    fn an_unknown_kind_names_what_is_expected() {
        let e = read(r#"{"kind": "weather"}"#).unwrap_err();
        assert_eq!(e, ReadError::Kind("weather".into()));
        assert!(e.to_string().contains("`loadtest run`"), "{e}");
    }

    #[test]
    fn a_wrong_field_has_its_path_and_position() {
        let mut f = serde_json::to_value(Forecast::default()).unwrap();
        f["slo"]["minutes"] = serde_json::json!("many");
        let text = serde_json::to_string_pretty(&f).unwrap();
        let Err(ReadError::Json { path, line, .. }) = read(&text) else {
            panic!("read a bad field")
        };
        assert_eq!(path, "slo.minutes");
        assert!(line > 1);
    }

    #[test]
    fn cut_keeps_whole_characters() {
        assert_eq!(cut("héllo", 2), "hé…");
        assert_eq!(cut("hi", 2), "hi");
    }

    /// The error classes are the CSV header's last columns, in order.
    #[test]
    fn the_csv_header_ends_with_the_error_classes() {
        let h = run::csv_header();
        assert!(h.ends_with(&run::ERROR_CLASSES.join(",")), "{h}");
        let row = run::csv_row(&run::SecondRow::default());
        assert_eq!(row.split(',').count(), h.split(',').count());
    }
}
