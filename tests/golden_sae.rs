//! Golden-file test of the sparse autoencoders against PyTorch: for an L1 and a TopK SAE on a
//! small fixed problem, tms's codes, reconstruction, loss, gradients and two Adam steps (each
//! followed by the decoder-row renormalisation) must match what `torch.autograd` and
//! `torch.optim.Adam` compute in float32 (`tests/data/golden_sae.json`, written by
//! `bench/golden_sae.py`; see there for how to regenerate it).

use std::collections::BTreeMap;

use serde::Deserialize;
use tms::sae::model::{AdamSettings, Params, Sae, SaeKind, Workspace};

/// Largest accepted error, relative to `max(|torch|, FLOOR × the tensor's largest |value|)`.
const TOLERANCE: f64 = 1e-4;
const FLOOR: f64 = 0.1;

#[derive(Deserialize)]
struct Golden {
    adam: Hyper,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Hyper {
    lr: f32,
    betas: [f32; 2],
    eps: f32,
}

#[derive(Deserialize)]
struct Case {
    kind: String,
    alpha: f32,
    k: Option<usize>,
    d: usize,
    #[serde(rename = "D")]
    latents: usize,
    x: Vec<f32>,
    init: BTreeMap<String, Vec<f32>>,
    codes: Vec<f32>,
    x_hat: Vec<f32>,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
struct Step {
    loss: f64,
    grad: BTreeMap<String, Vec<f32>>,
    after: BTreeMap<String, Vec<f32>>,
}

/// W_enc [d, D] → tms's transposed [D, d] (and back).
fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; m.len()];
    for i in 0..rows {
        for j in 0..cols {
            out[j * rows + i] = m[i * cols + j];
        }
    }
    out
}

fn params(c: &Case, p: &BTreeMap<String, Vec<f32>>) -> Params {
    Params {
        w_enc_t: transpose(&p["W_enc"], c.d, c.latents),
        b_enc: p["b_enc"].clone(),
        w_dec: p["W_dec"].clone(),
        b_dec: p["b_dec"].clone(),
    }
}

fn close(what: &str, ours: &[f32], torch: &[f32]) {
    assert_eq!(ours.len(), torch.len(), "{what}: length");
    let largest = torch.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    for (i, (&a, &b)) in ours.iter().zip(torch).enumerate() {
        let scale = (b.abs() as f64).max(FLOOR * largest).max(1e-12);
        let err = (a as f64 - b as f64).abs() / scale;
        assert!(
            err <= TOLERANCE,
            "{what}[{i}]: tms {a}, torch {b} (relative error {err:.2e})"
        );
    }
}

fn close_params(what: &str, c: &Case, ours: &Params, torch: &BTreeMap<String, Vec<f32>>) {
    close(
        &format!("{what} W_enc"),
        &transpose(&ours.w_enc_t, c.latents, c.d),
        &torch["W_enc"],
    );
    close(&format!("{what} b_enc"), &ours.b_enc, &torch["b_enc"]);
    close(&format!("{what} W_dec"), &ours.w_dec, &torch["W_dec"]);
    close(&format!("{what} b_dec"), &ours.b_dec, &torch["b_dec"]);
}

#[test]
fn sae_matches_pytorch() {
    let text = std::fs::read_to_string("tests/data/golden_sae.json").expect("golden file");
    let golden: Golden = serde_json::from_str(&text).expect("valid golden file");
    let adam = AdamSettings {
        lr: golden.adam.lr,
        beta1: golden.adam.betas[0],
        beta2: golden.adam.betas[1],
        eps: golden.adam.eps,
    };
    assert_eq!(golden.cases.len(), 2);
    for case in &golden.cases {
        let kind = match case.kind.as_str() {
            "l1" => SaeKind::L1 { alpha: case.alpha },
            "topk" => SaeKind::TopK {
                k: case.k.expect("topk has k"),
            },
            other => panic!("unknown kind {other}"),
        };
        let name = &case.kind;
        let mut sae = Sae::from_params(case.d, case.latents, kind, params(case, &case.init));
        let mut ws = Workspace::default();
        sae.forward(&case.x, &mut ws, false);
        close(
            &format!("{name} codes"),
            &ws.codes.dense(case.latents),
            &case.codes,
        );
        close(&format!("{name} x_hat"), &ws.x_hat, &case.x_hat);
        for (t, step) in case.steps.iter().enumerate() {
            let loss = sae.gradients(&case.x, &mut ws, false);
            assert!(
                (loss - step.loss).abs() <= TOLERANCE * step.loss.abs(),
                "{name} step {t} loss: tms {loss}, torch {}",
                step.loss
            );
            let grads = sae.grads(&ws).expect("gradients").clone();
            close_params(&format!("{name} step {t} grad"), case, &grads, &step.grad);
            sae.train_step(&case.x, &mut ws, &adam, false);
            close_params(
                &format!("{name} step {t} after"),
                case,
                &sae.params,
                &step.after,
            );
        }
    }
}
