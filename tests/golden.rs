//! Golden-file test against PyTorch: for each of the four model kinds on a small fixed problem,
//! tms's per-instance loss, gradients and two AdamW steps must match what `torch.autograd` and
//! `torch.optim.AdamW` compute in float32 (`tests/data/golden_torch.json`, written by
//! `bench/golden.py`; see there for how to regenerate it).
//!
//! Each step is checked on its own: step 2 starts from torch's parameters after step 1 (with
//! tms's own gradient there and tms's optimizer moments from step 1), so an error shows up at
//! the step that makes it instead of drifting.

use std::collections::BTreeMap;

use serde::Deserialize;
use tms::model::{loss_and_grad, Extras, ModelKind, Shape};
use tms::train::AdamW;

/// Largest accepted relative error, `|tms - torch| / max(|torch|, floor)`.
const TOLERANCE: f64 = 1e-5;
/// The floor of the denominator, as a fraction of the largest magnitude in the tensor, so that
/// the absolute tolerance is 1e-6 of it (about 8 float32 ulps). An entry much smaller than its
/// tensor's largest comes from a sum that cancels, and float32 rounding in another summation
/// order is relative to the terms, not to the result: torch's own dW[1][0] of `relu-output`
/// (1% of the largest) is 3e-5 off the exact (float64) value, tms's 3e-6.
const FLOOR: f64 = 0.1;

#[derive(Deserialize)]
struct Golden {
    torch_version: String,
    adamw: Hyper,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Hyper {
    lr: f32,
    betas: [f32; 2],
    eps: f32,
    weight_decay: f32,
}

#[derive(Deserialize)]
struct Case {
    kind: ModelKind,
    n: usize,
    m: usize,
    instances: usize,
    rows: usize,
    importance: Vec<f32>,
    /// `[instance][row][feature]`.
    x: Vec<Vec<Vec<f32>>>,
    params: Params,
    steps: Vec<Step>,
}

/// Parameters (or their gradients) of all instances.
#[derive(Deserialize)]
struct Params {
    /// `[instance][feature][hidden]`.
    #[serde(rename = "W")]
    w: Vec<Vec<Vec<f32>>>,
    /// `[instance][feature][hidden]`, untied models only.
    #[serde(rename = "W_dec")]
    w_dec: Option<Vec<Vec<Vec<f32>>>>,
    /// `[instance][feature]`.
    b: Vec<Vec<f32>>,
}

#[derive(Deserialize)]
struct Step {
    t: u64,
    /// Per instance, at the parameters before the step.
    loss: Vec<f32>,
    /// At the parameters before the step.
    grad: Params,
    /// Parameters after the step.
    after: Params,
}

impl Params {
    /// Instance `inst` as a tms parameter buffer: `W` `[n][m]`, then `W_dec` `[n][m]` for
    /// untied models, then `b[n]`.
    fn buffer(&self, shape: &Shape, inst: usize) -> Vec<f32> {
        let mut p: Vec<f32> = self.w[inst].concat();
        if !shape.kind.tied() {
            let dec = self.w_dec.as_ref().expect("an untied case has W_dec");
            p.extend(dec[inst].concat());
        }
        p.extend(&self.b[inst]);
        assert_eq!(p.len(), shape.param_len(), "parameter count");
        p
    }
}

/// The named tensors of a tms parameter buffer, as (name, slice, number of columns).
fn tensors<'a>(shape: &Shape, p: &'a [f32]) -> Vec<(&'static str, &'a [f32], usize)> {
    let mut out = vec![("W", shape.encoder(p), shape.hidden)];
    if !shape.kind.tied() {
        out.push(("W_dec", shape.decoder(p), shape.hidden));
    }
    out.push(("b", shape.bias(p), shape.features));
    out
}

/// Compares tensors and keeps the largest relative error of each kind of tensor.
#[derive(Default)]
struct Checker {
    max_error: BTreeMap<String, f64>,
    /// One line per entry off by more than the tolerance.
    failures: Vec<String>,
}

