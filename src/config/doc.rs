//! Phase one of config loading: walk a parsed TOML document and collect
//! every unknown key and type error with its line and column, instead of
//! stopping at the first one as serde's `deny_unknown_fields` would.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;

use toml_edit::{Item, TableLike, Value};

/// One thing wrong with a config file, located for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    /// Dotted key, e.g. `folder[2].path`; empty for whole-file problems.
    pub key: String,
    pub message: String,
}

/// Collects problems while a document is read. Offsets become line and
/// column once, here, so every error carries the same kind of position.
pub struct Diagnostics<'a> {
    source: &'a str,
    pub problems: Vec<Problem>,
}

impl<'a> Diagnostics<'a> {
    pub fn new(source: &'a str) -> Self {
        Diagnostics {
            source,
            problems: Vec::new(),
        }
    }

    pub fn report(&mut self, span: Option<Range<usize>>, key: &str, message: impl Into<String>) {
        let (line, column) = self.position(span.map(|s| s.start).unwrap_or(0));
        self.problems.push(Problem {
            line,
            column,
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.source.len());
        let before = self.source.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before.get(line_start..).unwrap_or("").chars().count() + 1;
        (line, column)
    }
}

pub fn render_problem(file: &Path, p: &Problem) -> String {
    if p.key.is_empty() {
        format!("{}:{}:{}: {}", file.display(), p.line, p.column, p.message)
    } else {
        format!(
            "{}:{}:{}: {}: {}",
            file.display(),
            p.line,
            p.column,
            p.key,
            p.message
        )
    }
}

/// A table being read: remembers which keys were asked for, so that
/// [`Section::finish`] can report every key nobody asked for.
pub struct Section<'t> {
    table: &'t dyn TableLike,
    span: Option<Range<usize>>,
    path: String,
    known: BTreeSet<&'static str>,
}

fn item_span(item: &Item) -> Option<Range<usize>> {
    match item {
        Item::Value(v) => v.span(),
        Item::Table(t) => t.span(),
        Item::ArrayOfTables(a) => a.span(),
        Item::None => None,
    }
}

fn type_name(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
        Item::Value(v) => match v {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Boolean(_) => "a boolean",
            Value::Datetime(_) => "a date-time",
            Value::Array(_) => "an array",
            Value::InlineTable(_) => "an inline table",
        },
    }
}

impl<'t> Section<'t> {
    pub fn root(table: &'t dyn TableLike) -> Self {
        Section {
            table,
            span: None,
            path: String::new(),
            known: BTreeSet::new(),
        }
    }

