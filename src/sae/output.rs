//! What a `tms sae` run leaves: the run folder's `results`, each SAE in the layout SAELens
//! reads (`saes/NAME/cfg.json` + `sae_weights.safetensors`), the ground truth
//! (`ground_truth.safetensors`), figures and the terminal summary.

use std::collections::HashMap;

use safetensors::tensor::TensorView;
use safetensors::Dtype;

use super::config::KindName;
use super::model::{Sae, SaeKind};
use super::run::{SaeResults, SaeRun};
use crate::data::ground_truth::GroundTruth;
use crate::output::bytes::le_bytes;
use crate::output::plots::{Figure, MatrixPanel, Series, SeriesStyle};
use crate::output::weights::{canonical_header, Weights};
use crate::pipeline::RunResult;

/// The SAELens version whose `cfg.json` format we write (without a version SAELens takes the
/// folder for a pre-6.0 one and converts it).
const SAELENS_FORMAT: &str = "6.18.0";

/// Inputs drawn in the heatmap figure (a run on many toy-model instances shows the first).
const HEATMAP_INPUTS: usize = 4;

/// The run as a run folder: `weights.safetensors` holds the first input's true directions as
/// `W` [1, G, d] (so `tms analyze` and the report read it like any run), `metrics.json` the
/// scores under `results`, and the SAEs and ground truth their own files.
pub fn run_result(run: &SaeRun, experiment: &str) -> anyhow::Result<RunResult> {
    let first = &run.truths[0];
    let weights = Weights::w_only(first.features, first.dim, first.directions.clone());
    let mut out = RunResult::analysed(experiment, None, weights, Vec::new());
    out.results = Some(serde_json::to_value(&run.results)?);
    out.files.push((
        "sae.toml".into(),
        format!(
            "# `tms sae sae.toml` trains these SAEs again (same seed, same weights).\n{}",
            run.config.to_toml()
        )
        .into_bytes(),
    ));
    out.files.push((
        "ground_truth.safetensors".into(),
        ground_truth_bytes(&run.truths)?,
    ));
    for (sae, result) in run.saes.iter().zip(&run.results.saes) {
        let folder = format!("saes/{}", result.name);
        out.files
            .push((format!("{folder}/cfg.json"), saelens_cfg(sae).into_bytes()));
        out.files.push((
            format!("{folder}/sae_weights.safetensors"),
            saelens_weights(sae)?,
        ));
    }
    out.figures = figures(&run.results);
    Ok(out)
}

/// SAELens's `cfg.json` for `sae`: architecture, sizes, and how inputs are treated.
pub fn saelens_cfg(sae: &Sae) -> String {
    // The keys SAELens 6 reads (checked by loading with `SAE.load_from_disk`); anything else
    // about the training is in the run's metrics.json and sae.toml.
    let mut cfg = serde_json::json!({
        "architecture": match sae.kind {
            SaeKind::L1 { .. } => "standard",
            SaeKind::TopK { .. } => "topk",
        },
        "d_in": sae.dim,
        "d_sae": sae.latents,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": true,
        "normalize_activations": "none",
        "metadata": { "sae_lens_version": SAELENS_FORMAT },
    });
    if let SaeKind::TopK { k } = sae.kind {
        cfg["k"] = serde_json::json!(k);
    }
    serde_json::to_string_pretty(&cfg).unwrap_or_default()
}

/// `W_enc` [d_in, d_sae], `b_enc` [d_sae], `W_dec` [d_sae, d_in], `b_dec` [d_in], f32.
pub fn saelens_weights(sae: &Sae) -> anyhow::Result<Vec<u8>> {
    let (d, n) = (sae.dim, sae.latents);
    let w_enc = le_bytes(&sae.w_enc());
    let b_enc = le_bytes(&sae.params.b_enc);
    let w_dec = le_bytes(&sae.params.w_dec);
    let b_dec = le_bytes(&sae.params.b_dec);
    let tensors = vec![
        ("W_enc", TensorView::new(Dtype::F32, vec![d, n], &w_enc)?),
        ("b_enc", TensorView::new(Dtype::F32, vec![n], &b_enc)?),
        ("W_dec", TensorView::new(Dtype::F32, vec![n, d], &w_dec)?),
        ("b_dec", TensorView::new(Dtype::F32, vec![d], &b_dec)?),
    ];
    Ok(canonical_header(safetensors::serialize(tensors, &None)?))
}

/// The ground truth of every input: `directions` [G, d] and `probabilities` [G] (f64 → f32);
/// with several inputs, suffixed `_0`, `_1`, ...
fn ground_truth_bytes(truths: &[GroundTruth]) -> anyhow::Result<Vec<u8>> {
    let data: Vec<(Vec<u8>, Vec<u8>)> = truths
        .iter()
        .map(|t| {
            let p: Vec<f32> = t.probabilities.iter().map(|&p| p as f32).collect();
            (le_bytes(&t.directions), le_bytes(&p))
        })
        .collect();
    let mut tensors = Vec::new();
    for (i, (t, (dirs, probs))) in truths.iter().zip(&data).enumerate() {
        let suffix = if truths.len() == 1 {
            String::new()
        } else {
            format!("_{i}")
        };
        tensors.push((
            format!("directions{suffix}"),
            TensorView::new(Dtype::F32, vec![t.features, t.dim], dirs)?,
        ));
        tensors.push((
            format!("probabilities{suffix}"),
            TensorView::new(Dtype::F32, vec![t.features], probs)?,
        ));
    }
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "tms-ground-truth/1".to_string());
    Ok(canonical_header(safetensors::serialize(
        tensors,
        &Some(meta),
    )?))
}