impl Checker {
    /// Records, naming the tensor and the index, every entry of `got` that is off `want`.
    fn check(&mut self, what: &str, got: &[f32], want: &[f32], cols: usize) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let largest = want.iter().fold(0.0f64, |a, &b| a.max((b as f64).abs()));
        assert!(largest > 0.0, "{what}: torch's tensor is all zeros");
        let floor = FLOOR * largest;
        let mut worst = 0.0f64;
        for (j, (&a, &b)) in got.iter().zip(want).enumerate() {
            let err = (a as f64 - b as f64).abs() / (b as f64).abs().max(floor);
            if err > TOLERANCE {
                self.failures.push(format!(
                    "{what}[{}][{}]: tms {a:e}, torch {b:e}, relative error {err:.2e} > {TOLERANCE:e}",
                    j / cols,
                    j % cols,
                ));
            }
            worst = worst.max(err);
        }
        // Keyed by model kind (the first word of `what`) and tensor (after the colon).
        let kind = what.split(' ').next().unwrap_or(what);
        let tensor = what.split_once(": ").map_or(what, |(_, t)| t);
        let entry = self
            .max_error
            .entry(format!("{kind:12} {tensor}"))
            .or_insert(0.0);
        *entry = entry.max(worst);
    }
}

#[test]
fn loss_gradients_and_adamw_steps_match_pytorch() {
    let golden: Golden = serde_json::from_str(include_str!("data/golden_torch.json"))
        .expect("tests/data/golden_torch.json parses");
    assert_eq!(
        golden.cases.len(),
        ModelKind::ALL.len(),
        "one case per model kind"
    );
    let hyper = &golden.adamw;
    let adamw = AdamW {
        lr: hyper.lr,
        beta1: hyper.betas[0],
        beta2: hyper.betas[1],
        eps: hyper.eps,
        weight_decay: hyper.weight_decay,
    };
    let mut checker = Checker::default();
    for case in &golden.cases {
        let shape = Shape {
            kind: case.kind,
            features: case.n,
            hidden: case.m,
        };
        let (n, rows) = (case.n, case.rows);
        assert_eq!(case.importance.len(), n);
        for inst in 0..case.instances {
            let name = format!("{} instance {inst}", case.kind.name());
            // Feature-major batch: x[i * rows + r].
            assert_eq!(case.x[inst].len(), rows, "{name}: rows of x");
            let mut x = vec![0.0f32; n * rows];
            for (r, row) in case.x[inst].iter().enumerate() {
                assert_eq!(row.len(), n, "{name}: features of x");
                for (i, &v) in row.iter().enumerate() {
                    x[i * rows + r] = v;
                }
            }
            let mut params = case.params.buffer(&shape, inst);
            let mut grads = vec![0.0f32; shape.param_len()];
            let mut m = vec![0.0f32; shape.param_len()];
            let mut v = vec![0.0f32; shape.param_len()];
            for (s, step) in case.steps.iter().enumerate() {
                assert_eq!(step.t, s as u64 + 1, "steps in order");
                let at = format!("{name}, step {}:", step.t);
                if s > 0 {
                    // Start from torch's parameters, keep tms's moments.
                    params = case.steps[s - 1].after.buffer(&shape, inst);
                }
                let loss = loss_and_grad(
                    &shape,
                    &params,
                    &x,
                    rows,
                    &case.importance,
                    Extras::default(),
                    &mut grads,
                );
                checker.check(&format!("{at} loss"), &[loss as f32], &[step.loss[inst]], 1);
                let want = step.grad.buffer(&shape, inst);
                for ((t, got, cols), (_, want, _)) in tensors(&shape, &grads)
                    .into_iter()
                    .zip(tensors(&shape, &want))
                {
                    checker.check(&format!("{at} d{t}"), got, want, cols);
                }
                adamw.update(step.t, &mut params, &grads, &mut m, &mut v);
                let want = step.after.buffer(&shape, inst);
                for ((t, got, cols), (_, want, _)) in tensors(&shape, &params)
                    .into_iter()
                    .zip(tensors(&shape, &want))
                {
                    checker.check(&format!("{at} {t} after step {}", step.t), got, want, cols);
                }
            }
        }
    }
    println!(
        "largest relative errors against torch {}:",
        golden.torch_version
    );
    for (tensor, err) in &checker.max_error {
        println!("  {tensor:32} {err:.2e}");
    }
    assert!(
        checker.failures.is_empty(),
        "{} entries differ from torch:\n{}",
        checker.failures.len(),
        checker.failures.join("\n")
    );
}
