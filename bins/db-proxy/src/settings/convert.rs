//! Each crate's configuration from the settings (every value was checked while loading).

use std::net::SocketAddr;

use super::{MysqlInstance, RedisInstance, Settings};

impl MysqlInstance {
    fn config(&self) -> dbproxy_model::MysqlConfig {
        dbproxy_model::MysqlConfig {
            host: self.host.clone(),
            port: self.port,
            database: self.database.clone(),
            user: self.user.clone(),
            password: self.password.clone(),
            max_connections: self.max_connections,
            socket: Some(self.socket.clone()).filter(|s| !s.is_empty()),
            ..dbproxy_model::MysqlConfig::default()
        }
    }
}

impl RedisInstance {
    fn config(&self) -> dbproxy_model::RedisConfig {
        dbproxy_model::RedisConfig {
            host: self.host.clone(),
            port: self.port,
            db: self.db,
            max_connections: self.max_connections,
            sentinels: self.sentinels.clone(),
            sentinel_service: self.sentinel_service.clone(),
            replica_acks: self.replica_acks,
            replica_ack_wait: std::time::Duration::from_millis(self.replica_ack_wait_ms),
        }
    }
}

impl Settings {
    /// Backend settings of the model crate. `limits.msfs_timeout_ms` bounds both msfs
    /// uploads and downloads.
    pub fn store_config(&self) -> dbproxy_model::StoreConfig {
        let l = &self.limits;
        let r = &self.redis;
        dbproxy_model::StoreConfig {
            master: self.mysql.master.config(),
            slave: self.mysql.slave.config(),
            unread: r.unread.config(),
            group_set: r.group_set.config(),
            token: r.token.config(),
            group_member: r.group_member.config(),
            msfs_url: self.server.msfs_url.clone(),
            timeouts: dbproxy_model::Timeouts {
                connect: l.connect_timeout,
                pool_wait: l.mysql_pool_wait,
                statement: l.mysql_timeout,
                redis_command: l.redis_timeout,
                msfs_upload: l.msfs_timeout,
                msfs_download: l.msfs_timeout,
                pool_verify_idle: l.mysql_verify_idle,
                outcome_check: l.mysql_outcome_check,
            },
            batch: dbproxy_model::Batching {
                max_batch: l.batch_max,
                write_max_batch: l.batch_write_max,
                read_slots: l.batch_read_slots,
                write_slots: l.batch_write_slots,
            },
            relation_ids_ttl: l.relation_cache,
        }
    }

    /// Settings of the action layer (the AES key; lockout and sync timings keep their
    /// defaults).
    pub fn action_settings(&self) -> dbproxy_action::ActionSettings {
        let mut settings = dbproxy_action::ActionSettings::default();
        // Checked to be 32 bytes while loading; the default key stays otherwise.
        if let Ok(key) = self.server.aes_key.as_bytes().try_into() {
            settings.aes_key = key;
        }
        settings.slow_request = self.limits.slow_request;
        settings
    }

    /// Listener settings of the transport crate.
    pub fn server_config(&self) -> dbproxy_transport::ServerConfig {
        let l = &self.limits;
        dbproxy_transport::ServerConfig {
            listen: self
                .server
                .listen
                .iter()
                .map(|&ip| SocketAddr::new(ip, self.server.port))
                .collect(),
            max_frame_len: l.max_frame_bytes,
            max_connections: l.max_connections,
            max_in_flight_per_connection: l.max_in_flight_per_connection,
            max_reply_bytes_per_connection: l.max_reply_bytes_per_connection,
            max_reply_bytes_total: l.max_reply_bytes_total,
            heartbeat_interval: l.heartbeat,
            idle_timeout: l.idle_timeout,
            shutdown_grace: l.shutdown_grace,
            write_timeout: l.write_timeout,
            ..dbproxy_transport::ServerConfig::default()
        }
    }
}
