//! Per-instance records: metrics of every instance, and the lowest-loss restart of each sweep
//! point.

use crate::analysis::geometry::{describe_geometry, structures};
use crate::analysis::metrics::FeatureMetrics;
use crate::config::InstanceSpec;
use crate::model::{ModelKind, Shape};
use crate::output::records::{InstanceRecord, RestartOutcome, StructureRecord};
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
                hidden_l1: spec.map_or(0.0, |s| s.hidden_l1),
                adversarial_radius: spec.map_or(0.0, |s| s.adversarial_radius),
                selected: true,
                feature_probability: spec.map(|s| s.feature_probability.clone()),
                importance: spec.map(|s| s.importance.clone()),
                final_loss: final_loss.map(|l| l[k]),
                train_set_loss: None,
                restart_outcomes: Vec::new(),
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
        if end - start > 1 {
            records[best].restart_outcomes = outcomes(&records[start..end]);
        }
        start = end;
    }
}

/// The geometries a sweep point's restarts reached, lowest loss first.
fn outcomes(restarts: &[InstanceRecord]) -> Vec<RestartOutcome> {
    let mut out: Vec<RestartOutcome> = Vec::new();
    for r in restarts {
        let at = match out.iter().position(|o| o.geometry == r.geometry) {
            Some(at) => at,
            None => {
                out.push(RestartOutcome {
                    geometry: r.geometry.clone(),
                    count: 0,
                    best_loss: None,
                    kept: false,
                });
                out.len() - 1
            }
        };
        let o = &mut out[at];
        o.count += 1;
        o.kept |= r.selected;
        if let Some(l) = r.final_loss {
            o.best_loss = Some(o.best_loss.map_or(l, |b: f64| b.min(l)));
        }
    }
    out.sort_by(|a, b| {
        let key = |o: &RestartOutcome| o.best_loss.unwrap_or(f64::INFINITY);
        key(a).total_cmp(&key(b))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SweepConfig, TrainConfig};
    use crate::output::records::describe_outcomes;

    /// Unit vectors at these angles (degrees), as `W` rows, padded with zero rows to 5.
    fn at(deg: &[f64]) -> Vec<f32> {
        let mut w: Vec<f32> = deg
            .iter()
            .flat_map(|d| [d.to_radians().cos() as f32, d.to_radians().sin() as f32])
            .collect();
        w.resize(10, 0.0);
        w
    }

    #[test]
    fn the_kept_restart_records_what_every_restart_reached() {
        let mut config = TrainConfig::from_toml(
            "[model]\nkind = \"relu-output\"\nfeatures = 5\nhidden = 2\n",
            "t",
        )
        .unwrap();
        config.sweep = Some(SweepConfig {
            restarts: 3,
            ..SweepConfig::default()
        });
        let specs = config.resolve().unwrap();
        let pentagon = [0.0, 72.0, 144.0, 216.0, 288.0];
        let mut w = at(&pentagon);
        w.extend(at(&[0.0, 180.0, 90.0, 270.0]));
        w.extend(at(&pentagon));
        let weights = Weights::w_only(5, 2, w);
        let records = instance_records(&weights, Some(&specs), Some(&[2e-3, 2.4e-3, 1.5e-3]));
        assert!(records[2].selected);
        assert!(records[0].restart_outcomes.is_empty());
        let o = &records[2].restart_outcomes;
        assert_eq!(o.len(), 2, "{o:?}");
        assert_eq!(
            (o[0].geometry.as_str(), o[0].count, o[0].kept),
            ("pentagon", 2, true)
        );
        assert_eq!(o[0].best_loss, Some(1.5e-3));
        assert_eq!((o[1].count, o[1].kept), (1, false));
        let line = describe_outcomes(o);
        assert!(line.starts_with("pentagon 2/3 (1.500e-3), "), "{line}");
        assert!(line.ends_with("; kept: pentagon"), "{line}");
    }
}
