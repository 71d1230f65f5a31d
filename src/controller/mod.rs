//! The controller: reconciles Rollouts in a cluster.

pub mod leader;
