//! Training: initialisation, the fused training step (sample → forward → backward → AdamW), and
//! the loop that runs every instance side by side, in parallel, in blocks of steps.
//!
//! The whole step of one instance is `InstanceTrainer::step_impl` (sample → `loss_and_grad` →
//! AdamW); [`InstanceTrainer::step`] runs one for benchmarks. Read it top to bottom. It
//! allocates nothing, takes no lock and dispatches on the model kind once per chunk, never per
//! element. It is compiled twice, for the portable baseline and for AVX2+FMA; the variant is
//! picked once per run from the CPU's features ([`KernelVariant::detect`]).

use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::config::{InitScheme, InstanceSpec, KernelChoice, TrainConfig, TrainSettings};
use crate::data::{
    stream_key, DataSource, FeatureSampler, LaneRng, SparseRows, SplitMix64, StreamKind, LANES,
};
use crate::model::forward::{loss_weights, LossScratch};
#[cfg(target_arch = "x86_64")]
use crate::model::forward_backward_chunk_avx2;
#[cfg(target_arch = "x86_64")]
use crate::model::gemm::block_forward_backward_avx2;
use crate::model::gemm::{block_forward_backward, Block, BlockWorkspace, BLOCK_ROWS};
#[cfg(target_arch = "x86_64")]
use crate::model::sparse::sparse_forward_backward_avx2;
use crate::model::sparse::{sparse_forward_backward, SparseWorkspace};
use crate::model::{
    forward_backward_chunk, padded_rows, Extras, ModelKind, Shape, Workspace, ROW_CHUNK,
};

pub use crate::model::KernelVariant;

/// Receives progress from long work; the library never prints by itself.
pub trait Progress {
    /// Work with `total` steps begins.
    fn begin(&mut self, label: &str, total: u64);
    /// `done` of the steps are done; `loss` is the mean loss over instances of the last block.
    fn update(&mut self, done: u64, loss: f64);
    /// The work ended (successfully or not).
    fn end(&mut self);
}

/// A [`Progress`] that ignores everything.
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&mut self, _: &str, _: u64) {}
    fn update(&mut self, _: u64, _: f64) {}
    fn end(&mut self) {}
}

/// Why training stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The loss of an instance became NaN or infinite.
    #[error("training diverged: instance {instance} has a non-finite loss ({loss}) between steps {from} and {to}; try a smaller learning rate")]
    Diverged {
        /// Instance index.
        instance: usize,
        /// First step of the block in which it was seen.
        from: u64,
        /// Last step of that block.
        to: u64,
        /// The loss seen.
        loss: f64,
    },
    /// A stop was requested (Ctrl-C, SIGTERM); the state allows resuming exactly.
    #[error("interrupted at step {} of {}", state.done, state.steps)]
    Interrupted {
        /// Everything needed to continue.
        state: Box<TrainState>,
    },
    /// An abort was requested (`TrainControl::abort`): stopped mid-block, no state kept.
    #[error("stopped at step {done} of {steps}")]
    Aborted {
        /// Steps done when it stopped.
        done: u64,
        /// Steps of the whole run.
        steps: u64,
    },
    /// A periodic checkpoint could not be written.
    #[error("cannot write a checkpoint: {0}")]
    Checkpoint(String),
    /// A checkpoint does not fit the config it is resumed with.
    #[error("the checkpoint does not match its config: {0}")]
    Resume(String),
    /// The thread pool could not be built.
    #[error("could not start {threads} worker threads: {message}")]
    Threads {
        /// Threads asked for.
        threads: usize,
        /// The system's reason.
        message: String,
    },
}

/// AdamW hyper-parameters and the current learning rate, as PyTorch's `torch.optim.AdamW`.
#[derive(Clone, Copy, Debug)]
pub struct AdamW {
    /// Learning rate at this step (after the schedule).
    pub lr: f32,
    /// β₁.
    pub beta1: f32,
    /// β₂.
    pub beta2: f32,
    /// ε.
    pub eps: f32,
    /// Decoupled weight decay.
    pub weight_decay: f32,
}

impl AdamW {
    /// One AdamW update of `params` in place (step `t` counts from 1):
    /// p ← p(1 − lr·wd); m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
    /// p ← p − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε).
    #[inline(always)]
    pub fn update(&self, t: u64, params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32]) {
        let bc1 = 1.0 - (self.beta1 as f64).powf(t as f64);
        let bc2 = 1.0 - (self.beta2 as f64).powf(t as f64);
        let step_size = (self.lr as f64 / bc1) as f32;
        let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
        let decay = 1.0 - self.lr * self.weight_decay;
        let (b1, b2, eps) = (self.beta1, self.beta2, self.eps);
        for (((p, &g), m), v) in params
            .iter_mut()
            .zip(grads)
            .zip(m.iter_mut())
            .zip(v.iter_mut())
        {
            *p *= decay;
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            let denom = v.sqrt() * inv_sqrt_bc2 + eps;
            *p -= step_size * *m / denom;
        }
    }
}

/// Initial parameters of one instance: Xavier-normal `W` (and `W_dec`), zero bias.
pub fn init_params(
    shape: &Shape,
    scheme: InitScheme,
    total_instances: usize,
    key: u64,
) -> Vec<f32> {
    let (n, m) = (shape.features as f64, shape.hidden as f64);
    let std = match scheme {
        InitScheme::Notebook => (2.0 / (m * (n + total_instances as f64))).sqrt(),
        InitScheme::PerInstance => (2.0 / (n + m)).sqrt(),
    };
    let mut rng = LaneRng::new(key);
    let mut params = vec![0.0f32; shape.param_len()];
    for p in params[..shape.bias_offset()].iter_mut() {
        *p = (std * rng.next_normal()) as f32;
    }
    params
}

/// Root-mean-square norm of an input row: √(Σ_i p_i E[v²]) with E[v²] = 1/3 for values
/// uniform on [0, 1] or [−1, 1]; 1 for a dataset of rows normalised to unit length.
fn rms_input_norm(spec: &InstanceSpec) -> f32 {
    if spec.data.dataset.as_ref().is_some_and(|d| d.normalize) {
        return 1.0;
    }
    let mean_square: f32 = spec.feature_probability.iter().map(|p| p / 3.0).sum();
    mean_square.sqrt()
}

/// The pass one instance trains with: `train.kernel` ([`KernelChoice`]) resolved for the
/// instance's shape and density. All give the same loss and gradient to rounding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TrainPass {
    /// The fused register-tile kernel ([`crate::model::forward_backward_chunk`]).
    Fused,
    /// The block pass with dense input ([`crate::model::gemm`]).
    Gemm,
    /// The block pass with sparse input.
    SparseBlocks,
    /// The row-by-row sparse pass ([`crate::model::sparse`]): tied models with a narrow
    /// hidden layer and neither an L1 penalty nor adversarial training.
    SparseRows,
}

