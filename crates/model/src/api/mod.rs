//! The public handles embedding services use: `store.users()`, `store.messages()`, … Each
//! method says what it reads and writes (tables, Redis keys and their instance, master or
//! slave) and delegates to a repository function on the right pool, or to a hot path.

pub mod audio;
pub mod department;
pub mod doctor;
pub mod file;
pub mod group;
pub mod lockout;
pub mod message;
pub mod relation;
pub mod schema;
pub mod session;
pub mod sync_state;
pub mod token;
pub mod unread;
pub mod user;
