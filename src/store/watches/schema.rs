//! The JSON Schema (draft 2020-12) of a watched kind's data, from its columns' PostgreSQL types:
//! what `jsonb_build_object`, as `to_jsonb`, writes of each. Integers and `numeric` become JSON
//! numbers, `boolean` booleans, `json` and `jsonb` themselves, arrays arrays (nested, for more
//! than one dimension), composites objects, a domain what its base type becomes, an enum one of
//! its labels, and everything else its text (with the `format` JSON Schema names, where it has
//! one). A column may be null unless it is `NOT NULL` (or of a `NOT NULL` domain).

use std::collections::HashMap;

use serde_json::{json, Map, Value};
use tokio_postgres::Row;

use super::{Column, Watch};

/// The JSON Schema dialect of the schemas made here.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// How deep types may be made of types (domains of arrays of composites…) before the schema
/// stops saying more; PostgreSQL's own types are far shallower.
const MAX_DEPTH: usize = 32;

const BIGINT: &str = "beyond 2^53 (9007199254740992) a JSON number loses precision in \
    JavaScript, which reads numbers as doubles";
const NOT_A_NUMBER: &str = "NaN and Infinity, which PostgreSQL allows, come as the strings \
    \"NaN\", \"Infinity\" and \"-Infinity\"";
const INFINITY: &str = "infinity and -infinity come as those words";
const LOCAL_TIME: &str = "ISO 8601 without an offset (2026-01-31T12:00:00); infinity and \
    -infinity come as those words";
const BYTEA: &str = "the bytes in hexadecimal after \\x (\\x0aff), as bytea_output = hex writes \
    them";

/// What decides the JSON form of a type's values (`sql/json_types.sql`).
pub struct Type {
    pub oid: u32,
    /// Its `pg_type.typname`: `int8`, `_text`, the name of an enum…
    pub typname: String,
    /// Whether it is one of PostgreSQL's own (schema `pg_catalog`).
    pub catalog: bool,
    /// `pg_type.typtype`: `b` base, `c` composite, `d` domain, `e` enum, `m` multirange,
    /// `r` range.
    pub typtype: String,
    /// A domain's base type, and whether the domain is `NOT NULL`.
    pub base: Option<u32>,
    pub not_null: bool,
    /// An array's element type.
    pub element: Option<u32>,
    /// An enum's labels, in their order.
    pub labels: Vec<String>,
    /// A composite's attributes, in their order, and their types.
    pub attributes: Vec<(String, u32)>,
    /// Whether `to_jsonb` writes it with a cast to `json` of its own.
    pub json_cast: bool,
}

impl From<&Row> for Type {
    fn from(row: &Row) -> Type {
        let names: Vec<String> = row.get("attribute_names");
        let types: Vec<u32> = row.get("attribute_types");
        Type {
            oid: row.get("oid"),
            typname: row.get("typname"),
            catalog: row.get("catalog"),
            typtype: row.get("typtype"),
            base: row.get("base"),
            not_null: row.get("not_null"),
            element: row.get("element"),
            labels: row.get("labels"),
            attributes: names.into_iter().zip(types).collect(),
            json_cast: row.get("json_cast"),
        }
    }
}

/// The types columns are of, and those they are made of, by oid.
#[derive(Default)]
pub struct Types(HashMap<u32, Type>);

impl FromIterator<Type> for Types {
    fn from_iter<I: IntoIterator<Item = Type>>(types: I) -> Types {
        Types(types.into_iter().map(|t| (t.oid, t)).collect())
    }
}

/// The schema of a watched kind's data: one shape per watched operation, `op` telling them
/// apart; the row's schema is in `$defs`.
pub fn data(watch: &Watch, types: &Types) -> Value {
    let names: Vec<&str> = watch.columns.iter().map(|c| c.name.as_str()).collect();
    let properties: Map<String, Value> = watch
        .columns
        .iter()
        .map(|c| (c.name.clone(), types.column(c)))
        .collect();
    let row = json!({
        "type": "object",
        "properties": properties,
        "required": names,
        "additionalProperties": false,
    });
    let shapes: Vec<Value> = watch
        .operations
        .iter()
        .map(|op| operation(op, &names))
        .collect();
    json!({
        "$schema": DIALECT,
        "description": format!(
            "A change of a row of {}: the operation, the chosen columns of the row (the new \
             row, or the old one for a delete) and, for an update, which of them changed.",
            watch.table
        ),
        "type": "object",
        "oneOf": shapes,
        "$defs": { "row": row },
    })
}