/// The passes of a run in words: `"gemm"`, or `"gemm ×27, sparse ×13"` when they differ.
pub fn passes_in_words(passes: &[TrainPass]) -> String {
    let mut kinds: Vec<TrainPass> = passes.to_vec();
    kinds.sort();
    kinds.dedup();
    if kinds.len() == 1 {
        return kinds[0].name().to_string();
    }
    kinds
        .iter()
        .map(|&k| {
            let count = passes.iter().filter(|&&p| p == k).count();
            format!("{} ×{count}", k.name())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl TrainPass {
    /// `auto` runs the block pass from this many weights (n·m) up
    /// ([`crate::model::gemm::BLOCKS_FROM_WEIGHTS`]).
    pub const BLOCKS_FROM_WEIGHTS: usize = crate::model::gemm::BLOCKS_FROM_WEIGHTS;
    /// `auto` gives the block pass sparse input at or below this mean feature density
    /// (`bench/passes.sh`, 400×30: even at 0.03, sparse 1.3× faster at 0.01, 1.9× at 0.001).
    pub const SPARSE_UP_TO_DENSITY: f32 = 0.01;
    /// The row-by-row sparse pass serves hidden layers narrower than this
    /// ([`crate::model::gemm::ROWS_BELOW_HIDDEN`]).
    pub const ROWS_BELOW_HIDDEN: usize = crate::model::gemm::ROWS_BELOW_HIDDEN;

    /// The pass for one instance.
    pub fn choose(choice: KernelChoice, shape: &Shape, spec: &InstanceSpec) -> TrainPass {
        let weights = shape.features * shape.hidden;
        // In f64, with a little room: n copies of 0.01f32 sum to a hair above 0.01·n.
        let total: f64 = spec.feature_probability.iter().map(|&p| p as f64).sum();
        let sparse_enough = total
            <= (Self::SPARSE_UP_TO_DENSITY as f64 + 1e-6) * spec.feature_probability.len() as f64;
        let sparse = || {
            let plain_tied = matches!(spec.kind, ModelKind::Linear | ModelKind::ReluOutput)
                && spec.hidden_l1 == 0.0
                && spec.adversarial_radius == 0.0;
            if plain_tied && shape.hidden < Self::ROWS_BELOW_HIDDEN {
                TrainPass::SparseRows
            } else {
                TrainPass::SparseBlocks
            }
        };
        match choice {
            KernelChoice::Fused => TrainPass::Fused,
            KernelChoice::Gemm => TrainPass::Gemm,
            KernelChoice::Sparse => sparse(),
            KernelChoice::Auto if weights < Self::BLOCKS_FROM_WEIGHTS => TrainPass::Fused,
            KernelChoice::Auto if sparse_enough => sparse(),
            KernelChoice::Auto => TrainPass::Gemm,
        }
    }

    /// Its name in `metrics.json` and the summary.
    pub fn name(self) -> &'static str {
        match self {
            TrainPass::Fused => "fused",
            TrainPass::Gemm => "gemm",
            TrainPass::SparseBlocks => "sparse",
            TrainPass::SparseRows => "sparse rows",
        }
    }
}

/// Buffers of the sparse training pass: its workspace, a stream chunk's rows in sparse form,
/// and the row order 0..ROW_CHUNK for them.
struct SparsePass {
    ws: SparseWorkspace,
    chunk: SparseRows,
    identity: Vec<u32>,
}

/// All the state of one training instance: parameters, optimiser moments, data, scratch.
pub struct InstanceTrainer {
    /// The instance's settings.
    pub spec: InstanceSpec,
    shape: Shape,
    /// Parameters in the layout of [`crate::model`].
    pub params: Vec<f32>,
    grads: Vec<f32>,
    adam_m: Vec<f32>,
    adam_v: Vec<f32>,
    source: DataSource,
    /// `I_i / (rows · n)` for a batch of `weight_rows` rows (a fixed dataset's last minibatch
    /// of an epoch may be shorter).
    loss_weight: Vec<f32>,
    /// `λ / rows`: the hidden L1 penalty's weight for a batch of `weight_rows` rows.
    l1_weight: f32,
    /// Adversarial training: the attack's length ε (0: none), its feature stream's key, and
    /// this step's perturbation δ (`[n]`, empty without attacks).
    attack_length: f32,
    attack_key: u64,
    shift: Vec<f32>,
    weight_rows: usize,
    ws: Workspace,
    /// The pass this instance trains with.
    pass: TrainPass,
    /// The row-by-row sparse pass's buffers ([`TrainPass::SparseRows`]).
    sparse: Option<SparsePass>,
    /// The block pass's buffers ([`TrainPass::Gemm`], [`TrainPass::SparseBlocks`]).
    blocks: Option<BlockWorkspace>,
    /// Steps taken so far.
    pub steps_done: u64,
    block_loss: f64,
    block_steps: u64,
}

impl InstanceTrainer {
    /// A fresh instance, initialised from its own streams.
    pub fn new(
        shape: Shape,
        settings: &TrainSettings,
        spec: InstanceSpec,
        total_instances: usize,
    ) -> Self {
        let seed = settings.seed;
        let index = spec.index as u64;
        let shape = Shape {
            kind: spec.kind,
            ..shape
        };
        let params = init_params(
            &shape,
            settings.init,
            total_instances,
            stream_key(seed, index, StreamKind::Init),
        );
        Self::from_params(shape, settings, spec, params)
    }

    fn from_params(
        shape: Shape,
        settings: &TrainSettings,
        spec: InstanceSpec,
        params: Vec<f32>,
    ) -> Self {
        let shape = Shape {
            kind: spec.kind,
            ..shape
        };
        let rows = settings.batch_size;
        let loss_weight = loss_weights(&spec.importance, rows);
        let l1_weight = spec.hidden_l1 / rows as f32;
        let attack_length = spec.adversarial_radius * rms_input_norm(&spec);
        let attack_key = stream_key(settings.seed, spec.index as u64, StreamKind::Attack);
        let shift = if attack_length > 0.0 {
            vec![0.0; shape.features]
        } else {
            Vec::new()
        };
        let mut source = training_source(settings, &spec);
        let pass = TrainPass::choose(settings.kernel, &shape, &spec);
        let blocks = matches!(pass, TrainPass::Gemm | TrainPass::SparseBlocks)
            .then(|| BlockWorkspace::new(&shape, pass == TrainPass::SparseBlocks));
        let sparse = (pass == TrainPass::SparseRows).then(|| {
            source.enable_sparse();
            SparsePass {
                ws: SparseWorkspace::new(&shape),
                chunk: SparseRows::new(),
                identity: (0..ROW_CHUNK as u32).collect(),
            }
        });
        let len = params.len();
        InstanceTrainer {
            source,
            spec,
            shape,
            params,
            grads: vec![0.0; len],
            adam_m: vec![0.0; len],
            adam_v: vec![0.0; len],
            loss_weight,
            l1_weight,
            attack_length,
            attack_key,
            shift,
            weight_rows: rows,
            ws: Workspace::new(&shape),
            pass,
            sparse,
            blocks,
            steps_done: 0,
            block_loss: 0.0,
            block_steps: 0,
        }
    }

    /// Loss and gradient over this step's batch (`batch_size` fresh rows, or a fixed
    /// dataset's minibatch), filled chunk by chunk.
    ///
    /// `AVX2 = true` runs the AVX2 kernel: callers pass it only from `run_avx2`, which is
    /// reached only after [`KernelVariant::checked`] found AVX2 and FMA.
    #[inline(always)]
    fn loss_and_grad<const AVX2: bool>(&mut self, batch_size: usize) -> f64 {
        self.grads.fill(0.0);
        let n = self.shape.features;
        let rows = self.source.begin_batch(self.steps_done, batch_size);
        if rows != self.weight_rows {
            let norm = (rows * n) as f32;
            for (w, &i) in self.loss_weight.iter_mut().zip(&self.spec.importance) {
                *w = i / norm;
            }
            self.l1_weight = self.spec.hidden_l1 / rows as f32;
            self.weight_rows = rows;
        }
        if self.attack_length > 0.0 {
            self.attack();
        }
        match self.pass {
            TrainPass::Fused => {}
            TrainPass::SparseRows => return self.sparse_loss_and_grad::<AVX2>(rows),
            TrainPass::Gemm | TrainPass::SparseBlocks => {
                return self.block_loss_and_grad::<AVX2>(rows)
            }
        }
        let mut loss = 0.0;
        let mut start = 0;
        while start < rows {
            let c = ROW_CHUNK.min(rows - start);
            let stride = padded_rows(c);
            self.source
                .fill_chunk(&mut self.ws.x[..n * stride], start, c, stride);
            let (shape, params, grads, ws) =
                (&self.shape, &self.params, &mut self.grads, &mut self.ws);
            let weight = &self.loss_weight;
            let extras = Extras {
                hidden_l1: self.l1_weight,
                input_shift: &self.shift,
            };
            loss += if AVX2 {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX2 is only true inside `run_avx2`, reached after `KernelVariant::checked`.
                unsafe {
                    forward_backward_chunk_avx2(shape, params, grads, ws, weight, extras, c)
                }
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!("AVX2 kernel on a non-x86 target")
            } else {
                forward_backward_chunk(shape, params, grads, ws, weight, extras, c)
            };
            start += c;
        }
        loss
    }

    /// [`InstanceTrainer::loss_and_grad`] through the sparse pass (`train.kernel = "sparse"`):
    /// a fixed dataset's batch straight from its sparse rows, a stream's chunk by chunk.
    #[inline(always)]
    fn sparse_loss_and_grad<const AVX2: bool>(&mut self, rows: usize) -> f64 {
        let Some(pass) = self.sparse.as_mut() else {
            return 0.0;
        };
        let (shape, params, grads) = (&self.shape, &self.params, &mut self.grads);
        let weight = &self.loss_weight;
        let mut run = |batch: (&SparseRows, &[u32]), ws: &mut SparseWorkspace| {
            if AVX2 {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX2 is only true inside `run_avx2`, reached after `KernelVariant::checked`.
                unsafe {
                    sparse_forward_backward_avx2(shape, params, grads, ws, weight, batch)
                }
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!("AVX2 kernel on a non-x86 target")
            } else {
                sparse_forward_backward(shape, params, grads, ws, weight, batch)
            }
        };
        if let Some(batch) = self.source.dataset().and_then(|d| d.sparse_batch()) {
            return run(batch, &mut pass.ws);
        }
        let n = shape.features;
        let mut loss = 0.0;
        let mut start = 0;
        while start < rows {
            let c = ROW_CHUNK.min(rows - start);
            let stride = padded_rows(c);
            let x = &mut self.ws.x[..n * stride];
            self.source.fill_chunk(x, start, c, stride);
            pass.chunk.fill_from_feature_major(x, n, c, stride);
            loss += run((&pass.chunk, &pass.identity[..c]), &mut pass.ws);
            start += c;
        }
        loss
    }

    /// [`InstanceTrainer::loss_and_grad`] through the block pass, [`BLOCK_ROWS`] rows at a
    /// time, each block filled chunk by chunk as the fused kernel's batch (the same rows).
    #[inline(always)]
    fn block_loss_and_grad<const AVX2: bool>(&mut self, rows: usize) -> f64 {
        let Some(ws) = self.blocks.as_mut() else {
            return 0.0;
        };
        let sparse_input = self.pass == TrainPass::SparseBlocks;
        let n = self.shape.features;
        let mut loss = 0.0;
        let mut start = 0;
        while start < rows {
            let b = BLOCK_ROWS.min(rows - start);
            let x = &mut ws.x[..n * b];
            let mut col = 0;
            while col < b {
                let c = ROW_CHUNK.min(b - col);
                self.source.fill_columns(&mut x[col..], b, start + col, c);
                col += c;
            }
            let (shape, params, grads) = (&self.shape, &self.params, &mut self.grads);
            let block = Block {
                loss_weight: &self.loss_weight,
                extras: Extras {
                    hidden_l1: self.l1_weight,
                    input_shift: &self.shift,
                },
                rows: b,
                sparse_input,
            };
            loss += if AVX2 {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX2 is only true inside `run_avx2`, reached after `KernelVariant::checked`.
                unsafe {
                    block_forward_backward_avx2(shape, params, grads, ws, block)
                }
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!("AVX2 kernel on a non-x86 target")
            } else {
                block_forward_backward(shape, params, grads, ws, block)
            };
            start += b;
        }
        loss
    }

    /// This step's adversarial perturbation: the paper's analytic attack on one feature i,
    /// δ = ε (WᵀW)_i / ‖(WᵀW)_i‖, the feature drawn from the step number (so that a resumed
    /// run draws the same ones). Tied models only (checked by the config).
    fn attack(&mut self) {
        let (n, m) = (self.shape.features, self.shape.hidden);
        let mut draw = SplitMix64(self.attack_key ^ self.steps_done.wrapping_mul(0x9E37_79B9));
        let i = (draw.next_u64() % n as u64) as usize;
        let w = &self.params[..n * m];
        let w_i = &w[i * m..(i + 1) * m];
        let mut norm2 = 0.0f32;
        for (j, d) in self.shift.iter_mut().enumerate() {
            *d = crate::model::dot(w_i, &w[j * m..(j + 1) * m]);
            norm2 += *d * *d;
        }
        let scale = if norm2 > 0.0 {
            self.attack_length / norm2.sqrt()
        } else {
            0.0
        };
        for d in &mut self.shift {
            *d *= scale;
        }
    }

    /// THE training step: fresh batch → forward → backward → AdamW.
    #[inline(always)]
    fn step_impl<const AVX2: bool>(&mut self, settings: &TrainSettings) {
        let lr = settings.lr * settings.lr_factor(self.steps_done);
        let loss = self.loss_and_grad::<AVX2>(settings.batch_size);
        let adam = AdamW {
            lr: lr as f32,
            beta1: settings.beta1 as f32,
            beta2: settings.beta2 as f32,
            eps: settings.eps as f32,
            weight_decay: settings.weight_decay as f32,
        };
        self.steps_done += 1;
        adam.update(
            self.steps_done,
            &mut self.params,
            &self.grads,
            &mut self.adam_m,
            &mut self.adam_v,
        );
        self.block_loss += loss;
        self.block_steps += 1;
    }

    fn run_portable(&mut self, settings: &TrainSettings, steps: u64) {
        for _ in 0..steps {
            self.step_impl::<false>(settings);
        }
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&mut self, settings: &TrainSettings, steps: u64) {
        for _ in 0..steps {
            self.step_impl::<true>(settings);
        }
    }

    /// Take `steps` training steps with the given kernel variant.
    pub fn run(&mut self, settings: &TrainSettings, steps: u64, variant: KernelVariant) {
        match variant.checked() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `checked` returned Avx2, so this CPU has AVX2 and FMA.
            KernelVariant::Avx2 => unsafe { self.run_avx2(settings, steps) },
            _ => self.run_portable(settings, steps),
        }
    }

    /// One training step (for benchmarks): the same code as training runs.
    pub fn step(&mut self, settings: &TrainSettings, variant: KernelVariant) {
        self.run(settings, 1, variant);
    }

    /// Everything needed to continue this instance exactly.
    pub fn state(&self) -> InstanceState {
        InstanceState {
            index: self.spec.index,
            steps_done: self.steps_done,
            params: self.params.clone(),
            adam_m: self.adam_m.clone(),
            adam_v: self.adam_v.clone(),
            rng: self.source.stream_state(),
        }
    }

    /// An instance continuing from a saved [`InstanceTrainer::state`].
    pub fn restore(
        shape: Shape,
        settings: &TrainSettings,
        spec: InstanceSpec,
        state: &InstanceState,
    ) -> Result<Self, TrainError> {
        let shape = Shape {
            kind: spec.kind,
            ..shape
        };
        let len = shape.param_len();
        if state.index != spec.index
            || state.params.len() != len
            || state.adam_m.len() != len
            || state.adam_v.len() != len
        {
            return Err(TrainError::Resume(format!(
                "instance {} has {} parameters in the checkpoint, the config expects instance {} with {}",
                state.index,
                state.params.len(),
                spec.index,
                shape.param_len()
            )));
        }
        let mut t = Self::from_params(shape, settings, spec, state.params.clone());
        t.adam_m.copy_from_slice(&state.adam_m);
        t.adam_v.copy_from_slice(&state.adam_v);
        t.source.set_stream_state(&state.rng);
        t.steps_done = state.steps_done;
        Ok(t)
    }

    /// Mean loss of the steps since the last call, and reset.
    fn take_block_loss(&mut self) -> f64 {
        let mean = self.block_loss / self.block_steps.max(1) as f64;
        self.block_loss = 0.0;
        self.block_steps = 0;
        mean
    }
}

/// The state of one instance at a block boundary.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceState {
    /// Instance index (selects its random streams).
    pub index: usize,
    /// Steps taken.
    pub steps_done: u64,
    /// Parameters.
    pub params: Vec<f32>,
    /// Adam first moments.
    pub adam_m: Vec<f32>,
    /// Adam second moments.
    pub adam_v: Vec<f32>,
    /// Position of the training-data stream (zeros for a fixed dataset, whose rows come from
    /// the seed and whose batch comes from `steps_done`).
    pub rng: [u32; 4 * LANES],
}

