//! db-proxy: configuration, logging and wiring of the TeamTalk db_proxy_server replacement.
//!
//! The binary (`src/main.rs`) is a thin shell around [`app::run`].

pub mod app;
pub mod legacy;
pub mod logging;
pub mod settings;

/// Version line printed by `db-proxy -v`.
pub fn version_line() -> String {
    format!(
        "db-proxy {} (compatible with Server Version: DBProxyServer/1.0)",
        env!("CARGO_PKG_VERSION")
    )
}
