//! Per-instance records: metrics of every instance, and the lowest-loss restart of each sweep
//! point.

use crate::analysis::geometry::{describe_geometry, structures};
use crate::analysis::metrics::FeatureMetrics;
use crate::config::InstanceSpec;
use crate::model::{ModelKind, Shape};
use crate::output::records::{InstanceRecord, StructureRecord};
use crate::output::weights::Weights;

/// Parameter buffer (model layout) of instance `k` of a weights file.
pub fn params_of(weights: &Weights, shape: &Shape, k: usize) -> Vec<f32> {
    let mut p = weights.instance_w(k).to_vec();
    if let (ModelKind::Abs, Some(dec)) = (shape.kind, &weights.w_dec) {
        let len = shape.weight_len();
        p.extend_from_slice(&dec[k * len..(k + 1) * len]);
    }
    match weights.instance_b(k) {
        Some(b) => p.extend_from_slice(b),
        None => p.extend(std::iter::repeat_n(0.0, shape.features)),
    }
    p
}

/// Metrics of every instance; marks the lowest-loss restart of each sweep point as selected.
pub fn instance_records(
    weights: &Weights,
    specs: Option<&[InstanceSpec]>,
    final_loss: Option<&[f64]>,
) -> Vec<InstanceRecord> {
    let (n, m) = (weights.features, weights.hidden);
    let mut records: Vec<InstanceRecord> = (0..weights.instances)
        .map(|k| {
            let w = weights.instance_w(k);
            let metrics = FeatureMetrics::compute(w, n, m);
            let spec = specs.map(|s| &s[k]);
            let found = structures(w, n, m)
                .into_iter()
                .map(|st| StructureRecord {
                    name: st.name(),
                    span: st.span,
                    ideal_dimensionality: st.ideal_dimensionality(),
                    mean_dimensionality: st
                        .features
                        .iter()
                        .map(|&i| metrics.fractional_dimensionality[i])
                        .sum::<f64>()
                        / st.features.len() as f64,
                    features: st.features,
                })
                .collect();
            InstanceRecord {
                index: spec.map_or(k, |s| s.index),
                position: k,
                kind: spec
                    .map(|s| s.kind)
                    .or(weights.kind)
                    .map(|kind| kind.name().to_string()),
                restart: spec.map_or(0, |s| s.restart),
                selected: true,
                feature_probability: spec.map(|s| s.feature_probability.clone()),
                importance: spec.map(|s| s.importance.clone()),
                final_loss: final_loss.map(|l| l[k]),
                train_set_loss: None,
                represented: metrics.represented(),
                geometry: describe_geometry(w, n, m),
                feature_norms: metrics.feature_norms,
                interference: metrics.interference,
                dimensions_per_feature: metrics.dimensions_per_feature,
                fractional_dimensionality: metrics.fractional_dimensionality,
                structures: found,
            }
        })
        .collect();
    select_best_restarts(&mut records);
    records
}

/// Within each run of consecutive records with the same p and I (a sweep point's restarts),
/// keep only the lowest final loss selected.
fn select_best_restarts(records: &mut [InstanceRecord]) {
    let mut start = 0;
    while start < records.len() {
        let same = |a: &InstanceRecord, b: &InstanceRecord| {
            a.feature_probability == b.feature_probability && a.importance == b.importance
        };
        let mut end = start + 1;
        while end < records.len()
            && records[end].restart > 0
            && same(&records[start], &records[end])
        {
            end += 1;
        }
        let best = (start..end)
            .min_by(|&a, &b| {
                let la = records[a].final_loss.unwrap_or(f64::INFINITY);
                let lb = records[b].final_loss.unwrap_or(f64::INFINITY);
                la.total_cmp(&lb)
            })
            .unwrap_or(start);
        for (k, r) in records[start..end].iter_mut().enumerate() {
            r.selected = start + k == best;
        }
        start = end;
    }
}
