//! agw-bin

pub mod config;
#[doc(hidden)]
pub mod mock;
