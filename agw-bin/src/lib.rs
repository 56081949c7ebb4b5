//! The `agw` binary's library: configuration, the proxy server and access logs — and the mock
//! provider the tests and the load bench run against.

pub mod config;
pub mod log;
#[doc(hidden)]
pub mod mock;
pub mod server;
