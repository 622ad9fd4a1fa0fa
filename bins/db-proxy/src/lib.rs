//! db-proxy: configuration, logging and wiring of the TeamTalk db_proxy_server replacement.
//!
//! The binary (`src/main.rs`) is a thin shell around [`app::run`].

pub mod app;
pub mod doctor;
pub mod legacy;
pub mod logging;
pub mod settings;
pub mod telemetry;

/// config/db-proxy.toml: every key with its documented default (`--print-default-config`;
/// a test checks that it loads to exactly the built-in defaults, but for the metrics
/// listener, which the shipped file turns on at 127.0.0.1:9600).
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../../config/db-proxy.toml");

/// Version line printed by `db-proxy -v` / `--version`.
pub fn version_line() -> String {
    format!(
        "db-proxy {} (compatible with Server Version: DBProxyServer/1.0)",
        env!("CARGO_PKG_VERSION")
    )
}
