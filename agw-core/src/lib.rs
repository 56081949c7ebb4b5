//! agw-core
pub mod api;
pub mod detect;
pub mod json;
pub mod route;
