//! agw-tower
pub mod body;
pub mod classify;
mod collect;
pub mod decode;
pub mod error;
mod future;
pub mod guard;
pub mod hop;
pub mod provider;
pub mod response;
pub mod upstream;
