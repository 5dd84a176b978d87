//! Sparse autoencoders (SAEs) trained on data whose true features are known: synthetic
//! ground-truth dictionaries and the hidden activations of trained toy models.

pub mod checkpoint;
pub mod config;
pub mod metrics;
pub mod model;
pub mod output;
pub mod run;