/// The parameters of every trained instance at one step (`[train].snapshots`).
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Steps taken (0: the initialisation).
    pub step: u64,
    /// Parameters per instance, in the layout of [`crate::model`].
    pub params: Vec<Vec<f32>>,
}

/// The state of a whole training run at a block boundary: enough to finish it with results
/// bit-identical to an uninterrupted run.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    /// Steps done (the same for every instance).
    pub done: u64,
    /// Steps of the whole run.
    pub steps: u64,
    /// Per-instance state, in order.
    pub instances: Vec<InstanceState>,
    /// Loss curve so far: step of each logged block.
    pub log_steps: Vec<u64>,
    /// Loss curve so far: `[point][instance]`.
    pub log_loss: Vec<Vec<f64>>,
    /// Training wall time so far.
    pub elapsed: Duration,
    /// Snapshots taken so far.
    pub snapshots: Vec<Snapshot>,
}

impl TrainState {
    /// Whether every parameter and moment is finite (only such states are checkpointed).
    pub fn is_finite(&self) -> bool {
        self.instances.iter().all(|i| {
            i.params
                .iter()
                .chain(&i.adam_m)
                .chain(&i.adam_v)
                .all(|v| v.is_finite())
        })
    }
}

/// Receives the training state for a checkpoint; an `Err` stops training with that message.
pub type CheckpointWriter<'a> = &'a mut dyn FnMut(&TrainState) -> Result<(), String>;

