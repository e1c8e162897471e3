//! Decoding of request arguments. Every request takes one map; a wrong type or a missing field is
//! an error that names the method, the key and what was expected, so a Lua caller sees at once
//! what to fix.

use rmpv::Value;

#[derive(Debug)]
pub struct Args<'a> {
    method: &'a str,
    map: &'a [(Value, Value)],
}

/// The largest string we accept in a request (a prompt can be large; a 64 MiB one is a mistake).
const MAX_STRING: usize = 16 * 1024 * 1024;

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::Integer(_) => "integer",
        Value::F32(_) | Value::F64(_) => "float",
        Value::String(_) => "string",
        Value::Binary(_) => "binary",
        Value::Array(_) => "list",
        Value::Map(_) => "map",
        Value::Ext(..) => "ext",
    }
}

impl<'a> Args<'a> {
    /// `args` is the request's parameter list; we expect exactly one map (or nothing at all,
    /// which reads as an empty map, for requests without arguments).
    pub fn new(method: &'a str, args: &'a [Value]) -> Result<Args<'a>, String> {
        static EMPTY: [(Value, Value); 0] = [];
        match args {
            [] => Ok(Args {
                method,
                map: &EMPTY,
            }),
            [Value::Map(map)] => Ok(Args { method, map }),
            // Lua's empty table `{}` is sent as an empty list.
            [Value::Array(a)] if a.is_empty() => Ok(Args {
                method,
                map: &EMPTY,
            }),
            [other] => Err(format!(
                "{method}: expected one map of arguments, got {}",
                type_name(other)
            )),
            _ => Err(format!(
                "{method}: expected one map of arguments, got {} arguments",
                args.len()
            )),
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
            .filter(|v| !v.is_nil())
    }

    fn wrong(&self, key: &str, expected: &str, got: &Value) -> String {
        format!(
            "{}: '{key}' must be {expected}, got {}",
            self.method,
            type_name(got)
        )
    }

