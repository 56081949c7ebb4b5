//! agw-core
pub mod api;
pub mod detect;
pub mod edit;
#[doc(hidden)]
pub mod fuzzing;
pub mod guard;
pub mod json;
pub mod model;
pub mod provider;
pub mod route;
pub mod stream;