/// How a training run is driven: threads, stop requests, periodic checkpoints.
#[derive(Default)]
pub struct TrainControl<'a> {
    /// Worker threads (default: one per core).
    pub threads: Option<usize>,
    /// Set (by a signal handler) to stop at the next block boundary.
    pub stop: Option<&'a AtomicBool>,
    /// Set to stop within about 50 ms of work, mid-block, keeping no state (for callers that
    /// will not resume, such as the Python API). While it is given, progress is reported
    /// within blocks too.
    pub abort: Option<&'a AtomicBool>,
    /// Wall time between checkpoints, and what to do with each.
    pub checkpoint: Option<(Duration, CheckpointWriter<'a>)>,
}

/// The notebook loss of `params` on `batches` fresh evaluation batches of `batch_size` rows
/// (the instance's own evaluation stream; for a fixed dataset, its test stream), computed by the
/// forward pass alone.
pub fn evaluate(
    shape: Shape,
    settings: &TrainSettings,
    spec: &InstanceSpec,
    params: &[f32],
    batches: usize,
) -> f64 {
    let shape = Shape {
        kind: spec.kind,
        ..shape
    };
    let n = shape.features;
    let rows = settings.batch_size;
    let mut sampler = DataSource::evaluation(
        &spec.data,
        &spec.feature_probability,
        settings.seed,
        spec.index,
        ROW_CHUNK,
    );
    let weight = loss_weights(&spec.importance, rows);
    let mut scratch = LossScratch::new(&shape);
    let mut x = vec![0.0f32; n * ROW_CHUNK];
    let mut eval = Evaluation {
        shape: &shape,
        params,
        sampler: &mut sampler,
        weight: &weight,
        scratch: &mut scratch,
        x: &mut x,
    };
    let total = match KernelVariant::detect().checked() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `checked` returned Avx2, so this CPU has AVX2 and FMA.
        KernelVariant::Avx2 => unsafe { eval.run_avx2(rows, batches) },
        _ => eval.run(rows, batches),
    };
    total / batches as f64
}

/// The evaluation loop's state: sample a chunk, add its loss.
struct Evaluation<'a> {
    shape: &'a Shape,
    params: &'a [f32],
    sampler: &'a mut FeatureSampler,
    weight: &'a [f32],
    scratch: &'a mut LossScratch,
    x: &'a mut [f32],
}

impl Evaluation<'_> {
    /// Total loss of `batches` batches of `rows` rows.
    #[inline(always)]
    fn run(&mut self, rows: usize, batches: usize) -> f64 {
        let n = self.shape.features;
        let mut total = 0.0;
        for _ in 0..batches {
            let mut start = 0;
            while start < rows {
                let c = ROW_CHUNK.min(rows - start);
                let x = &mut self.x[..n * c];
                self.sampler.fill(x, c);
                total += self
                    .scratch
                    .chunk_loss(self.shape, self.params, x, self.weight, c, c);
                start += c;
            }
        }
        total
    }

    /// [`Evaluation::run`] with the sampler compiled for AVX2 (the same draws and values).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&mut self, rows: usize, batches: usize) -> f64 {
        self.run(rows, batches)
    }
}

/// The training data of instance `spec`, in chunks of [`ROW_CHUNK`] rows.
fn training_source(settings: &TrainSettings, spec: &InstanceSpec) -> DataSource {
    DataSource::training(
        &spec.data,
        &spec.feature_probability,
        settings.seed,
        spec.index,
        ROW_CHUNK,
    )
}

/// The first `rows` training rows of instance `spec`, `[rows][features]`, drawn exactly as
/// training draws them: step by step (a fresh batch, or the dataset's minibatch of that step),
/// each batch in chunks of [`ROW_CHUNK`] rows. Adversarial perturbations are not applied.
pub fn training_rows(settings: &TrainSettings, spec: &InstanceSpec, rows: usize) -> Vec<f32> {
    let n = spec.feature_probability.len();
    let mut source = training_source(settings, spec);
    let mut out = Vec::with_capacity(rows * n);
    let mut x = vec![0.0f32; n * padded_rows(ROW_CHUNK)];
    let mut step = 0;
    while out.len() < rows * n {
        let batch = source.begin_batch(step, settings.batch_size);
        let mut start = 0;
        while start < batch && out.len() < rows * n {
            let c = ROW_CHUNK.min(batch - start);
            let stride = padded_rows(c);
            source.fill_chunk(&mut x[..n * stride], start, c, stride);
            // The chunk is feature-major ([features][stride]); rows go out one after another.
            for r in 0..c.min(rows - out.len() / n) {
                out.extend((0..n).map(|f| x[f * stride + r]));
            }
            start += c;
        }
        step += 1;
    }
    out
}