    pub fn missing(&self, key: &str, expected: &str) -> String {
        format!("{}: '{key}' is required ({expected})", self.method)
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<String>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => match s.as_str() {
                Some(s) if s.len() <= MAX_STRING => Ok(Some(s.to_owned())),
                Some(s) => Err(format!(
                    "{}: '{key}' is too long ({} bytes, at most {MAX_STRING})",
                    self.method,
                    s.len()
                )),
                None => Err(format!("{}: '{key}' is not valid UTF-8", self.method)),
            },
            Some(v) => Err(self.wrong(key, "a string", v)),
        }
    }

    pub fn str(&self, key: &str) -> Result<String, String> {
        self.opt_str(key)?
            .ok_or_else(|| self.missing(key, "a string"))
    }

    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v @ Value::Integer(i)) => i
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a non-negative integer", v)),
            // Lua numbers that hold whole values may arrive as floats.
            Some(Value::F64(f)) if f.fract() == 0.0 && *f >= 0.0 && *f < 9.0e15 => {
                Ok(Some(*f as u64))
            }
            Some(v) => Err(self.wrong(key, "a non-negative integer", v)),
        }
    }

    pub fn u64(&self, key: &str) -> Result<u64, String> {
        self.opt_u64(key)?
            .ok_or_else(|| self.missing(key, "a non-negative integer"))
    }

    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v @ Value::Integer(i)) => i
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "an integer", v)),
            Some(Value::F64(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(*f as i64)),
            Some(v) => Err(self.wrong(key, "an integer", v)),
        }
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong(key, "a boolean", v)),
        }
    }

    /// A list of strings; a single string counts as a one-element list when `single_ok`
    /// (the `cmd` option may be `"claude"` or `{"claude", "--x"}`).
    pub fn opt_str_list(&self, key: &str, single_ok: bool) -> Result<Option<Vec<String>>, String> {
        let expected = if single_ok {
            "a string or a list of strings"
        } else {
            "a list of strings"
        };
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if single_ok => match s.as_str() {
                Some(s) => Ok(Some(vec![s.to_owned()])),
                None => Err(format!("{}: '{key}' is not valid UTF-8", self.method)),
            },
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(s) => out.push(s.to_owned()),
                        None => {
                            return Err(format!(
                                "{}: '{key}' must be {expected}, item {} is {}",
                                self.method,
                                i + 1,
                                type_name(item)
                            ))
                        }
                    }
                }
                Ok(Some(out))
            }
            // Lua's empty table may arrive as an empty map.
            Some(Value::Map(m)) if m.is_empty() => Ok(Some(Vec::new())),
            Some(v) => Err(self.wrong(key, expected, v)),
        }
    }

    /// A map, as JSON (a tool's input, the answers to questions); Lua's empty table is an empty
    /// map too. Keys must be strings; binary data is refused.
    pub fn opt_json_map(&self, key: &str) -> Result<Option<serde_json::Value>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) if a.is_empty() => Ok(Some(serde_json::json!({}))),
            Some(v @ Value::Map(_)) => to_json(v)
                .map(Some)
                .map_err(|why| format!("{}: '{key}' {why}", self.method)),
            Some(v) => Err(self.wrong(key, "a map", v)),
        }
    }

    /// `true`, `false` or a string (e.g. `always`: true for the proposed rule, or a rule).
    pub fn opt_bool_or_str(&self, key: &str) -> Result<Option<Result<bool, String>>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(Ok(*b))),
            Some(Value::String(_)) => Ok(self.opt_str(key)?.map(Err)),
            Some(v) => Err(self.wrong(key, "true or a string", v)),
        }
    }

    /// One of a fixed set of strings.
    pub fn opt_choice(&self, key: &str, choices: &[&str]) -> Result<Option<String>, String> {
        match self.opt_str(key)? {
            None => Ok(None),
            Some(s) if choices.contains(&s.as_str()) => Ok(Some(s)),
            Some(s) => Err(format!(
                "{}: '{key}' must be one of {}, got '{s}'",
                self.method,
                choices
                    .iter()
                    .map(|c| format!("'{c}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// A msgpack value as JSON; the error says what could not be converted.
fn to_json(v: &Value) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match v {
        Value::Nil => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::Integer(i) => match (i.as_i64(), i.as_u64()) {
            (Some(n), _) => J::from(n),
            (None, Some(n)) => J::from(n),
            _ => return Err("holds an integer out of range".into()),
        },
        Value::F32(f) => J::from(f64::from(*f)),
        Value::F64(f) => J::from(*f),
        Value::String(s) => J::String(
            s.as_str()
                .ok_or("holds a string that is not valid UTF-8")?
                .to_owned(),
        ),
        Value::Array(a) => J::Array(a.iter().map(to_json).collect::<Result<_, _>>()?),
        Value::Map(m) => {
            let mut out = serde_json::Map::with_capacity(m.len());
            for (k, x) in m {
                let k = k.as_str().ok_or("has a key that is not a string")?;
                out.insert(k.to_owned(), to_json(x)?);
            }
            J::Object(out)
        }
        Value::Binary(_) | Value::Ext(..) => return Err("holds binary data".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: Vec<(&str, Value)>) -> Vec<Value> {
        vec![Value::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Value::from(k), v))
                .collect(),
        )]
    }

    #[test]
    fn names_the_key_and_the_type() {
        let a = map(vec![("prompt", Value::from(3))]);
        let args = Args::new("start", &a).unwrap();
        assert_eq!(
            args.str("prompt").unwrap_err(),
            "start: 'prompt' must be a string, got integer"
        );
        assert_eq!(
            args.u64("id").unwrap_err(),
            "start: 'id' is required (a non-negative integer)"
        );
    }

    #[test]
    fn accepts_string_or_list_for_cmd() {
        let a = map(vec![
            ("cmd", Value::from("claude")),
            (
                "args",
                Value::Array(vec![Value::from("-x"), Value::from(1)]),
            ),
        ]);
        let args = Args::new("start", &a).unwrap();
        assert_eq!(
            args.opt_str_list("cmd", true).unwrap(),
            Some(vec!["claude".to_owned()])
        );
        assert_eq!(
            args.opt_str_list("args", false).unwrap_err(),
            "start: 'args' must be a list of strings, item 2 is integer"
        );
    }

    #[test]
    fn rejects_non_map_arguments() {
        let a = vec![Value::from(1), Value::from(2)];
        assert!(Args::new("get", &a).unwrap_err().contains("2 arguments"));
        let a = vec![Value::from("x")];
        assert_eq!(
            Args::new("get", &a).err().unwrap(),
            "get: expected one map of arguments, got string"
        );
        assert!(Args::new("version", &[]).is_ok());
    }

    #[test]
    fn choices_are_listed() {
        let a = map(vec![("concurrency", Value::from("sometimes"))]);
        let args = Args::new("configure", &a).unwrap();
        assert_eq!(
            args.opt_choice("concurrency", &["queue", "reject"])
                .unwrap_err(),
            "configure: 'concurrency' must be one of 'queue', 'reject', got 'sometimes'"
        );
    }
}
