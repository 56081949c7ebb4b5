//! agw-core
pub mod api;
pub mod detect;
pub mod edit;
pub mod guard;
pub mod json;
pub mod model;
pub mod provider;
pub mod route;
pub mod stream;
