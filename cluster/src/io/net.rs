//! Framed transport (placeholder while written).