/// The loss of `params` on the instance's fixed training dataset (drawn again from the seed),
/// or `None` when it trains on fresh batches.
pub fn train_set_loss(
    shape: Shape,
    settings: &TrainSettings,
    spec: &InstanceSpec,
    params: &[f32],
) -> Option<f64> {
    spec.data.dataset?;
    let shape = Shape {
        kind: spec.kind,
        ..shape
    };
    let source = training_source(settings, spec);
    let d = source.dataset()?;
    Some(crate::model::forward::loss(
        &shape,
        params,
        d.x(),
        d.rows(),
        &spec.importance,
    ))
}

/// The result of training: final weights, the loss curve and timing.
#[derive(Clone, Debug)]
pub struct Trained {
    /// Model sizes.
    pub shape: Shape,
    /// Instance settings, in order.
    pub specs: Vec<InstanceSpec>,
    /// Final parameters per instance.
    pub params: Vec<Vec<f32>>,
    /// Step at the end of each logged block.
    pub log_steps: Vec<u64>,
    /// `log_loss[point][instance]`: mean training loss of the block ending at `log_steps[point]`.
    pub log_loss: Vec<Vec<f64>>,
    /// Loss of the final weights on fresh evaluation batches, per instance.
    pub final_loss: Vec<f64>,
    /// Loss of the final weights on the fixed training dataset, per instance (when used).
    pub train_set_loss: Option<Vec<f64>>,
    /// Parameters at the `[train].snapshots` steps.
    pub snapshots: Vec<Snapshot>,
    /// Wall time of the training loop.
    pub elapsed: Duration,
    /// Kernel variant that ran.
    pub variant: KernelVariant,
    /// The pass each instance trained with, in order.
    pub passes: Vec<TrainPass>,
    /// The whole final state (Adam moments and random streams too), kept for a run of a
    /// subset of instances (`train.only_instances`): `tms merge` joins such shards into the
    /// state of the full run.
    pub final_state: Option<TrainState>,
}

/// Number of evaluation batches behind `final_loss`: `train.eval_rows` rows (by default
/// 2^18: choosing the best of several restarts is not decided by sampling noise when their
/// losses differ by ~1e-4; at batch 1024 this is 256 batches, about 2.5% of a 10,000-step
/// run) in batches of `train.batch_size`, at least 8.
pub fn eval_batches(settings: &TrainSettings) -> usize {
    settings
        .eval_rows
        .div_ceil(settings.batch_size.max(1))
        .max(8)
}

