//! agw-tower
