//! The `agw` binary's library: configuration, the proxy server and access logs.

pub mod config;
pub mod keys;
pub mod log;
pub mod server;