/// Heatmaps of MMCS, dead latents and L0 over the grid (per input), the loss curves, and for
/// toy-model inputs the features recovered against the toy model's density.
pub fn figures(r: &SaeResults) -> Vec<(String, Figure)> {
    let mut out = Vec::new();
    let mut panels = Vec::new();
    for (input, info) in r.inputs.iter().enumerate().take(HEATMAP_INPUTS) {
        let saes: Vec<_> = r.saes.iter().filter(|s| s.input == input).collect();
        let mut sizes: Vec<usize> = saes.iter().map(|s| s.latents).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let mut columns: Vec<f64> = saes.iter().map(column_value).collect();
        columns.sort_by(f64::total_cmp);
        columns.dedup();
        let cell = |pick: &dyn Fn(&super::run::SaeMetrics) -> f64| {
            let mut values = vec![f64::NAN; sizes.len() * columns.len()];
            for s in &saes {
                let i = sizes.iter().position(|&d| d == s.latents).unwrap_or(0);
                let j = columns
                    .iter()
                    .position(|&c| c == column_value(s))
                    .unwrap_or(0);
                values[i * columns.len() + j] = pick(&s.metrics);
            }
            values
        };
        let col_label = match saes.first().map(|s| s.kind) {
            Some(KindName::TopK) => "k",
            _ => "L1 penalty α",
        };
        let row_names: Vec<String> = sizes.iter().map(|d| d.to_string()).collect();
        let col_names: Vec<String> = columns.iter().map(|c| format!("{c}")).collect();
        let max_l0 = saes.iter().map(|s| s.metrics.l0).fold(1.0, f64::max);
        let prefix = if r.inputs.len() > 1 {
            format!("{}: ", info.label)
        } else {
            String::new()
        };
        for (title, values, scale) in [
            ("MMCS", cell(&|m| m.mmcs), 1.0),
            ("dead latents (share)", cell(&|m| m.dead_fraction), 1.0),
            ("L0 (latents per row)", cell(&|m| m.l0), max_l0),
        ] {
            panels.push(MatrixPanel {
                title: format!("{prefix}{title}"),
                rows: sizes.len(),
                values,
                scale,
                row_label: "dictionary size".into(),
                col_label: col_label.into(),
                row_names: row_names.clone(),
                col_names: col_names.clone(),
            });
        }
    }
    out.push(("grid".into(), Figure::Matrices { panels, columns: 3 }));
    if r.inputs.iter().any(|i| i.toy.is_some()) {
        out.push(("recovered".into(), recovered_figure(r)));
    }
    out.push((
        "loss".into(),
        Figure::LossCurves {
            steps: r.curve_steps.clone(),
            series: r
                .saes
                .iter()
                .zip(&r.curves)
                .map(|(s, c)| (s.name.clone(), c.clone()))
                .collect(),
        },
    ));
    out
}

/// The grid's column for an SAE: its penalty or k.
fn column_value(s: &&super::run::SaeResult) -> f64 {
    s.penalty.or(s.k.map(|k| k as f64)).unwrap_or(0.0)
}

/// Represented features, features the best SAE recovers, and the hidden width, against the
/// toy model's feature density.
fn recovered_figure(r: &SaeResults) -> Figure {
    let mut represented = Vec::new();
    let mut recovered = Vec::new();
    let mut width = Vec::new();
    for (input, info) in r.inputs.iter().enumerate() {
        let Some(toy) = &info.toy else { continue };
        let best = r
            .saes
            .iter()
            .filter(|s| s.input == input)
            .map(|s| s.metrics.recovered)
            .fold(0.0, f64::max);
        let x = toy.density;
        represented.push((x, info.features as f64));
        recovered.push((x, best * info.features as f64));
        width.push((x, info.dim as f64));
    }
    let series = |label: &str, points: Vec<(f64, f64)>, colour: usize| Series {
        label: label.into(),
        points,
        style: SeriesStyle::Line,
        colour,
    };
    Figure::Chart {
        title: "Features an SAE recovers from the hidden activations (cosine > 0.9)".into(),
        x_label: "feature density 1 − S of the toy model".into(),
        y_label: "features".into(),
        log_x: true,
        log_y: false,
        series: vec![
            series(
                "represented by the model (‖W_i‖ > threshold)",
                represented,
                0,
            ),
            series("recovered by the best SAE", recovered, 1),
            series("hidden width m", width, 2),
        ],
        marks: Vec::new(),
    }
}

/// The terminal summary: one line per SAE.
pub fn summary(r: &SaeResults) -> Vec<String> {
    let mut lines = Vec::new();
    for (input, info) in r.inputs.iter().enumerate() {
        lines.push(format!(
            "{}: {} true features in {} dimensions",
            info.label, info.features, info.dim
        ));
        for s in r.saes.iter().filter(|s| s.input == input) {
            let m = &s.metrics;
            lines.push(format!(
                "  {:<24} MMCS {:.3}  MCC {:.3}  recovered {:>5.1} %  L0 {:>6.1}  dead {:>5.1} %  FVE {:.3}  loss {:.3e}",
                s.name,
                m.mmcs,
                m.mcc,
                100.0 * m.recovered,
                m.l0,
                100.0 * m.dead_fraction,
                m.variance_explained,
                s.final_loss
            ));
        }
    }
    lines.push(format!(
        "{:.1} s of training, {:.0} SAE steps/s",
        r.seconds, r.sae_steps_per_second
    ));
    lines
}
