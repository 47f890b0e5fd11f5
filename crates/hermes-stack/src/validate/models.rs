//! The model blocks of an agent.

use super::{KeyPath, Problems};
use crate::diagnostic::did_you_mean;
use crate::wire::{Model, ModelProvider, StackFile};

/// The provider's name as written in the file, and the usual variable holding its key.
fn provider_names(p: ModelProvider) -> (&'static str, &'static str) {
    match p {
        ModelProvider::Openai => ("openai", "OPENAI_API_KEY"),
        ModelProvider::Anthropic => ("anthropic", "ANTHROPIC_API_KEY"),
        ModelProvider::Openrouter => ("openrouter", "OPENROUTER_API_KEY"),
        ModelProvider::Nous => ("nous", "NOUS_API_KEY"),
        ModelProvider::Bedrock => ("bedrock", ""),
        ModelProvider::Custom => ("custom", "LLM_API_KEY"),
    }
}

pub(super) fn model(file: &StackFile, model: &Model, path: &KeyPath, p: &mut Problems) {
    let (name, key_var) = provider_names(model.provider);
    match model.provider {
        ModelProvider::Custom if model.base_url.is_none() => {
            p.add(
                path.clone(),
                "a `custom` model needs `base-url`",
                Some(
                    "add the OpenAI-compatible endpoint: `base-url = \"https://llm.example.com/v1\"`"
                        .to_owned(),
                ),
            );
        }
        ModelProvider::Openai
        | ModelProvider::Anthropic
        | ModelProvider::Openrouter
        | ModelProvider::Nous
            if model.api_key.is_none() =>
        {
            p.add(
                path.clone(),
                format!("model provider `{name}` needs `api-key`"),
                Some(format!(
                    "add a reference to the key, never the key itself: `api-key = \"env:{key_var}\"`"
                )),
            );
        }
        ModelProvider::Bedrock => bedrock(file, model, path, p),
        _ => {}
    }
    if model.model.trim().is_empty() {
        p.add(
            path.key("model"),
            "the model id is empty",
            Some("name the model, such as `gpt-4.1`".to_owned()),
        );
    }
}

fn bedrock(file: &StackFile, model: &Model, path: &KeyPath, p: &mut Problems) {
    if model.api_key.is_some() {
        p.add(
            path.key("api-key"),
            "Bedrock models use the host's IAM role or scoped key, not an API key",
            Some("remove `api-key`; access is granted by [bedrock]".to_owned()),
        );
    }
    match &file.bedrock {
        None => p.add(
            path.clone(),
            "a `bedrock` model needs the [bedrock] table",
            Some(format!(
                "add [bedrock] with `region = \"eu-central-1\"` and `models = [\"{}\"]`",
                model.model
            )),
        ),
        Some(b) if !b.models.contains(&model.model) => p.add(
            path.key("model"),
            format!(
                "model `{}` is not in `bedrock.models`, so the IAM policy would refuse it",
                model.model
            ),
            Some(
                match did_you_mean(&model.model, b.models.iter().map(String::as_str)) {
                    Some(m) => format!("did you mean `{m}`? Or add this id to `bedrock.models`"),
                    None => "add it to `bedrock.models`".to_owned(),
                },
            ),
        ),
        Some(_) => {}
    }
}
