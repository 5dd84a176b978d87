//! The figures every run gets: loss curves, feature arrows, norm bars, WᵀW.

use super::RunResult;
use crate::analysis::metrics::gram;
use crate::output::plots::{ArrowPanel, BarPanel, Figure, GramPanel};
use crate::output::records::InstanceRecord;

/// Title of an instance's panel: its sparsity when uniform, its per-feature densities when
/// they differ and there are few features, else its index; then the hidden L1 penalty λ and the
/// adversarial training radius, if any.
pub fn panel_title(r: &InstanceRecord) -> String {
    let mut title = data_title(r);
    if r.hidden_l1 > 0.0 {
        title.push_str(&format!(", λ = {}", r.hidden_l1));
    }
    if r.adversarial_radius > 0.0 {
        title.push_str(&format!(", attack ε = {}‖x‖", r.adversarial_radius));
    }
    title
}

fn data_title(r: &InstanceRecord) -> String {
    match (r.common_sparsity(), r.feature_probability.as_deref()) {
        (Some(s), _) => format!("S = {s:.3}  (1−S = {:.3})", 1.0 - s),
        (None, Some(p)) if p.len() <= 6 => {
            let each: Vec<String> = p.iter().map(|v| format!("{v:.3}")).collect();
            format!("p = [{}]", each.join(", "))
        }
        _ => format!("instance {}", r.index),
    }
}

/// Panel title, prefixed by the model kind when the run mixes kinds.
fn titled(run: &RunResult, r: &InstanceRecord) -> String {
    match (&run.weights.kinds, &r.kind) {
        (Some(_), Some(kind)) => format!("{kind}: {}", panel_title(r)),
        _ => panel_title(r),
    }
}

/// Loss curve of every instance (when trained).
pub fn loss_figure(run: &RunResult) -> Option<Figure> {
    let t = run.trained.as_ref()?;
    let series = t
        .specs
        .iter()
        .enumerate()
        .map(|(k, spec)| {
            let r = &run.records[k];
            let label = match r.common_sparsity() {
                Some(_) if r.hidden_l1 > 0.0 || r.adversarial_radius > 0.0 => panel_title(r),
                Some(s) => format!("S = {s:.3}"),
                None => format!("instance {}", spec.index),
            };
            (label, t.log_loss.iter().map(|row| row[k]).collect())
        })
        .collect();
    Some(Figure::LossCurves {
        steps: t.log_steps.clone(),
        series,
    })
}

/// Feature directions in the plane, one panel per selected instance (m = 2 only).
pub fn arrows_figure(run: &RunResult) -> Option<Figure> {
    if run.weights.hidden != 2 {
        return None;
    }
    let panels = run
        .selected()
        .into_iter()
        .map(|r| {
            let w = run.w(r);
            let imp = r
                .importance
                .clone()
                .unwrap_or_else(|| vec![1.0; run.weights.features]);
            let top = imp.iter().cloned().fold(f32::MIN, f32::max).max(1e-12);
            ArrowPanel {
                title: titled(run, r),
                vectors: w
                    .chunks_exact(2)
                    .map(|v| [v[0] as f64, v[1] as f64])
                    .collect(),
                shade: imp.iter().map(|&i| (i / top) as f64).collect(),
            }
        })
        .collect();
    Some(Figure::FeatureArrows { panels, columns: 5 })
}

/// Norm bars coloured by interference, one panel per selected instance.
pub fn bars_figure(run: &RunResult) -> Figure {
    let panels = run
        .selected()
        .into_iter()
        .map(|r| BarPanel {
            title: format!("{} — {} represented", titled(run, r), r.represented),
            norms: r.feature_norms.clone(),
            interference: r.interference.clone(),
        })
        .collect();
    Figure::NormBars { panels, columns: 4 }
}

/// WᵀW (and b) heatmaps, one panel per selected instance.
pub fn gram_figure(run: &RunResult) -> Figure {
    let (n, m) = (run.weights.features, run.weights.hidden);
    let panels = run
        .selected()
        .into_iter()
        .map(|r| GramPanel {
            title: titled(run, r),
            gram: gram(run.w(r), n, m),
            bias: run
                .weights
                .instance_b(r.position)
                .map(|b| b.iter().map(|&v| v as f64).collect()),
            boundaries: Vec::new(),
        })
        .collect();
    Figure::GramHeatmaps { panels, columns: 4 }
}

/// The figures every run gets: loss curves, arrows (m = 2), norm bars, WᵀW (n ≤ 100).
pub fn standard_figures(run: &RunResult) -> Vec<(String, Figure)> {
    let mut figs = Vec::new();
    if let Some(f) = loss_figure(run) {
        figs.push(("loss".to_string(), f));
    }
    if let Some(f) = arrows_figure(run) {
        figs.push(("features".to_string(), f));
    }
    figs.push(("norms".to_string(), bars_figure(run)));
    if run.weights.features <= 100 {
        figs.push(("wtw".to_string(), gram_figure(run)));
    }
    figs
}
