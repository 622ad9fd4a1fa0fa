//! Loading: built-in defaults ← file ← environment, deserialized (and so checked) in one go.

use std::fmt;
use std::path::{Path, PathBuf};

use config::{Config, ConfigError, Environment, File, FileFormat};

use super::Settings;
use crate::legacy::{self, LegacyFormat};

/// Default legacy file looked up in the working directory when no `--config` is given.
pub const LEGACY_DEFAULT_FILE: &str = "dbproxyserver.conf";
/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "DBPROXY";

/// Which file format a config file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// `config/db-proxy.toml` style.
    Toml,
    /// Original `dbproxyserver.conf` style.
    Legacy,
    /// No file: built-in defaults (plus environment).
    Defaults,
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::Toml => "TOML",
            SourceKind::Legacy => "dbproxyserver.conf (original format)",
            SourceKind::Defaults => "built-in defaults",
        })
    }
}

/// Settings plus where they came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The checked settings.
    pub settings: Settings,
    /// File used, if any.
    pub path: Option<PathBuf>,
    /// Format of that file.
    pub kind: SourceKind,
}

/// Configuration error. Display is one line naming the file / key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--config` with an extension that is neither `.toml` nor `.conf`.
    #[error("config file {0}: unknown extension (use .toml, or .conf for the original dbproxyserver.conf format)")]
    Extension(PathBuf),
    /// The file is missing or unreadable.
    #[error("config file {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The file does not parse, or a source could not be read by the config crate.
    #[error("config {source_name}: {msg}")]
    Parse {
        /// File name or "defaults".
        source_name: String,
        /// The config crate's message, on one line.
        msg: String,
    },
    /// A value was rejected.
    #[error("invalid config: {key}: {msg}")]
    Invalid {
        /// Settings path, with the legacy key in parentheses when loaded from a `.conf`.
        key: String,
        /// What is wrong.
        msg: String,
    },
}

/// Loads from an explicit path (format by extension), or with `None` from `./dbproxyserver.conf`
/// if it exists, else built-in defaults. Environment overrides are applied last.
pub fn load(path: Option<&Path>) -> Result<Loaded, Error> {
    load_with_env(path, None)
}

/// Like [`load`], with an explicit environment map (tests); `None` = the process environment.
pub fn load_with_env(
    path: Option<&Path>,
    env: Option<std::collections::HashMap<String, String>>,
) -> Result<Loaded, Error> {
    let (path, kind) = match path {
        Some(p) => (Some(p.to_path_buf()), kind_of(p)?),
        None => {
            let p = PathBuf::from(LEGACY_DEFAULT_FILE);
            if p.is_file() {
                (Some(p), SourceKind::Legacy)
            } else {
                (None, SourceKind::Defaults)
            }
        }
    };
    let text = match &path {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|source| Error::Read {
            path: p.clone(),
            source,
        })?),
        None => None,
    };
    let source_name = path
        .as_ref()
        .map_or_else(|| "defaults".to_owned(), |p| p.display().to_string());

    let defaults = Config::try_from(&Settings::default()).map_err(|e| parse(&source_name, &e))?;
    let mut builder = Config::builder().add_source(defaults);
    if let Some(text) = &text {
        builder = match kind {
            SourceKind::Toml => builder.add_source(File::from_str(text, FileFormat::Toml)),
            SourceKind::Legacy => builder.add_source(File::from_str(text, LegacyFormat)),
            SourceKind::Defaults => builder,
        };
    }
    let mut envsrc = Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("__")
        .separator("__");
    if let Some(map) = env {
        envsrc = envsrc.source(Some(map.into_iter().collect()));
    }
    let merged = builder
        .add_source(envsrc)
        .build()
        .map_err(|e| parse(&source_name, &e))?;
    let settings: Settings = merged
        .try_deserialize()
        .map_err(|e| rejected(e, kind, &source_name))?;
    Ok(Loaded {
        settings,
        path,
        kind,
    })
}

fn kind_of(p: &Path) -> Result<SourceKind, Error> {
    match p.extension().and_then(|e| e.to_str()) {
        Some("toml") => Ok(SourceKind::Toml),
        Some("conf") => Ok(SourceKind::Legacy),
        _ => Err(Error::Extension(p.to_path_buf())),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn parse(source_name: &str, e: &ConfigError) -> Error {
    Error::Parse {
        source_name: source_name.to_owned(),
        msg: one_line(&e.to_string()),
    }
}

/// A value the settings types rejected, as `key (legacy key): what is wrong`.
fn rejected(e: ConfigError, kind: SourceKind, source_name: &str) -> Error {
    let (key, msg) = match e {
        ConfigError::Type {
            key: Some(key),
            unexpected,
            expected,
            ..
        } => (
            key,
            format!("invalid type: {unexpected}, expected {expected}"),
        ),
        ConfigError::At {
            key: Some(key),
            error,
            ..
        } => (key, one_line(&error.to_string())),
        other => return parse(source_name, &other),
    };
    let key = match (kind, legacy::legacy_key(&key)) {
        (SourceKind::Legacy, Some(l)) => format!("{key} ({l})"),
        _ => key,
    };
    Error::Invalid { key, msg }
}
