//! # tms — toy models of superposition
//!
//! A toolkit to train, analyse and reproduce the experiments of Elhage et al. (2022), "Toy
//! Models of Superposition". The pipeline, one module per stage:
//!
//! ```text
//! config ──► data ──► model ──► train ──► analysis ──► output (run folder)
//! ```
//!
//! * [`config`]: a typed, validated TOML config expands into one [`config::InstanceSpec`] per
//!   model instance (sparsity and importance per feature, from a sweep or a list);
//! * [`data`]: per-instance random streams and the sparse-feature batch sampler;
//! * [`model`]: the four architectures, with a fused forward and hand-written backward pass,
//!   written in register tiles of sixteen f32 lanes (SSE or AVX registers, a crate-private
//!   abstraction);
//! * [`train`]: the training step (sample → forward → backward → AdamW) and the loop that runs
//!   all instances side by side in parallel;
//! * [`analysis`]: feature norms, interference, dimensions per feature, fractional
//!   dimensionality, geometry;
//! * [`output`]: the run folder (safetensors weights, config, metrics JSON, loss CSV, SVG and
//!   PNG figures), written atomically;
//! * [`orthogonal`]: vector packings — how many almost-orthogonal directions fit in d
//!   dimensions (Welch's bound, random and optimised packings), beside the toy models;
//! * [`experiments`]: the paper's experiments as a registry on top of the pipeline, each with
//!   its settings, figures and an explicit verdict.

#![warn(missing_docs)]

pub mod analysis;
pub mod config;
pub mod data;
pub mod experiments;
pub mod model;
pub mod orthogonal;
pub mod output;
pub mod pipeline;
pub mod sae;
pub(crate) mod simd;
pub mod train;
