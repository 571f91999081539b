//! YAML → `serde_json::Value` plus a map from field path to source position, so that every
//! error (serde's and our own semantic ones) can name file, line and column. The YAML crate
//! stays behind this file.
//!
//! Every YAML input (policy, settings, scenario) goes through here, so the limits live here
//! too: a size cap checked before parsing, a budget on what the document expands to (an alias
//! bomb of a few lines would otherwise take gigabytes), a nesting limit (dropping a deeply
//! nested value recurses), and one document per file (a second one used to be silently cut).

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
    /// Complete (`YAML syntax: …`, a limit, a duplicate key); callers add only the file.
    pub message: String,
}

/// Largest YAML input accepted, in bytes: far above any real policy, settings or scenario
/// file, and small enough that a mistaken or hostile file is refused before it is parsed.
pub const MAX_BYTES: usize = 1 << 20;

/// Budget for what a document expands to once aliases are resolved: every value costs
/// [`NODE_COST`] plus the length of its text and of its field path. A real file uses a few
/// kilobytes; a 9-line alias bomb asks for 10⁹ values and is stopped here.
pub const MAX_EXPANDED: usize = 8 << 20;
const NODE_COST: usize = 8;

/// Deepest nesting of mappings and sequences.
pub const MAX_DEPTH: usize = 64;

/// Reads a YAML file of at most [`MAX_BYTES`] as UTF-8. The message names no file (the
/// caller's error type does).
pub fn read_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() > MAX_BYTES {
        return Err(too_large());
    }
    decode(bytes)
}

fn too_large() -> String {
    format!(
        "the file is larger than {} KiB, the limit for YAML inputs",
        MAX_BYTES / 1024
    )
}

/// UTF-8 text, or an error naming the byte offset of the first invalid byte.
pub fn decode(bytes: Vec<u8>) -> Result<String, String> {
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8: invalid byte at offset {}",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Parses one YAML document. A file with no document (empty, or only comments) gives
/// `Value::Null`; callers say what that means for them.
pub fn parse(text: &str) -> Result<Document, SyntaxError> {
    if text.len() > MAX_BYTES {
        return Err(SyntaxError {
            position: Position { line: 1, column: 1 },
            message: too_large(),
        });
    }
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, true).map_err(|e| SyntaxError {
        position: to_position(e.marker()),
        message: format!("YAML syntax: {}", e.info()),
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
        /// `Builder::expanded` when the frame opened: its own cost is the difference.
        cost_before: usize,
    },
    Seq {
        items: Vec<Value>,
        path: String,
        anchor: usize,
        cost_before: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    positions: HashMap<String, Position>,
    /// Anchored values and what each cost, so an alias is charged the full copy it makes.
    anchors: HashMap<usize, (Value, usize)>,
    /// Cost of everything built so far (see [`MAX_EXPANDED`]).
    expanded: usize,
    documents: usize,
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

    /// Charges `cost` to the expansion budget; false (and an error) when it is spent.
    fn charge(&mut self, cost: usize, pos: Position) -> bool {
        self.expanded = self.expanded.saturating_add(cost);
        if self.expanded > MAX_EXPANDED {
            self.fail(
                format!(
                    "the document expands to more than {} MiB of values (aliases included); \
                     no real file is that large",
                    MAX_EXPANDED >> 20
                ),
                pos,
            );
            return false;
        }
        true
    }

    fn fail(&mut self, message: String, pos: Position) {
        self.error = Some(message);
        self.error_at = pos;
    }

    fn push_value(&mut self, value: Value, anchor: usize, cost: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, (value.clone(), cost));
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
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    self.fail(
                        "a second YAML document (`---`): a file holds exactly one".into(),
                        pos,
                    );
                }
            }
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
                        self.fail(format!("duplicate key `{text}`"), pos);
                        return;
                    }
                    let root = path.is_empty();
                    *key = Some(text);
                    if !self.charge(NODE_COST + 2 * full.len(), pos) {
                        return;
                    }
                    if root {
                        self.positions.entry(String::new()).or_insert(pos);
                    }
                    self.positions.insert(full, pos);
                    return;
                }
                let path = self.child_path();
                let cost = NODE_COST + text.len() + path.as_ref().map_or(0, String::len);
                if !self.charge(cost, pos) {
                    return;
                }
                if let Some(p) = path {
                    self.positions.entry(p).or_insert(pos);
                }
                let value = if style == TScalarStyle::Plain {
                    resolve_plain(&text)
                } else {
                    Value::String(text)
                };
                self.push_value(value, anchor, cost);
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                let Some(path) = self.child_path() else {
                    self.fail("complex mapping keys are not supported".into(), pos);
                    return;
                };
                if self.stack.len() >= MAX_DEPTH {
                    self.fail(format!("nested more than {MAX_DEPTH} levels deep"), pos);
                    return;
                }
                let cost_before = self.expanded;
                if !self.charge(NODE_COST + path.len(), pos) {
                    return;
                }
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
                        cost_before,
                    },
                    _ => Frame::Seq {
                        items: Vec::new(),
                        path,
                        anchor,
                        cost_before,
                    },
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let (value, anchor, before) = match self.stack.pop() {
                    Some(Frame::Map {
                        map,
                        anchor,
                        cost_before,
                        ..
                    }) => (Value::Object(map), anchor, cost_before),
                    Some(Frame::Seq {
                        items,
                        anchor,
                        cost_before,
                        ..
                    }) => (Value::Array(items), anchor, cost_before),
                    None => return,
                };
                let cost = self.expanded - before;
                self.push_value(value, anchor, cost);
            }
            Event::Alias(id) => {
                let cost = self.anchors.get(&id).map_or(NODE_COST, |(_, c)| *c);
                // Charged before the copy is made, so a bomb never allocates.
                if !self.charge(cost, pos) {
                    return;
                }
                let value = self
                    .anchors
                    .get(&id)
                    .map_or(Value::Null, |(v, _)| v.clone());
                self.push_value(value, 0, cost);
            }
            _ => {}
        }
    }
}

/// A value given as text outside a document (an environment variable), read as a plain
/// YAML scalar: `40` is a number, `true` a bool, `5s` a string.
pub fn scalar(text: &str) -> Value {
    resolve_plain(text)
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
