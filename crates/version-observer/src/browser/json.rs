//! The page's own `JSON.parse` behind the core's readers
//! ([`JsonValue`]): the wasm carries no JSON parser for the reports and the
//! request guard's answers.

use version_observer_core::{json::JsonValue, skew::StaleClient, VersionReport};
use wasm_bindgen::JsValue;

/// A value `JSON.parse` made.
pub struct Js(JsValue);

impl JsonValue for Js {
    fn member(&self, key: &str) -> Option<Self> {
        if !self.is_object() {
            return None;
        }
        let value = js_sys::Reflect::get(&self.0, &JsValue::from_str(key)).ok()?;
        (!value.is_undefined()).then_some(Js(value))
    }

    fn is_object(&self) -> bool {
        self.0.is_object() && !js_sys::Array::is_array(&self.0)
    }

    fn is_null(&self) -> bool {
        self.0.is_null()
    }

    fn string(&self) -> Option<String> {
        self.0.as_string()
    }

    /// Integers up to 2^53 (a JavaScript number's exact range).
    fn unsigned(&self) -> Option<u64> {
        let n = self.0.as_f64()?;
        (n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_991.0).then_some(n as u64)
    }
}

fn parse(text: &str) -> Option<Js> {
    js_sys::JSON::parse(text).ok().map(Js)
}

/// A report, as the node sends it.
pub fn report(text: &str) -> Option<VersionReport> {
    VersionReport::from_json_value(&parse(text)?)
}

/// The request guard's answer.
pub fn stale_client(text: &str) -> Option<StaleClient> {
    StaleClient::from_json_value(&parse(text)?)
}
