//! The params `proto/openrpc.json` documents are the params the daemon
//! accepts. For every method in the document: a valid call, built from its
//! params schema by a small example generator (or, for the few methods whose
//! params have a constraint a schema cannot show, the example the document
//! gives, checked against the schema), and a call with a wrong type. Both go
//! through `Request::parse` and through a real daemon's control socket: the
//! valid one must never be refused as -32602 invalid params or -32601
//! unknown method (made-up ids may well be unknown, or in the wrong state),
//! the wrong one must always be -32602.

mod common;

use common::Daemon;
use serde_json::{json, Map, Value};
use softphoned::control::api::Request;
use softphoned::control::client::{Client, ClientError};
use softphoned::control::rpc::code;

/// The test daemon's account: the one the documented examples name.
const ACCOUNT: &str = "[[accounts]]\nid = \"main\"\naor = \"sip:agent@127.0.0.1\"\nregistrar = \"sip:127.0.0.1:9\"\n";

struct Document {
    methods: Vec<Value>,
    schemas: Map<String, Value>,
}

impl Document {
    fn read() -> Document {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/proto/openrpc.json");
        let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let methods = doc["methods"].as_array().unwrap().clone();
        let schemas = doc["components"]["schemas"].as_object_mut().map(std::mem::take).unwrap();
        Document { methods, schemas }
    }

    /// A schema with its `$ref`s followed.
    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let name = reference.strip_prefix("#/components/schemas/").expect("a reference into components");
                self.resolve(&self.schemas[name])
            }
            None => schema,
        }
    }

    /// A value `schema` accepts: an enum's first value, the first
    /// alternative that is not null, a string, zero (or the minimum),
    /// `true`, an array of as many items as it needs (at least one), an
    /// object with its required properties.
    fn example(&self, schema: &Value) -> Value {
        let schema = self.resolve(schema);
        if let Some(first) = schema.get("enum").and_then(|values| values.get(0)) {
            return first.clone();
        }
        if let Some(value) = schema.get("const") {
            return value.clone();
        }
        for key in ["oneOf", "anyOf", "allOf"] {
            if let Some(alternatives) = schema.get(key).and_then(Value::as_array) {
                let chosen = alternatives.iter().find(|a| types(self.resolve(a)) != ["null"]).expect("an alternative");
                return self.example(chosen);
            }
        }
        match types(schema).into_iter().find(|t| *t != "null") {
            Some("string") => json!("x"),
            Some("integer") => json!(schema.get("minimum").and_then(Value::as_u64).unwrap_or(0)),
            Some("number") => json!(0.0),
            Some("boolean") => json!(true),
            Some("array") => {
                let count = schema.get("minItems").and_then(Value::as_u64).unwrap_or(1).max(1) as usize;
                Value::Array(vec![self.example(&schema["items"]); count])
            }
            Some("object") => self.object_example(schema),
            _ => json!("x"),
        }
    }

    fn object_example(&self, schema: &Value) -> Value {
        let required = schema.get("required").and_then(Value::as_array).cloned().unwrap_or_default();
        let properties = &schema["properties"];
        let object: Map<String, Value> = required
            .iter()
            .filter_map(Value::as_str)
            .map(|name| (name.to_string(), self.example(&properties[name])))
            .collect();
        Value::Object(object)
    }

    /// Whether `schema` accepts `value` (the parts of JSON Schema the
    /// document uses: types, enums, alternatives, items, properties).
    fn fits(&self, value: &Value, schema: &Value) -> bool {
        let schema = self.resolve(schema);
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            return values.contains(value);
        }
        if schema.get("const").is_some_and(|c| c != value) {
            return false;
        }
        if let Some(alternatives) = schema.get("anyOf").or(schema.get("oneOf")).and_then(Value::as_array) {
            return alternatives.iter().any(|a| self.fits(value, a));
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            return all.iter().all(|a| self.fits(value, a));
        }
        let types = types(schema);
        if !types.is_empty() && !types.iter().any(|t| is_type(value, t)) {
            return false;
        }
        match value {
            Value::Array(items) => {
                let enough = items.len() as u64 >= schema.get("minItems").and_then(Value::as_u64).unwrap_or(0);
                enough && schema.get("items").is_none_or(|item| items.iter().all(|i| self.fits(i, item)))
            }
            Value::Object(object) => self.object_fits(object, schema),
            _ => true,
        }
    }

    fn object_fits(&self, object: &Map<String, Value>, schema: &Value) -> bool {
        let properties = schema.get("properties").and_then(Value::as_object);
        let required = schema.get("required").and_then(Value::as_array).into_iter().flatten();
        let closed = schema.get("additionalProperties") == Some(&json!(false));
        required.filter_map(Value::as_str).all(|name| object.contains_key(name))
            && object.iter().all(|(name, value)| match properties.and_then(|p| p.get(name)) {
                Some(property) => self.fits(value, property),
                None => !closed,
            })
    }
}

fn types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn is_type(value: &Value, name: &str) -> bool {
    match name {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "null" => value.is_null(),
        _ => panic!("unknown JSON Schema type {name}"),
    }
}