/// The data of one operation's events.
fn operation(op: &str, columns: &[&str]) -> Value {
    let mut properties = json!({ "op": { "const": op }, "row": { "$ref": "#/$defs/row" } });
    let mut required = vec!["op", "row"];
    if op == "update" {
        properties["changed"] = json!({
            "description": "The chosen columns whose value the update changed.",
            "type": "array",
            "items": { "enum": columns },
            "minItems": 1,
            "uniqueItems": true,
        });
        required.push("changed");
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

impl Types {
    /// The schema of a column's values, described by its declared type.
    fn column(&self, column: &Column) -> Value {
        let (Some(oid), Some(declared)) = (column.type_oid, &column.declared) else {
            let gone = format!("the table no longer has column {}", column.name);
            return json!({ "description": gone });
        };
        let mut schema = self.value(oid, column.not_null, 0);
        let description = match schema.get("description").and_then(Value::as_str) {
            Some(note) => format!("{declared}: {note}"),
            None => declared.clone(),
        };
        schema.insert("description".into(), description.into());
        Value::Object(schema)
    }

    /// The schema of a value of type `oid`, which may be null unless `not_null`. A type the
    /// database did not describe may be anything.
    fn value(&self, oid: u32, not_null: bool, depth: usize) -> Map<String, Value> {
        let Some(t) = self.0.get(&oid).filter(|_| depth < MAX_DEPTH) else {
            return Map::new();
        };
        if let (Some(base), "d") = (t.base, t.typtype.as_str()) {
            return self.value(base, not_null || t.not_null, depth + 1);
        }
        let mut schema = self.shape(t, depth);
        if !not_null {
            nullable(&mut schema);
        }
        schema
    }

    /// The schema of a type's values other than null.
    fn shape(&self, t: &Type, depth: usize) -> Map<String, Value> {
        if let Some(element) = t.element {
            let items = self.value(element, false, depth + 1);
            return object(json!({ "type": "array", "items": items }));
        }
        match t.typtype.as_str() {
            "e" => object(json!({ "type": "string", "enum": t.labels })),
            "c" => self.composite(t, depth),
            "b" if t.catalog => object(builtin(&t.typname)),
            _ if t.json_cast => Map::new(),
            _ => object(json!({ "type": "string" })),
        }
    }

    fn composite(&self, t: &Type, depth: usize) -> Map<String, Value> {
        let properties: Map<String, Value> = (t.attributes.iter())
            .map(|(name, oid)| (name.clone(), self.value(*oid, false, depth + 1).into()))
            .collect();
        let names: Vec<&String> = t.attributes.iter().map(|(name, _)| name).collect();
        object(json!({
            "type": "object",
            "properties": properties,
            "required": names,
            "additionalProperties": false,
        }))
    }
}

/// The schema of one of PostgreSQL's own base types, as to_jsonb writes it.
fn builtin(typname: &str) -> Value {
    match typname {
        "int2" | "int4" => json!({ "type": "integer" }),
        "int8" => json!({ "type": "integer", "description": BIGINT }),
        "float4" | "float8" | "numeric" => json!({ "type": "number", "description": NOT_A_NUMBER }),
        "bool" => json!({ "type": "boolean" }),
        "json" | "jsonb" => json!({}),
        "uuid" => json!({ "type": "string", "format": "uuid" }),
        "date" => json!({ "type": "string", "format": "date", "description": INFINITY }),
        "timestamptz" => {
            json!({ "type": "string", "format": "date-time", "description": INFINITY })
        }
        "timestamp" => json!({ "type": "string", "description": LOCAL_TIME }),
        "bytea" => json!({ "type": "string", "description": BYTEA }),
        _ => json!({ "type": "string" }),
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("schemas here are objects"),
    }
}

/// Lets a schema's values be null too. A schema with no type (any JSON) already does.
fn nullable(schema: &mut Map<String, Value>) {
    if let Some(Value::String(t)) = schema.get("type") {
        let types = json!([t, "null"]);
        schema.insert("type".into(), types);
    }
    if let Some(Value::Array(values)) = schema.get_mut("enum") {
        values.push(Value::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(oid: u32, typname: &str) -> Type {
        Type {
            oid,
            typname: typname.into(),
            catalog: true,
            typtype: "b".into(),
            base: None,
            not_null: false,
            element: None,
            labels: Vec::new(),
            attributes: Vec::new(),
            json_cast: false,
        }
    }

    /// bigint, text, text[], an enum, a NOT NULL domain over integer, a composite of both, and
    /// a type of the database's own with a cast to json.
    fn types() -> Types {
        let mood = Type {
            catalog: false,
            typtype: "e".into(),
            labels: vec!["sad".into(), "happy".into()],
            ..base(100, "mood")
        };
        let positive = Type {
            catalog: false,
            typtype: "d".into(),
            base: Some(23),
            not_null: true,
            ..base(101, "positive")
        };
        let pair = Type {
            catalog: false,
            typtype: "c".into(),
            attributes: vec![("n".into(), 101), ("tags".into(), 1009)],
            ..base(102, "pair")
        };
        let own = Type {
            catalog: false,
            json_cast: true,
            ..base(103, "own")
        };
        let tags = Type {
            element: Some(25),
            ..base(1009, "_text")
        };
        let types = [base(20, "int8"), base(23, "int4"), base(25, "text"), tags];
        types
            .into_iter()
            .chain([mood, positive, pair, own])
            .collect()
    }

    fn value(oid: u32, not_null: bool) -> Value {
        Value::Object(types().value(oid, not_null, 0))
    }

    #[test]
    fn a_value_may_be_null_unless_its_column_or_domain_says_not() {
        let bigint = json!({ "type": ["integer", "null"], "description": BIGINT });
        assert_eq!(value(20, false), bigint);
        assert_eq!(
            value(20, true),
            json!({ "type": "integer", "description": BIGINT })
        );
        assert_eq!(value(101, false), json!({ "type": "integer" }));
        let moods = json!({ "type": ["string", "null"], "enum": ["sad", "happy", null] });
        assert_eq!(value(100, false), moods);
    }

    #[test]
    fn arrays_and_composites_are_made_of_their_parts_schemas() {
        let tags = json!({ "type": "array", "items": { "type": ["string", "null"] } });
        assert_eq!(value(1009, true), tags);
        let pair = json!({
            "type": ["object", "null"],
            "properties": {
                "n": { "type": "integer" },
                "tags": { "type": ["array", "null"], "items": { "type": ["string", "null"] } },
            },
            "required": ["n", "tags"],
            "additionalProperties": false,
        });
        assert_eq!(value(102, false), pair);
    }

    #[test]
    fn a_type_with_its_own_json_cast_or_that_is_not_described_may_be_anything() {
        assert_eq!(value(103, false), json!({}));
        assert_eq!(value(999, true), json!({}));
    }

    #[test]
    fn a_column_is_described_by_its_declared_type_and_a_column_gone_says_so() {
        let column = |name: &str, declared: Option<&str>, type_oid| Column {
            name: name.into(),
            declared: declared.map(Into::into),
            type_oid,
            not_null: true,
        };
        let types = types();
        let id = types.column(&column("id", Some("bigint"), Some(20)));
        let description = format!("bigint: {BIGINT}");
        assert_eq!(id, json!({ "type": "integer", "description": description }));
        let name = types.column(&column("name", Some("character varying(20)"), Some(25)));
        assert_eq!(
            name,
            json!({ "type": "string", "description": "character varying(20)" })
        );
        let gone = types.column(&column("old", None, None));
        assert_eq!(
            gone,
            json!({ "description": "the table no longer has column old" })
        );
    }
}
