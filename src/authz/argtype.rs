//! Typed tool arguments: a tool's JSON Schema `inputSchema` mapped to the Cedar type of
//! `context.arguments` in its generated action. Strict validation needs types, and a value
//! is converted only along its declared type, so what has no faithful Cedar type (null,
//! unions, free-form objects, unbounded floats, integers beyond 64 bits) is left out of the
//! type — policies cannot name it — and reported, never guessed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

/// The Cedar type of one argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ArgType {
    String,
    Long,
    Bool,
    /// A JSON `number` whose schema guarantees at most 4 fraction digits (`multipleOf`).
    Decimal,
    /// A set of scalars (`String`, `Long` or `Bool`).
    Set(Box<ArgType>),
    Record(RecordType),
}

/// A record type: typed fields, in name order; every declared property name (typed or
/// not); and whether other names are refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RecordType {
    pub fields: BTreeMap<String, Field>,
    pub declared: BTreeSet<String>,
    /// `additionalProperties: false`, or the operator refuses undeclared arguments: a key
    /// not in `declared` denies the call (Cedar would never see it, the backend would).
    pub closed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    pub ty: ArgType,
    pub required: bool,
}

/// Cedar decimals carry four fraction digits.
pub(crate) const DECIMAL_DIGITS: u32 = 4;

/// Maps a tool's `inputSchema` to the record type of its arguments. Every property left out
/// is pushed to `untyped` as (`<tool>.<path>`, why).
pub(crate) fn arguments_type(
    tool: &str,
    input_schema: &Map<String, Value>,
    untyped: &mut Vec<(String, String)>,
) -> RecordType {
    match input_schema.get("properties") {
        Some(Value::Object(props)) => record(tool, props, input_schema, untyped),
        _ => RecordType {
            closed: closed(input_schema),
            ..RecordType::default()
        },
    }
}

/// Whether a schema refuses properties it does not declare.
fn closed(schema: &Map<String, Value>) -> bool {
    schema.get("additionalProperties") == Some(&Value::Bool(false))
}

fn record(
    path: &str,
    props: &Map<String, Value>,
    schema: &Map<String, Value>,
    untyped: &mut Vec<(String, String)>,
) -> RecordType {
    let required: Vec<&str> = match schema.get("required") {
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let mut fields = BTreeMap::new();
    for (name, prop) in props {
        let here = format!("{path}.{name}");
        match arg_type(&here, prop, untyped) {
            Ok(ty) => {
                let required = required.contains(&name.as_str());
                fields.insert(name.clone(), Field { ty, required });
            }
            Err(why) => untyped.push((here, why)),
        }
    }
    RecordType {
        fields,
        declared: props.keys().cloned().collect(),
        closed: closed(schema),
    }
}

fn arg_type(
    path: &str,
    schema: &Value,
    untyped: &mut Vec<(String, String)>,
) -> Result<ArgType, String> {
    let Value::Object(schema) = schema else {
        return Err("its schema is not an object".to_owned());
    };
    for key in ["oneOf", "anyOf", "allOf", "not", "if", "$ref"] {
        if schema.contains_key(key) {
            return Err(format!("`{key}` has no cedar type"));
        }
    }
    match single_type(schema)? {
        "string" => Ok(ArgType::String),
        "boolean" => Ok(ArgType::Bool),
        "integer" => integer(schema),
        "number" => number(schema),
        "array" => array(schema),
        "object" => match schema.get("properties") {
            Some(Value::Object(props)) if !props.is_empty() => {
                Ok(ArgType::Record(record(path, props, schema, untyped)))
            }
            _ => Err("an object without `properties` has no cedar type".to_owned()),
        },
        "null" => Err("`null` has no cedar type".to_owned()),
        other => Err(format!("unknown type `{other}`")),
    }
}

fn single_type(schema: &Map<String, Value>) -> Result<&str, String> {
    match schema.get("type") {
        Some(Value::String(t)) => Ok(t),
        Some(Value::Array(ts)) if ts.len() == 1 => ts[0]
            .as_str()
            .ok_or_else(|| "`type` is not a string".to_owned()),
        Some(Value::Array(_)) => Err("a union of types has no cedar type".to_owned()),
        Some(_) => Err("`type` is not a string".to_owned()),
        None => Err("no `type`".to_owned()),
    }
}

fn integer(schema: &Map<String, Value>) -> Result<ArgType, String> {
    for bound in ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"] {
        if let Some(Value::Number(n)) = schema.get(bound)
            && n.as_i64().is_none()
            && n.as_f64().is_some_and(|f| !(-9.2e18..=9.2e18).contains(&f))
        {
            return Err(format!("`{bound}` is beyond the 64-bit integer range"));
        }
    }
    Ok(ArgType::Long)
}