/// One method's two calls.
struct Case {
    method: String,
    valid: Value,
    wrong: Value,
}

impl Case {
    fn new(doc: &Document, method: &Value) -> Case {
        let name = method["name"].as_str().unwrap().to_string();
        let params = method["params"].as_array().unwrap();
        // The by-name params, as the one object schema they describe; every
        // params type refuses unknown fields.
        let properties: Map<String, Value> =
            params.iter().map(|p| (p["name"].as_str().unwrap().to_string(), p["schema"].clone())).collect();
        let required: Vec<&Value> = params.iter().filter(|p| p["required"] == true).map(|p| &p["name"]).collect();
        let object =
            json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false});

        let valid = match method.get("examples").and_then(|e| e.get(0)) {
            Some(example) => {
                let given = example["params"].as_array().unwrap();
                let valid: Map<String, Value> =
                    given.iter().map(|p| (p["name"].as_str().unwrap().to_string(), p["value"].clone())).collect();
                let valid = Value::Object(valid);
                assert!(doc.fits(&valid, &object), "{name}: the documented example {valid} does not fit its params");
                let result = &example["result"]["value"];
                assert!(
                    doc.fits(result, &method["result"]["schema"]),
                    "{name}: the documented result {result} is not one"
                );
                valid
            }
            None => doc.object_example(&object),
        };
        assert!(doc.fits(&valid, &object), "{name}: the example generator made {valid}, which its schema refuses");

        let mut wrong = valid.clone();
        let mistyped = required.iter().filter_map(|p| p.as_str()).find_map(|param| {
            let bad = [json!(12345), json!("x"), json!(true)].into_iter().find(|v| !doc.fits(v, &properties[param]))?;
            Some((param, bad))
        });
        match mistyped {
            Some((param, bad)) => wrong[param] = bad,
            None => wrong["no_such_param"] = json!(1),
        }
        assert!(!doc.fits(&wrong, &object), "{name}: {wrong} should not fit");
        Case { method: name, valid, wrong }
    }
}

fn cases() -> Vec<Case> {
    let doc = Document::read();
    let cases: Vec<Case> = doc.methods.iter().map(|m| Case::new(&doc, m)).collect();
    assert_eq!(cases.len(), Request::METHODS.len(), "every method is documented");
    cases
}

#[test]
fn the_parser_accepts_every_documented_call_and_refuses_every_mistyped_one() {
    for case in cases() {
        let request = Request::parse(&case.method, case.valid.clone())
            .unwrap_or_else(|e| panic!("{} {}: {}", case.method, case.valid, e.message));
        assert_eq!(request.method(), case.method);
        let refused = Request::parse(&case.method, case.wrong.clone()).expect_err(&case.method);
        assert_eq!(refused.code, code::INVALID_PARAMS, "{} {}", case.method, case.wrong);
        assert!(refused.message.starts_with("invalid params:"), "{}", refused.message);
    }
    assert_eq!(Request::parse("call.fly", json!({})).unwrap_err().code, code::METHOD_NOT_FOUND);
}

#[test]
fn every_schema_example_parses_even_where_the_document_gives_its_own() {
    let doc = Document::read();
    for method in &doc.methods {
        let params = method["params"].as_array().unwrap();
        let generated: Map<String, Value> = params
            .iter()
            .filter(|p| p["required"] == true)
            .map(|p| (p["name"].as_str().unwrap().to_string(), doc.example(&p["schema"])))
            .collect();
        let name = method["name"].as_str().unwrap();
        if let Err(e) = Request::parse(name, Value::Object(generated)) {
            panic!("{name}: {}", e.message);
        }
    }
}

/// The daemon's answer: `Ok` or the error's code.
async fn answer(client: &mut Client, case: &Case, params: &Value) -> Result<Value, i64> {
    match client.call(&case.method, params.clone()).await {
        Ok(result) => Ok(result),
        Err(ClientError::Rpc(e)) => Err(e.code),
        Err(other) => panic!("{} {params}: {other}", case.method),
    }
}

/// In document order. The valid calls that change the daemon (dial, offer,
/// schedule, agent state, device choice, registration) name made-up or
/// unchanged things, so none makes a later valid call's params invalid.
#[tokio::test]
async fn the_daemon_accepts_every_documented_call_and_refuses_every_mistyped_one() {
    let daemon = Daemon::spawn("agent", ACCOUNT).await;
    let mut client = Client::connect(&daemon.socket).await.unwrap();
    for case in cases() {
        let reply = answer(&mut client, &case, &case.valid).await;
        assert!(
            !matches!(reply, Err(code::INVALID_PARAMS | code::METHOD_NOT_FOUND)),
            "{} {} was refused: {reply:?}\n{}",
            case.method,
            case.valid,
            daemon.log()
        );
        let reply = answer(&mut client, &case, &case.wrong).await;
        assert_eq!(reply, Err(code::INVALID_PARAMS), "{} {}", case.method, case.wrong);
    }
}
