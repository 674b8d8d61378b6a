//! `POST /api/show`: what a model is and can do (capabilities, details, model info).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::types::null_default;

/// Model facts from `details` in `/api/show` and `/api/tags`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelDetails {
    /// The model this one was derived from, if any.
    #[serde(deserialize_with = "null_default")]
    pub parent_model: String,
    /// File format, e.g. `gguf`.
    #[serde(deserialize_with = "null_default")]
    pub format: String,
    /// Architecture family, e.g. `llama`.
    #[serde(deserialize_with = "null_default")]
    pub family: String,
    /// All families (may be `null`).
    #[serde(deserialize_with = "null_default")]
    pub families: Vec<String>,
    /// e.g. `3.2B`.
    #[serde(deserialize_with = "null_default")]
    pub parameter_size: String,
    /// e.g. `Q4_K_M`.
    #[serde(deserialize_with = "null_default")]
    pub quantization_level: String,
}

/// The useful part of `POST /api/show`; everything defaults, unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShowResponse {
    /// What the model can do: `completion`, `tools`, `vision`, `thinking`, `insert`, `embedding`.
    #[serde(deserialize_with = "null_default")]
    pub capabilities: Vec<String>,
    /// Format, family, size and quantisation.
    pub details: ModelDetails,
    /// Architecture facts keyed like `llama.context_length` (a JSON object, or `null`).
    pub model_info: Value,
    /// Modelfile `PARAMETER` lines (text).
    #[serde(deserialize_with = "null_default")]
    pub parameters: String,
    /// The prompt template.
    #[serde(deserialize_with = "null_default")]
    pub template: String,
    /// The model's built-in system prompt.
    #[serde(deserialize_with = "null_default")]
    pub system: String,
    /// Last modification time (RFC 3339), as sent.
    #[serde(deserialize_with = "null_default")]
    pub modified_at: String,
}

impl ShowResponse {
    /// True if `capabilities` lists `name` (e.g. `"tools"`, `"thinking"`, `"vision"`).
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.iter().any(|c| c == name)
    }

    /// The trained context length (`<arch>.context_length` in `model_info`), if reported.
    pub fn context_length(&self) -> Option<u64> {
        let info = self.model_info.as_object()?;
        info.iter()
            .find(|(k, _)| k.ends_with(".context_length"))
            .and_then(|(_, v)| v.as_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn show_response_defaults_and_helpers() {
        let show: ShowResponse = serde_json::from_value(json!({
            "license": "...", "template": "{{ .Prompt }}",
            "details": {"parent_model": "", "format": "gguf", "family": "llama", "families": null,
                        "parameter_size": "3.2B", "quantization_level": "Q4_K_M"},
            "model_info": {"general.architecture": "llama", "llama.context_length": 131072},
            "capabilities": ["completion", "tools"], "modified_at": "2025-01-01T00:00:00Z"
        }))
        .unwrap();
        assert!(show.has_capability("tools") && !show.has_capability("thinking"));
        assert_eq!(show.context_length(), Some(131072));
        assert_eq!(show.details.quantization_level, "Q4_K_M");
        assert_eq!(
            serde_json::from_value::<ShowResponse>(json!({})).unwrap(),
            ShowResponse::default()
        );
    }
}
