//! Shared demo setup.
