//! The step of verify: check one object's replicas against the index.
//! (Skeleton: filled in by the verify work.)
