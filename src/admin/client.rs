//! The `hansa admin` client (to come).
