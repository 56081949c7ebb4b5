//! agw-bin
