//! Checks responses against `openapi.json`: the status must be documented for the operation
//! (4xx explicitly, 5xx through `default`), the content type listed, and a JSON body must
//! match its schema. The validator covers the JSON Schema the document uses: `$ref`, `type`
//! (with `null`), `enum`, `const`, `oneOf`, `anyOf`, `required`, `properties`,
//! `additionalProperties`, `items`, `maxItems`, `minimum`, `maximum`, `minLength`,
//! `maxLength` and the `date`/`date-time` formats (not `pattern`).

use serde_json::Value;

pub struct OpenApi {
    pub doc: Value,
}

impl OpenApi {
    pub fn load() -> Self {
        Self {
            doc: serde_json::from_str(seatkeeper_api::OPENAPI_JSON).expect("openapi.json is JSON"),
        }
    }

    /// `(method, path template)` of every documented operation.
    pub fn operations(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths") {
            for method in [
                "get", "put", "post", "delete", "options", "head", "patch", "trace",
            ] {
                if item.get(method).is_some() {
                    out.push((method.to_ascii_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    /// The documented path template a concrete path falls under (literal segments win).
    pub fn template_of(&self, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.split('/').collect();
        let mut best: Option<(usize, &String)> = None;
        for template in self.doc["paths"].as_object().expect("paths").keys() {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                continue;
            }
            let mut literal = 0;
            let fits = parts.iter().zip(&segments).all(|(p, s)| {
                if p.starts_with('{') {
                    !s.is_empty()
                } else {
                    literal += 1;
                    p == s
                }
            });
            if fits && best.is_none_or(|(n, _)| literal > n) {
                best = Some((literal, template));
            }
        }
        best.map(|(_, t)| t.clone())
    }

    pub fn check(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: &str,
        body: &[u8],
    ) -> Result<(), String> {
        let error_schema = &self.doc["components"]["schemas"]["Error"];
        let Some(template) = self.template_of(path) else {
            if status != 404 {
                return Err(format!("an undocumented path answered {status}, not 404"));
            }
            return self.check_json(error_schema, content_type, body);
        };
        let Some(operation) = self.doc["paths"][&template].get(method.to_ascii_lowercase()) else {
            if status != 405 {
                return Err(format!("an undocumented method answered {status}, not 405"));
            }
            return self.check_json(error_schema, content_type, body);
        };
        let responses = &operation["responses"];
        let documented = match responses.get(status.to_string()) {
            Some(r) => r,
            None if status >= 500 => responses
                .get("default")
                .ok_or(format!("{status} is not documented (and no default)"))?,
            None => return Err(format!("status {status} is not documented")),
        };
        let documented = self.resolve(documented);
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let media = documented["content"]
            .get(&essence)
            .ok_or(format!("content type {content_type:?} is not documented"))?;
        if essence == "application/json" {
            let value: Value =
                serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
            self.validate(&media["schema"], &value, "$")
        } else {
            Ok(())
        }
    }

    fn check_json(&self, schema: &Value, content_type: &str, body: &[u8]) -> Result<(), String> {
        if !content_type.starts_with("application/json") {
            return Err(format!("content type {content_type:?} is not JSON"));
        }
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
        self.validate(schema, &value, "$")
    }

    fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        while let Some(reference) = v.get("$ref").and_then(Value::as_str) {
            let pointer = reference.trim_start_matches('#');
            v = self
                .doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("unresolved $ref {reference}"));
        }
        v
    }

    pub fn validate(&self, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
        let schema = self.resolve(schema);
        if schema == &Value::Bool(true) {
            return Ok(());
        }
        if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
            let matching = options
                .iter()
                .filter(|o| self.validate(o, value, at).is_ok())
                .count();
            if matching != 1 {
                return Err(format!(
                    "{at}: matches {matching} of oneOf, not exactly one"
                ));
            }
        }
        if let Some(options) = schema.get("anyOf").and_then(Value::as_array)
            && !options.iter().any(|o| self.validate(o, value, at).is_ok())
        {
            return Err(format!("{at}: matches none of anyOf"));
        }
        if let Some(types) = schema.get("type") {
            let types: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => return Err(format!("{at}: bad type in schema")),
            };
            if !types.iter().any(|t| type_matches(t, value)) {
                return Err(format!("{at}: {value} is not of type {types:?}"));
            }
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array)
            && !options.contains(value)
        {
            return Err(format!("{at}: {value} is not one of {options:?}"));
        }
        if let Some(constant) = schema.get("const")
            && constant != value
        {
            return Err(format!("{at}: {value} is not {constant}"));
        }
        if let Some(n) = value.as_f64() {
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && n < min
            {
                return Err(format!("{at}: {n} < minimum {min}"));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && n > max
            {
                return Err(format!("{at}: {n} > maximum {max}"));
            }
        }
        if let Some(s) = value.as_str() {
            let chars = s.chars().count() as u64;
            if schema
                .get("minLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| chars < m)
                || schema
                    .get("maxLength")
                    .and_then(Value::as_u64)
                    .is_some_and(|m| chars > m)
            {
                return Err(format!("{at}: length of {s:?} out of bounds"));
            }
            match schema.get("format").and_then(Value::as_str) {
                Some("date-time") if chrono::DateTime::parse_from_rfc3339(s).is_err() => {
                    return Err(format!("{at}: {s:?} is not an RFC 3339 date-time"));
                }
                Some("date") if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_err() => {
                    return Err(format!("{at}: {s:?} is not a date"));
                }
                _ => {}
            }
        }
        if let Some(object) = value.as_object() {
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for name in required.iter().filter_map(Value::as_str) {
                    if !object.contains_key(name) {
                        return Err(format!("{at}: required property {name} is missing"));
                    }
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            for (name, v) in object {
                let here = format!("{at}.{name}");
                match properties.and_then(|p| p.get(name)) {
                    Some(s) => self.validate(s, v, &here)?,
                    None => match schema.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            return Err(format!("{here}: property not allowed"));
                        }
                        Some(s @ Value::Object(_)) => self.validate(s, v, &here)?,
                        _ => {}
                    },
                }
            }
        }
        if let Some(array) = value.as_array() {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && array.len() as u64 > max
            {
                return Err(format!("{at}: more than {max} items"));
            }
            if let Some(items) = schema.get("items") {
                for (i, v) in array.iter().enumerate() {
                    self.validate(items, v, &format!("{at}[{i}]"))?;
                }
            }
        }
        Ok(())
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    }
}