    pub fn span(&self) -> Option<Range<usize>> {
        self.span.clone()
    }

    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{}", self.path, key)
        }
    }

    /// The item under `key` and the span to point at for its value.
    fn item(&mut self, key: &'static str) -> Option<(&'t Item, Option<Range<usize>>)> {
        self.known.insert(key);
        let (k, item) = self.table.get_key_value(key)?;
        let span = item_span(item).or_else(|| k.span());
        Some((item, span))
    }

    fn wrong_type(
        &self,
        d: &mut Diagnostics,
        key: &str,
        item: &Item,
        span: Option<Range<usize>>,
        want: &str,
    ) {
        d.report(
            span,
            &self.key_path(key),
            format!("expected {want}, found {}", type_name(item)),
        );
    }

    /// The span of a key's value, for problems found in phase two.
    pub fn value_span(&self, key: &str) -> Option<Range<usize>> {
        self.table
            .get_key_value(key)
            .and_then(|(k, item)| item_span(item).or_else(|| k.span()))
    }

    /// A scalar `get` can read, or a report naming what was `want`ed.
    fn scalar<T>(
        &mut self,
        d: &mut Diagnostics,
        key: &'static str,
        want: &str,
        get: impl FnOnce(&Item) -> Option<T>,
    ) -> Option<(T, Option<Range<usize>>)> {
        let (item, span) = self.item(key)?;
        match get(item) {
            Some(v) => Some((v, span)),
            None => {
                self.wrong_type(d, key, item, span, want);
                None
            }
        }
    }

    pub fn string(
        &mut self,
        d: &mut Diagnostics,
        key: &'static str,
    ) -> Option<(String, Option<Range<usize>>)> {
        self.scalar(d, key, "a string", |i| i.as_str().map(str::to_string))
    }

    pub fn integer(
        &mut self,
        d: &mut Diagnostics,
        key: &'static str,
    ) -> Option<(i64, Option<Range<usize>>)> {
        self.scalar(d, key, "an integer", Item::as_integer)
    }

    pub fn boolean(&mut self, d: &mut Diagnostics, key: &'static str) -> Option<bool> {
        self.scalar(d, key, "true or false", Item::as_bool)
            .map(|(b, _)| b)
    }

    /// A TOML date-time or a string, as text with its span; the caller
    /// parses it (both forms are accepted so users need not know TOML's
    /// date-time literal).
    pub fn datetime_text(
        &mut self,
        d: &mut Diagnostics,
        key: &'static str,
    ) -> Option<(String, Option<Range<usize>>)> {
        self.scalar(
            d,
            key,
            "a date-time such as 2026-10-01T12:00:00Z",
            |item| match item {
                Item::Value(Value::Datetime(dt)) => Some(dt.value().to_string()),
                Item::Value(Value::String(s)) => Some(s.value().clone()),
                _ => None,
            },
        )
    }

    /// An array of what `get` can read; each element keeps its own span,
    /// and one of the wrong type is reported without losing the others.
    fn array<T>(
        &mut self,
        d: &mut Diagnostics,
        key: &'static str,
        want: &str,
        element: &str,
        get: impl Fn(&Value) -> Option<T>,
    ) -> Option<Vec<(T, Option<Range<usize>>)>> {
        let (item, span) = self.item(key)?;
        let Some(array) = item.as_array() else {
            self.wrong_type(d, key, item, span, want);
            return None;
        };
        let mut out = Vec::new();
        for (i, v) in array.iter().enumerate() {
            match get(v) {
                Some(x) => out.push((x, v.span())),
                None => d.report(
                    v.span(),
                    &format!("{}[{i}]", self.key_path(key)),
                    format!("expected {element}"),
                ),
            }
        }
        Some(out)
    }

    pub fn strings(
        &mut self,
        d: &mut Diagnostics,
        key: &'static str,
    ) -> Option<Vec<(String, Option<Range<usize>>)>> {
        self.array(d, key, "an array of strings", "a string", |v| {
            v.as_str().map(str::to_string)
        })
    }

    pub fn integers(
        &mut self,
        d: &mut Diagnostics,
        key: &'static str,
    ) -> Option<Vec<(i64, Option<Range<usize>>)>> {
        self.array(
            d,
            key,
            "an array of integers",
            "an integer",
            Value::as_integer,
        )
    }

    /// A sub-table (`[name]` or an inline table).
    pub fn table(&mut self, d: &mut Diagnostics, key: &'static str) -> Option<Section<'t>> {
        let (item, span) = self.item(key)?;
        match item.as_table_like() {
            Some(t) if !matches!(item, Item::ArrayOfTables(_)) => Some(Section {
                table: t,
                span,
                path: self.key_path(key),
                known: BTreeSet::new(),
            }),
            _ => {
                self.wrong_type(d, key, item, span, "a table");
                None
            }
        }
    }

    /// An array of tables (`[[name]]`, or an array of inline tables).
    pub fn tables(&mut self, d: &mut Diagnostics, key: &'static str) -> Vec<Section<'t>> {
        let Some((item, span)) = self.item(key) else {
            return Vec::new();
        };
        let base = self.key_path(key);
        match item {
            Item::ArrayOfTables(a) => a
                .iter()
                .enumerate()
                .map(|(i, t)| Section {
                    table: t,
                    span: t.span(),
                    path: format!("{base}[{}]", i + 1),
                    known: BTreeSet::new(),
                })
                .collect(),
            Item::Value(Value::Array(a)) => {
                let mut out = Vec::new();
                for (i, v) in a.iter().enumerate() {
                    match v.as_inline_table() {
                        Some(t) => out.push(Section {
                            table: t,
                            span: v.span(),
                            path: format!("{base}[{}]", i + 1),
                            known: BTreeSet::new(),
                        }),
                        None => {
                            d.report(v.span(), &format!("{base}[{}]", i + 1), "expected a table")
                        }
                    }
                }
                out
            }
            _ => {
                self.wrong_type(d, key, item, span, "an array of tables");
                Vec::new()
            }
        }
    }

    /// Reports every key of this table that was never asked for.
    pub fn finish(self, d: &mut Diagnostics) {
        for (key, item) in self.table.iter() {
            if !self.known.contains(key) {
                let span = self
                    .table
                    .get_key_value(key)
                    .and_then(|(k, _)| k.span())
                    .or_else(|| item_span(item));
                let expected: Vec<&str> = self.known.iter().copied().collect();
                d.report(
                    span,
                    &self.key_path(key),
                    format!("unknown key (expected one of: {})", expected.join(", ")),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_counts_lines_and_characters() {
        let d = Diagnostics::new("a = 1\nbé = 2\n");
        assert_eq!(d.position(0), (1, 1));
        assert_eq!(d.position(6), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(d.position(9), (2, 3));
    }
}