/// Train every instance of `config` (or the subset `specs`), in parallel, reporting progress;
/// continue from `resume` when given.
pub fn train(
    config: &TrainConfig,
    specs: &[InstanceSpec],
    total_instances: usize,
    resume: Option<&TrainState>,
    control: TrainControl<'_>,
    progress: &mut dyn Progress,
) -> Result<Trained, TrainError> {
    let TrainControl {
        threads,
        stop,
        abort,
        mut checkpoint,
    } = control;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .map_err(|e| TrainError::Threads {
            threads: threads.unwrap_or(0),
            message: e.to_string(),
        })?;
    let shape = config.shape();
    let settings = &config.train;
    let variant = KernelVariant::detect();
    let steps = settings.steps;
    let (mut trainers, mut done, mut log_steps, mut log_loss, before, mut snapshots) = match resume
    {
        None => {
            let trainers: Vec<InstanceTrainer> = pool.install(|| {
                specs
                    .par_iter()
                    .map(|s| InstanceTrainer::new(shape, settings, s.clone(), total_instances))
                    .collect()
            });
            (
                trainers,
                0,
                Vec::new(),
                Vec::new(),
                Duration::ZERO,
                Vec::new(),
            )
        }
        Some(state) => {
            if state.instances.len() != specs.len() || state.steps != steps || state.done > steps {
                return Err(TrainError::Resume(format!(
                    "it holds {} instances at step {} of {}; the config has {} instances and {} steps",
                    state.instances.len(),
                    state.done,
                    state.steps,
                    specs.len(),
                    steps
                )));
            }
            let trainers = specs
                .iter()
                .zip(&state.instances)
                .map(|(spec, st)| InstanceTrainer::restore(shape, settings, spec.clone(), st))
                .collect::<Result<Vec<_>, _>>()?;
            (
                trainers,
                state.done,
                state.log_steps.clone(),
                state.log_loss.clone(),
                state.elapsed,
                state.snapshots.clone(),
            )
        }
    };
    let snapshot_steps = config.snapshot_steps();
    let take_snapshot = |trainers: &[InstanceTrainer], step| Snapshot {
        step,
        params: trainers.iter().map(|t| t.params.clone()).collect(),
    };
    if done == 0 && snapshot_steps.first() == Some(&0) && snapshots.is_empty() {
        snapshots.push(take_snapshot(&trainers, 0));
    }

    let block = steps.div_ceil(settings.log_points.min(steps)).max(1);
    let start = Instant::now();
    let mut last_checkpoint = Instant::now();
    let save_state = |trainers: &[InstanceTrainer],
                      done,
                      log_steps: &[u64],
                      log_loss: &[Vec<f64>],
                      snapshots: &[Snapshot]| TrainState {
        done,
        steps,
        instances: trainers.iter().map(InstanceTrainer::state).collect(),
        log_steps: log_steps.to_vec(),
        log_loss: log_loss.to_vec(),
        elapsed: before + start.elapsed(),
        snapshots: snapshots.to_vec(),
    };
    progress.begin(&config.name, steps);
    progress.update(done, f64::NAN);
    // The latest block's mean loss (NaN before the first), and the steps of an abortable segment.
    let mut last_loss = f64::NAN;
    let mut segment: u64 = 16;
    while done < steps {
        if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            progress.end();
            let state = save_state(&trainers, done, &log_steps, &log_loss, &snapshots);
            return Err(TrainError::Interrupted {
                state: Box::new(state),
            });
        }
        let count = block.min(steps - done);
        // A block runs in one go, or in segments that end at the snapshot steps inside it (and,
        // when an abort may come, segments of about 50 ms). Segments do not change results.
        let mut at = done;
        while at < done + count {
            let next = snapshot_steps
                .iter()
                .copied()
                .find(|&s| s > at && s < done + count)
                .unwrap_or(done + count);
            let next = match abort {
                Some(flag) => {
                    if flag.load(Ordering::SeqCst) {
                        progress.end();
                        return Err(TrainError::Aborted { done: at, steps });
                    }
                    if at > done {
                        progress.update(at, last_loss);
                    }
                    next.min(at.saturating_add(segment))
                }
                None => next,
            };
            let started = Instant::now();
            pool.install(|| {
                trainers
                    .par_iter_mut()
                    .for_each(|t| t.run(settings, next - at, variant))
            });
            // Longer segments while a whole one takes under 25 ms.
            if next - at == segment && started.elapsed() < Duration::from_millis(25) {
                segment = (2 * segment).min(1 << 20);
            }
            at = next;
            if snapshot_steps.binary_search(&at).is_ok() {
                snapshots.push(take_snapshot(&trainers, at));
            }
        }
        let losses: Vec<f64> = trainers.iter_mut().map(|t| t.take_block_loss()).collect();
        if let Some((k, &loss)) = losses.iter().enumerate().find(|(_, l)| !l.is_finite()) {
            progress.end();
            return Err(TrainError::Diverged {
                instance: specs[k].index,
                from: done + 1,
                to: done + count,
                loss,
            });
        }
        done += count;
        last_loss = losses.iter().sum::<f64>() / losses.len() as f64;
        progress.update(done, last_loss);
        log_steps.push(done);
        log_loss.push(losses);
        if let Some((every, write)) = checkpoint.as_mut() {
            if done < steps && last_checkpoint.elapsed() >= *every {
                let state = save_state(&trainers, done, &log_steps, &log_loss, &snapshots);
                if state.is_finite() {
                    write(&state).map_err(TrainError::Checkpoint)?;
                }
                last_checkpoint = Instant::now();
            }
        }
    }
    let elapsed = before + start.elapsed();
    progress.end();
    let final_state = settings
        .only_instances
        .is_some()
        .then(|| save_state(&trainers, done, &log_steps, &log_loss, &snapshots));

    let final_loss: Vec<f64> = pool.install(|| {
        trainers
            .par_iter()
            .map(|t| {
                let batches = eval_batches(settings);
                evaluate(shape, settings, &t.spec, &t.params, batches)
            })
            .collect()
    });
    let train_set_loss: Option<Vec<f64>> = pool.install(|| {
        trainers
            .par_iter()
            .map(|t| {
                let d = t.source.dataset()?;
                let loss = crate::model::forward::loss(
                    &t.shape,
                    &t.params,
                    d.x(),
                    d.rows(),
                    &t.spec.importance,
                );
                Some(loss)
            })
            .collect()
    });
    let passes = trainers.iter().map(|t| t.pass).collect();
    Ok(Trained {
        shape,
        specs: specs.to_vec(),
        params: trainers.into_iter().map(|t| t.params).collect(),
        log_steps,
        log_loss,
        final_loss,
        train_set_loss,
        snapshots,
        elapsed,
        variant,
        passes,
        final_state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ModelConfig, TrainConfig};
    use crate::model::ModelKind;

    fn one_thread() -> TrainControl<'static> {
        TrainControl {
            threads: Some(1),
            ..Default::default()
        }
    }

    /// Stopping and resuming from the state gives bit-identical results (the dense kernel; the
    /// sparse pass on a fixed dataset, with a warm-up and cosine annealing).
    #[test]
    fn resume_after_stop_is_bit_identical() {
        let mut sparse = tiny_config(ModelKind::ReluOutput);
        sparse.model.features = 40;
        sparse.data.feature_probability = crate::config::PerFeature::All(0.05);
        sparse.data.dataset = Some(crate::config::DatasetConfig {
            rows: 60,
            normalize: true,
        });
        sparse.train.kernel = crate::config::KernelChoice::Sparse;
        sparse.train.schedule = crate::config::Schedule::CosineAnnealing;
        sparse.train.warmup = 30;
        let mut blocks = tiny_config(ModelKind::Abs);
        blocks.model.features = 40;
        blocks.model.hidden = 12;
        blocks.train.batch_size = 700; // two blocks, the second ragged
        let mut sparse_blocks = blocks.clone();
        blocks.train.kernel = crate::config::KernelChoice::Gemm;
        sparse_blocks.train.kernel = crate::config::KernelChoice::Sparse;
        sparse_blocks.data.feature_probability = crate::config::PerFeature::All(0.02);
        for base in [
            tiny_config(ModelKind::ReluOutput),
            sparse,
            blocks,
            sparse_blocks,
        ] {
            resume_matches(base);
        }
    }

    /// With an abort flag, blocks run in short segments: the same results; once the flag is
    /// set, training stops mid-block with `Aborted`.
    #[test]
    fn abortable_training_gives_the_same_weights_and_stops_mid_block() {
        let mut cfg = tiny_config(ModelKind::ReluOutput);
        cfg.train.steps = 3000;
        cfg.train.log_points = 1; // one block of 3,000 steps
        let specs = cfg.resolve().unwrap();
        let plain = train(&cfg, &specs, 1, None, one_thread(), &mut NoProgress).unwrap();
        let flag = AtomicBool::new(false);
        let control = TrainControl {
            threads: Some(1),
            abort: Some(&flag),
            ..Default::default()
        };
        let segmented = train(&cfg, &specs, 1, None, control, &mut NoProgress).unwrap();
        assert_eq!(segmented.params, plain.params);
        assert_eq!(segmented.log_loss, plain.log_loss);

        /// Sets the flag at the first report from inside the block.
        struct AbortAt<'a>(&'a AtomicBool);
        impl Progress for AbortAt<'_> {
            fn begin(&mut self, _: &str, _: u64) {}
            fn update(&mut self, done: u64, _: f64) {
                if done > 0 {
                    self.0.store(true, Ordering::SeqCst);
                }
            }
            fn end(&mut self) {}
        }
        let control = TrainControl {
            threads: Some(1),
            abort: Some(&flag),
            ..Default::default()
        };
        flag.store(false, Ordering::SeqCst);
        match train(&cfg, &specs, 1, None, control, &mut AbortAt(&flag)) {
            Err(TrainError::Aborted { done, steps }) => assert!(done > 0 && done < steps),
            other => panic!(
                "expected an abort mid-block, got {:?}",
                other.map(|t| t.log_steps)
            ),
        }
    }

    /// `training_rows` follows the sampler: rows come out in training's order, the share of
    /// zeros is about 1 − p, a fixed dataset gives back its own rows, and any prefix is the
    /// start of a longer draw.
    #[test]
    fn training_rows_are_the_rows_training_draws() {
        let mut cfg = tiny_config(ModelKind::ReluOutput);
        cfg.data.feature_probability = crate::config::PerFeature::All(0.25);
        cfg.train.batch_size = 200;
        let specs = cfg.resolve().unwrap();
        let n = specs[0].feature_probability.len();
        let long = training_rows(&cfg.train, &specs[0], 1000);
        assert_eq!(long.len(), 1000 * n);
        assert_eq!(training_rows(&cfg.train, &specs[0], 333), long[..333 * n]);
        let zeros = long.iter().filter(|&&v| v == 0.0).count() as f64 / long.len() as f64;
        assert!((zeros - 0.75).abs() < 0.02, "share of zeros {zeros}");
        assert!(long.iter().all(|&v| (0.0..1.0).contains(&v)));

        cfg.data.dataset = Some(crate::config::DatasetConfig {
            rows: 50,
            normalize: false,
        });
        let specs = cfg.resolve().unwrap();
        let rows = training_rows(&cfg.train, &specs[0], 50);
        let source = DataSource::training(
            &specs[0].data,
            &specs[0].feature_probability,
            cfg.train.seed,
            specs[0].index,
            ROW_CHUNK,
        );
        let d = source.dataset().unwrap();
        // Full-batch: every step sees the whole dataset, in the dataset's order.
        let mut seen: Vec<Vec<u32>> = rows
            .chunks(n)
            .map(|r| r.iter().map(|v| v.to_bits()).collect())
            .collect();
        // The dataset is feature-major ([features][rows]).
        let mut all: Vec<Vec<u32>> = (0..d.rows())
            .map(|r| (0..n).map(|f| d.x()[f * d.rows() + r].to_bits()).collect())
            .collect();
        seen.sort();
        all.sort();
        assert_eq!(seen, all);
    }

    fn resume_matches(mut cfg: TrainConfig) {
        cfg.train.steps = 120;
        cfg.train.log_points = 12;
        let specs = cfg.resolve().unwrap();
        let full = train(&cfg, &specs, 1, None, one_thread(), &mut NoProgress).unwrap();
        // Stop after the first checkpoint by setting the flag from the checkpoint callback.
        let stop = AtomicBool::new(false);
        let mut saved = None;
        let mut on_checkpoint = |s: &TrainState| {
            saved = Some(s.clone());
            stop.store(true, Ordering::SeqCst);
            Ok(())
        };
        let control = TrainControl {
            abort: None,
            threads: Some(1),
            stop: Some(&stop),
            checkpoint: Some((Duration::ZERO, &mut on_checkpoint)),
        };
        let err = train(&cfg, &specs, 1, None, control, &mut NoProgress).unwrap_err();
        let TrainError::Interrupted { state } = err else {
            panic!("expected an interruption, got {err}");
        };
        assert_eq!(state.done, 10);
        let saved = saved.expect("a checkpoint was written");
        assert_eq!(saved.instances, state.instances);
        assert_eq!(saved.log_loss, state.log_loss);
        let resumed = train(&cfg, &specs, 1, Some(&state), one_thread(), &mut NoProgress).unwrap();
        assert_eq!(resumed.params, full.params);
        assert_eq!(resumed.log_loss, full.log_loss);
        assert_eq!(resumed.final_loss, full.final_loss);
    }

    fn tiny_config(kind: ModelKind) -> TrainConfig {
        let mut cfg = TrainConfig {
            name: "t".into(),
            model: ModelConfig {
                kind,
                features: 5,
                hidden: 2,
            },
            train: TrainSettings::default(),
            data: Default::default(),
            sweep: None,
            instances: vec![],
        };
        cfg.train.steps = 50;
        cfg.train.batch_size = 200;
        cfg
    }

    /// AdamW against values worked out by hand from PyTorch's update rule.
    #[test]
    fn adamw_first_steps_match_pytorch_rule() {
        let adam = AdamW {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        };
        let mut p = [1.0f32];
        let (mut m, mut v) = ([0.0f32], [0.0f32]);
        adam.update(1, &mut p, &[0.5], &mut m, &mut v);
        // decay: 1 * (1 - 0.001) = 0.999; m̂/√v̂ = 1 → 0.999 - 0.1 = 0.899
        assert!((p[0] - 0.899).abs() < 1e-6, "{}", p[0]);
        adam.update(2, &mut p, &[-0.5], &mut m, &mut v);
        // m = 0.9*0.05 - 0.05 = -0.005; v = 0.999*0.00025 + 0.00025 = 0.00049975
        let m_hat = -0.005f64 / (1.0 - 0.81);
        let v_hat = 0.00049975f64 / (1.0 - 0.999f64.powi(2));
        let expect = 0.899f64 * (1.0 - 0.001) - 0.1 * m_hat / (v_hat.sqrt() + 1e-8);
        assert!((p[0] as f64 - expect).abs() < 1e-5, "{} vs {expect}", p[0]);
    }

    #[test]
    fn notebook_init_has_the_documented_scale() {
        let shape = Shape {
            kind: ModelKind::ReluOutput,
            features: 400,
            hidden: 30,
        };
        let p = init_params(&shape, InitScheme::Notebook, 40, 1);
        let w = &p[..shape.weight_len()];
        let var = w.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / w.len() as f64;
        let expect = 2.0 / (30.0 * 440.0);
        assert!((var / expect - 1.0).abs() < 0.05, "{var} vs {expect}");
        assert!(p[shape.bias_offset()..].iter().all(|&b| b == 0.0));
    }

    #[test]
    fn training_lowers_the_loss_for_every_model() {
        for kind in ModelKind::ALL {
            let cfg = tiny_config(kind);
            let specs = cfg.resolve().unwrap();
            let before = evaluate(
                cfg.shape(),
                &cfg.train,
                &specs[0],
                &init_params(&cfg.shape(), cfg.train.init, 1, 9),
                4,
            );
            let mut c2 = cfg.clone();
            c2.train.steps = 400;
            let t = train(&c2, &specs, 1, None, one_thread(), &mut NoProgress).unwrap();
            assert!(
                t.final_loss[0] < 0.8 * before,
                "{kind:?}: {} -> {}",
                before,
                t.final_loss[0]
            );
        }
    }

    /// Results do not depend on the thread count, nor on which other instances train alongside.
    #[test]
    fn deterministic_across_threads_and_subsets() {
        let mut cfg = tiny_config(ModelKind::ReluOutput);
        cfg.sweep = Some(crate::config::SweepConfig {
            feature_probability: Some(crate::config::Axis::Values(vec![1.0, 0.3, 0.1])),
            ..Default::default()
        });
        let specs = cfg.resolve().unwrap();
        let one = train(&cfg, &specs, 3, None, one_thread(), &mut NoProgress).unwrap();
        let two = train(
            &cfg,
            &specs,
            3,
            None,
            TrainControl {
                threads: Some(2),
                ..Default::default()
            },
            &mut NoProgress,
        )
        .unwrap();
        assert_eq!(one.params, two.params);
        let alone = train(&cfg, &specs[1..2], 3, None, one_thread(), &mut NoProgress).unwrap();
        assert_eq!(alone.params[0], one.params[1]);
    }

    /// Snapshots hold the parameters at exactly the asked steps (0: the initialisation, the
    /// last: the final weights), and taking them changes nothing else.
    #[test]
    fn snapshots_are_taken_at_their_steps_without_changing_training() {
        let mut cfg = tiny_config(ModelKind::ReluHidden);
        cfg.train.steps = 120;
        cfg.train.log_points = 12;
        let specs = cfg.resolve().unwrap();
        let plain = train(&cfg, &specs, 1, None, one_thread(), &mut NoProgress).unwrap();
        assert!(plain.snapshots.is_empty());
        cfg.train.snapshots = Some(crate::config::Snapshots::Steps(vec![0, 7, 10, 55, 120]));
        let with = train(&cfg, &specs, 1, None, one_thread(), &mut NoProgress).unwrap();
        assert_eq!(with.params, plain.params);
        assert_eq!(with.log_loss, plain.log_loss);
        let steps: Vec<u64> = with.snapshots.iter().map(|s| s.step).collect();
        assert_eq!(steps, [0, 7, 10, 55, 120]);
        assert_eq!(with.snapshots[4].params, with.params);
        let init = init_params(
            &cfg.shape(),
            cfg.train.init,
            1,
            stream_key(0, 0, StreamKind::Init),
        );
        assert_eq!(with.snapshots[0].params[0], init);
        // A run stopped at step 7 holds the snapshot of step 7 as it would be uninterrupted.
        let mut short = cfg.clone();
        short.train.steps = 7;
        short.train.snapshots = None;
        let mut c2 = short.clone();
        c2.train.log_points = 7;
        let t7 = train(&c2, &specs, 1, None, one_thread(), &mut NoProgress).unwrap();
        assert_eq!(with.snapshots[1].params, t7.params);
    }

    #[test]
    fn spaced_snapshots_start_at_zero_and_end_at_the_last_step() {
        use crate::config::{Snapshots, Spacing};
        let log = Snapshots::Spaced {
            count: 5,
            spacing: Spacing::Log,
        };
        assert_eq!(log.steps(10_000), [0, 1, 22, 464, 10_000]);
        let lin = Snapshots::Spaced {
            count: 3,
            spacing: Spacing::Linear,
        };
        assert_eq!(lin.steps(101), [0, 1, 101]);
        // Short runs get fewer distinct steps.
        assert_eq!(log.steps(3), [0, 1, 2, 3]);
    }

    /// On a fixed dataset the model fits its training rows better than fresh test rows, the
    /// minibatch path visits every row, and training is deterministic.
    #[test]
    fn a_fixed_dataset_is_memorised_and_reported_beside_the_test_loss() {
        let mut cfg = tiny_config(ModelKind::ReluOutput);
        cfg.model.features = 20;
        cfg.model.hidden = 5;
        cfg.data.feature_probability = crate::config::PerFeature::All(0.1);
        cfg.data.dataset = Some(crate::config::DatasetConfig {
            rows: 30,
            normalize: true,
        });
        cfg.train.steps = 3000;
        cfg.train.lr = 1e-2;
        cfg.train.weight_decay = 0.0;
        let specs = cfg.resolve().unwrap();
        for batch in [1024, 8] {
            cfg.train.batch_size = batch;
            let t = train(&cfg, &specs, 1, None, one_thread(), &mut NoProgress).unwrap();
            let train_loss = t.train_set_loss.as_ref().unwrap()[0];
            assert!(
                train_loss < 0.5 * t.final_loss[0],
                "batch {batch}: train {train_loss} vs test {}",
                t.final_loss[0]
            );
            let again = train(&cfg, &specs, 1, None, one_thread(), &mut NoProgress).unwrap();
            assert_eq!(again.params, t.params);
        }
    }

    /// The sparse pass trains the same models as the dense kernel (to rounding), on a fixed
    /// dataset (full batch and minibatches) and on fresh batches, and repeats itself exactly
    /// for any thread count.
    #[test]
    fn the_sparse_pass_trains_what_the_dense_kernel_trains() {
        for (kind, dataset, batch) in [
            (ModelKind::ReluOutput, true, 1024),
            (ModelKind::ReluOutput, true, 16),
            (ModelKind::ReluOutput, false, 200),
            (ModelKind::Linear, false, 200),
        ] {
            let mut cfg = tiny_config(kind);
            cfg.model.features = 40;
            cfg.model.hidden = 2;
            cfg.data.feature_probability = crate::config::PerFeature::All(0.05);
            cfg.data.dataset = dataset.then_some(crate::config::DatasetConfig {
                rows: 50,
                normalize: true,
            });
            cfg.sweep = Some(crate::config::SweepConfig {
                restarts: 3,
                ..Default::default()
            });
            cfg.train.steps = 300;
            cfg.train.batch_size = batch;
            let specs = cfg.resolve().unwrap();
            let dense = train(&cfg, &specs, 1, None, one_thread(), &mut NoProgress).unwrap();
            cfg.train.kernel = crate::config::KernelChoice::Sparse;
            let sparse = train(&cfg, &specs, 1, None, one_thread(), &mut NoProgress).unwrap();
            for (a, b) in dense.params.iter().zip(&sparse.params) {
                let scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                for (x, y) in a.iter().zip(b) {
                    assert!(
                        (x - y).abs() <= 2e-3 * scale,
                        "{kind:?} dataset {dataset} batch {batch}: {x} vs {y}"
                    );
                }
            }
            let control = TrainControl {
                abort: None,
                threads: Some(3),
                ..TrainControl::default()
            };
            let threaded = train(&cfg, &specs, 1, None, control, &mut NoProgress).unwrap();
            assert_eq!(threaded.params, sparse.params);
        }
    }

    /// The block pass, with dense and with sparse input, trains every model kind (with the
    /// hidden L1 penalty and adversarial training too) to the fused kernel's weights, to
    /// rounding; and gives the same bits for any thread count.
    #[test]
    fn every_pass_trains_what_the_fused_kernel_trains() {
        use crate::config::KernelChoice;
        for (kind, density, l1, radius) in [
            (ModelKind::ReluOutput, 0.05, 0.0, 0.0),
            (ModelKind::ReluOutput, 1.0, 0.0, 0.0),
            (ModelKind::Linear, 0.05, 0.0, 0.0),
            (ModelKind::ReluHidden, 0.05, 0.01, 0.0),
            (ModelKind::Abs, 0.05, 0.0, 0.0),
            (ModelKind::ReluOutput, 0.05, 0.0, 0.3),
        ] {
            let mut cfg = tiny_config(kind);
            cfg.model.features = 40;
            cfg.model.hidden = 12;
            cfg.data.feature_probability = crate::config::PerFeature::All(density);
            cfg.train.steps = 200;
            cfg.train.batch_size = 600;
            cfg.train.hidden_l1 = l1;
            cfg.train.adversarial_radius = radius;
            cfg.sweep = Some(crate::config::SweepConfig {
                restarts: 2,
                ..Default::default()
            });
            let specs = cfg.resolve().unwrap();
            cfg.train.kernel = KernelChoice::Fused;
            let fused = train(&cfg, &specs, 2, None, one_thread(), &mut NoProgress).unwrap();
            for (choice, pass) in [
                (KernelChoice::Gemm, TrainPass::Gemm),
                (KernelChoice::Sparse, TrainPass::SparseBlocks),
            ] {
                cfg.train.kernel = choice;
                let run = train(&cfg, &specs, 2, None, one_thread(), &mut NoProgress).unwrap();
                assert_eq!(run.passes, vec![pass; 2]);
                for (a, b) in fused.params.iter().zip(&run.params) {
                    let scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    for (x, y) in a.iter().zip(b) {
                        assert!(
                            (x - y).abs() <= 2e-3 * scale,
                            "{kind:?} p={density} l1={l1} radius={radius} {choice:?}: {x} vs {y}"
                        );
                    }
                }
                let control = TrainControl {
                    threads: Some(2),
                    ..TrainControl::default()
                };
                let threaded = train(&cfg, &specs, 2, None, control, &mut NoProgress).unwrap();
                assert_eq!(threaded.params, run.params, "{kind:?} {choice:?} threads");
                let alone =
                    train(&cfg, &specs[1..], 2, None, one_thread(), &mut NoProgress).unwrap();
                assert_eq!(alone.params[0], run.params[1], "{kind:?} {choice:?} subset");
            }
        }
    }

    #[test]
    fn auto_picks_the_pass_by_shape_and_density() {
        use crate::config::KernelChoice::{Auto, Fused, Gemm, Sparse};
        let shape = |features, hidden| Shape {
            kind: ModelKind::ReluOutput,
            features,
            hidden,
        };
        let spec = |p: f32, kind| InstanceSpec {
            index: 0,
            kind,
            restart: 0,
            hidden_l1: 0.0,
            adversarial_radius: 0.0,
            feature_probability: vec![p; 10],
            importance: vec![1.0; 10],
            data: Default::default(),
        };
        let (relu, abs) = (ModelKind::ReluOutput, ModelKind::Abs);
        let mut l1 = spec(0.5, relu);
        l1.hidden_l1 = 0.1;
        use TrainPass::{Fused as F, Gemm as G, SparseBlocks as SB, SparseRows as SR};
        for (choice, (n, m), s, want) in [
            (Auto, (5, 2), spec(0.001, relu), F),
            (Auto, (20, 5), spec(1.0, relu), F),
            (Auto, (100, 20), spec(1.0, relu), G),
            (Auto, (400, 30), spec(0.02, relu), G),
            (Auto, (400, 30), spec(0.01, relu), SB),
            (Auto, (100, 40), spec(0.001, abs), SB),
            (Auto, (1000, 2), spec(0.01, relu), SR),
            (Sparse, (5, 2), spec(0.5, relu), SR),
            (Sparse, (5, 2), spec(0.5, abs), SB),
            (Sparse, (5, 2), l1, SB),
            (Fused, (400, 30), spec(0.001, relu), F),
            (Gemm, (5, 2), spec(0.001, relu), G),
        ] {
            assert_eq!(
                TrainPass::choose(choice, &shape(n, m), &s),
                want,
                "{choice:?} {n}×{m}"
            );
        }
        assert_eq!(
            passes_in_words(&[TrainPass::Gemm, TrainPass::SparseBlocks, TrainPass::Gemm]),
            "gemm ×2, sparse ×1"
        );
        assert_eq!(passes_in_words(&[TrainPass::Fused; 3]), "fused");
    }

    #[test]
    fn divergence_is_reported_with_instance_and_step() {
        let mut cfg = tiny_config(ModelKind::Linear);
        cfg.train.lr = 1e30;
        cfg.data.importance = crate::config::ImportanceSpec::All(1e12);
        let specs = cfg.resolve().unwrap();
        let e = train(&cfg, &specs, 1, None, one_thread(), &mut NoProgress).unwrap_err();
        assert!(matches!(e, TrainError::Diverged { instance: 0, .. }), "{e}");
        assert!(e.to_string().contains("instance 0"));
    }
}
