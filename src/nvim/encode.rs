//! Values as Lua receives them: a task record (in answers and events) and JSON as msgpack.

use std::path::Path;

use rmpv::Value;

use crate::store::Store;
use crate::task::TaskRecord;

/// A record as Lua sees it: the stored fields plus the task's file paths.
pub fn record_value(store: &Store, rec: &TaskRecord) -> Value {
    // Through JSON: rmpv's serializer would encode structs as arrays, Lua wants maps.
    let mut v = serde_json::to_value(rec).map_or(Value::Nil, json_to_msgpack);
    let dir = store.task_dir(&rec.cwd, rec.id);
    if let Value::Map(m) = &mut v {
        let path = |p: &Path| Value::from(p.to_string_lossy().into_owned());
        m.push((Value::from("transcript"), path(&dir.transcript())));
        m.push((Value::from("stderr"), path(&dir.stderr())));
        m.push((Value::from("dir"), path(dir.path())));
    }
    v
}

pub fn json_to_msgpack(v: serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Boolean(b),
        J::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Value::from(u),
            (None, Some(i)) => Value::from(i),
            _ => Value::from(n.as_f64().unwrap_or(0.0)),
        },
        J::String(s) => Value::from(s),
        J::Array(a) => Value::Array(a.into_iter().map(json_to_msgpack).collect()),
        J::Object(o) => Value::Map(
            o.into_iter()
                .map(|(k, v)| (Value::from(k), json_to_msgpack(v)))
                .collect(),
        ),
    }
}
