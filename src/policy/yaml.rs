//! YAML → `serde_json::Value` plus a map from field path to source position, so that every
//! error (serde's and our own semantic ones) can name file, line and column. The YAML crate
//! stays behind this file.

use std::collections::HashMap;

use serde_json::{Map, Value};
use yaml_rust2::Yaml;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// A parsed document and where each path (`scale_up.cooldown`, `signals[0].trino`) starts.
#[derive(Debug, Clone)]
pub struct Document {
    pub value: Value,
    pub positions: HashMap<String, Position>,
}

impl Document {
    /// Position of `path`, or of its nearest ancestor that has one.
    pub fn position(&self, path: &str) -> Option<Position> {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return Some(*pos);
            }
            match p.rfind(['.', '[']) {
                Some(cut) => p = &p[..cut],
                None if !p.is_empty() => p = "",
                None => return None,
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub position: Position,
    pub message: String,
}

/// Parses one YAML document.
pub fn parse(text: &str) -> Result<Document, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, false).map_err(|e| SyntaxError {
        position: to_position(e.marker()),
        message: e.info().to_string(),
    })?;
    if let Some(message) = builder.error {
        return Err(SyntaxError {
            position: builder.error_at,
            message,
        });
    }
    Ok(Document {
        value: builder.root.unwrap_or(Value::Null),
        positions: builder.positions,
    })
}

fn to_position(m: &Marker) -> Position {
    Position {
        line: m.line(),
        column: m.col() + 1,
    }
}

enum Frame {
    Map {
        map: Map<String, Value>,
        path: String,
        pending_key: Option<String>,
        anchor: usize,
    },
    Seq {
        items: Vec<Value>,
        path: String,
        anchor: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    positions: HashMap<String, Position>,
    anchors: HashMap<usize, Value>,
    error: Option<String>,
    error_at: Position,
}

impl Builder {
    /// Path of the value about to be produced at the top of the stack.
    fn child_path(&self) -> Option<String> {
        match self.stack.last() {
            None => Some(String::new()),
            Some(Frame::Map {
                path,
                pending_key: Some(k),
                ..
            }) => Some(join(path, k)),
            Some(Frame::Map {
                pending_key: None, ..
            }) => None, // this scalar is a key
            Some(Frame::Seq { items, path, .. }) => Some(format!("{path}[{}]", items.len())),
        }
    }

    fn push_value(&mut self, value: Value, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Map {
                map, pending_key, ..
            }) => {
                if let Some(k) = pending_key.take() {
                    map.insert(k, value);
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(value),
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let pos = to_position(&mark);
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                if let Some(Frame::Map {
                    pending_key: key @ None,
                    path,
                    map,
                    ..
                }) = self.stack.last_mut()
                {
                    let full = join(path, &text);
                    if map.contains_key(&text) {
                        self.error = Some(format!("duplicate key `{text}`"));
                        self.error_at = pos;
                        return;
                    }
                    if path.is_empty() {
                        self.positions.entry(String::new()).or_insert(pos);
                    }
                    self.positions.insert(full, pos);
                    *key = Some(text);
                    return;
                }
                if let Some(p) = self.child_path() {
                    self.positions.entry(p).or_insert(pos);
                }
                let value = if style == TScalarStyle::Plain {
                    resolve_plain(&text)
                } else {
                    Value::String(text)
                };
                self.push_value(value, anchor);
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                let Some(path) = self.child_path() else {
                    self.error = Some("complex mapping keys are not supported".into());
                    self.error_at = pos;
                    return;
                };
                if !path.is_empty() {
                    // The document root is placed at its first key instead (see below).
                    self.positions.entry(path.clone()).or_insert(pos);
                }
                self.stack.push(match ev {
                    Event::MappingStart(..) => Frame::Map {
                        map: Map::new(),
                        path,
                        pending_key: None,
                        anchor,
                    },
                    _ => Frame::Seq {
                        items: Vec::new(),
                        path,
                        anchor,
                    },
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Frame::Map { map, anchor, .. }) => (Value::Object(map), anchor),
                    Some(Frame::Seq { items, anchor, .. }) => (Value::Array(items), anchor),
                    None => return,
                };
                self.push_value(value, anchor);
            }
            Event::Alias(id) => {
                let value = self.anchors.get(&id).cloned().unwrap_or(Value::Null);
                self.push_value(value, 0);
            }
            _ => {}
        }
    }
}

/// YAML 1.2 core schema for plain scalars.
fn resolve_plain(text: &str) -> Value {
    match Yaml::from_str(text) {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => Value::from(i),
        Yaml::Real(r) => r
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(text.to_string())),
        _ => Value::String(text.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_positions_of_keys_and_items() {
        let doc =
            parse("pool: a\nsignals:\n  - trino: { coordinator: x }\n    per_worker: 4\n").unwrap();
        assert_eq!(doc.positions["pool"], Position { line: 1, column: 1 });
        assert_eq!(
            doc.positions["signals[0].per_worker"],
            Position { line: 4, column: 5 }
        );
        assert_eq!(doc.value["signals"][0]["per_worker"], 4);
        assert_eq!(
            doc.position("signals[0].trino.nope"),
            Some(doc.positions["signals[0].trino"])
        );
    }

    #[test]
    fn resolves_plain_scalars_but_keeps_quoted_strings() {
        let doc = parse("a: 1.5\nb: true\nc: '7'\nd: ~\ne: 90s\n").unwrap();
        assert_eq!(doc.value["a"], 1.5);
        assert_eq!(doc.value["b"], true);
        assert_eq!(doc.value["c"], "7");
        assert!(doc.value["d"].is_null());
        assert_eq!(doc.value["e"], "90s");
    }

    #[test]
    fn duplicate_keys_and_syntax_errors_have_positions() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.position.line, 3);
        assert!(err.message.contains("duplicate key `a`"));
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.position.line >= 1);
    }

    #[test]
    fn anchors_and_aliases_are_expanded() {
        let doc = parse("base: &b { x: 1 }\nother: *b\n").unwrap();
        assert_eq!(doc.value["other"]["x"], 1);
    }
}