fn number(schema: &Map<String, Value>) -> Result<ArgType, String> {
    let representable = schema
        .get("multipleOf")
        .and_then(|m| m.as_number())
        .and_then(super::arguments::decimal_text)
        .is_some_and(|text| text != "0.0000" && !text.starts_with('-'));
    if representable {
        Ok(ArgType::Decimal)
    } else {
        Err(format!(
            "a `number` without a positive `multipleOf` of at most {DECIMAL_DIGITS} decimal places \
             may not fit a cedar decimal"
        ))
    }
}

fn array(schema: &Map<String, Value>) -> Result<ArgType, String> {
    let Some(Value::Object(items)) = schema.get("items") else {
        return Err("an array without an `items` schema has no cedar type".to_owned());
    };
    if items
        .keys()
        .any(|k| ["oneOf", "anyOf", "allOf", "not", "if", "$ref"].contains(&k.as_str()))
    {
        return Err("an array of unions has no cedar type".to_owned());
    }
    match single_type(items)? {
        "string" => Ok(ArgType::Set(Box::new(ArgType::String))),
        "boolean" => Ok(ArgType::Set(Box::new(ArgType::Bool))),
        "integer" => Ok(ArgType::Set(Box::new(integer(items)?))),
        other => Err(format!("an array of `{other}` has no cedar type")),
    }
}

impl ArgType {
    /// The type in Cedar's JSON schema format.
    pub(crate) fn schema_json(&self) -> Value {
        match self {
            ArgType::String => json!({ "type": "String" }),
            ArgType::Long => json!({ "type": "Long" }),
            ArgType::Bool => json!({ "type": "Boolean" }),
            ArgType::Decimal => json!({ "type": "Extension", "name": "decimal" }),
            ArgType::Set(element) => json!({ "type": "Set", "element": element.schema_json() }),
            ArgType::Record(record) => record.schema_json(),
        }
    }

    /// How a mismatch is explained: "argument `x` must be `<this>`".
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            ArgType::String => "a string",
            ArgType::Long => "an integer",
            ArgType::Bool => "a boolean",
            ArgType::Decimal => "a number with at most 4 decimal places",
            ArgType::Set(element) => match **element {
                ArgType::String => "an array of strings",
                ArgType::Long => "an array of integers",
                ArgType::Bool => "an array of booleans",
                _ => "an array",
            },
            ArgType::Record(_) => "an object",
        }
    }
}

impl RecordType {
    /// Refuses undeclared names here and in every nested record.
    pub(crate) fn close_all(&mut self) {
        self.closed = true;
        for field in self.fields.values_mut() {
            if let ArgType::Record(inner) = &mut field.ty {
                inner.close_all();
            }
        }
    }

    pub(crate) fn schema_json(&self) -> Value {
        let attributes: Map<String, Value> = self
            .fields
            .iter()
            .map(|(name, field)| {
                let mut ty = field.ty.schema_json();
                if let Value::Object(ty) = &mut ty {
                    ty.insert("required".to_owned(), Value::Bool(field.required));
                }
                (name.clone(), ty)
            })
            .collect();
        json!({ "type": "Record", "attributes": attributes })
    }
}

#[cfg(test)]
mod tests;
