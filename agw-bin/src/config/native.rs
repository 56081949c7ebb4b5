//! The native YAML configuration: it deserializes into the [`Config`] model field for field.

use super::build::{Source, build};
use super::model::Config;
use super::{ConfigError, Env, Gateway};

/// The built-in default configuration (what `agw` with no arguments runs).
pub(crate) const BUILTIN: &str = include_str!("builtin.yaml");

/// Reads native YAML into the model.
pub(crate) fn model(file: &str, text: &str) -> Result<Config, ConfigError> {
    serde_norway::from_str(text).map_err(|e| ConfigError::from_yaml(file, 0, &e))
}

/// Reads native YAML and builds it.
pub(crate) fn parse(file: &str, text: &str, env: &Env) -> Result<Gateway, ConfigError> {
    let cfg = model(file, text)?;
    build(
        &cfg,
        env,
        Source {
            file,
            text: Some(text),
        },
    )
}
