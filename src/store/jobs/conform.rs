//! The step of drain and rebalance: make one object's replicas match the placement.
//! (Skeleton: filled in by the job machinery work.)
