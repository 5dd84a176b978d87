//! `snapshots.safetensors` and `snapshots.json`: the weights during training, for learning
//! dynamics.
//!
//! | tensor  | shape                                         | meaning                          |
//! |---------|-----------------------------------------------|----------------------------------|
//! | `steps` | u64 `[snapshots]`                             | steps taken (0: initialisation)  |
//! | `W`     | f32 `[snapshots, instances, features, hidden]`| encoder at each step             |
//! | `b`     | f32 `[snapshots, instances, features]`        | output bias at each step         |
//! | `W_dec` | f32 `[snapshots, instances, features, hidden]`| decoder (`abs` model only)       |
//!
//! `snapshots.json` has, per snapshot and instance, the feature norms ‖W_i‖, the fractional
//! dimensionalities D_i and D* (the same analysis as `metrics.json`).

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use super::bytes::{from_le_bytes, le_bytes};
use super::weights::{canonical_header, f32_values, Weights, WeightsError};
use crate::analysis::metrics::FeatureMetrics;

/// The weights of every instance at one training step.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightsAt {
    /// Steps taken.
    pub step: u64,
    /// The weights (one entry per instance).
    pub weights: Weights,
}

/// Serialise snapshots (all with the same instances and sizes) to safetensors bytes.
pub fn to_bytes(snapshots: &[WeightsAt]) -> Result<Vec<u8>, WeightsError> {
    let Some(first) = snapshots.first() else {
        return Err(WeightsError::Invalid("no snapshots to write".into()));
    };
    let (s, i, n, m) = (
        snapshots.len(),
        first.weights.instances,
        first.weights.features,
        first.weights.hidden,
    );
    let steps: Vec<u64> = snapshots.iter().map(|w| w.step).collect();
    let w: Vec<f32> = snapshots
        .iter()
        .flat_map(|x| x.weights.w.iter().copied())
        .collect();
    let b: Vec<f32> = snapshots
        .iter()
        .flat_map(|x| x.weights.b.iter().flatten().copied())
        .collect();
    let w_dec: Vec<f32> = snapshots
        .iter()
        .flat_map(|x| x.weights.w_dec.iter().flatten().copied())
        .collect();
    let (steps, w, b, w_dec) = (
        le_bytes(&steps),
        le_bytes(&w),
        le_bytes(&b),
        le_bytes(&w_dec),
    );
    let mut tensors = vec![
        ("steps", view(Dtype::U64, vec![s], &steps)?),
        ("W", view(Dtype::F32, vec![s, i, n, m], &w)?),
    ];
    if first.weights.b.is_some() {
        tensors.push(("b", view(Dtype::F32, vec![s, i, n], &b)?));
    }
    if first.weights.w_dec.is_some() {
        tensors.push(("W_dec", view(Dtype::F32, vec![s, i, n, m], &w_dec)?));
    }
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "tms-snapshots/1".to_string());
    if let Some(kind) = first.weights.kind {
        meta.insert("model".to_string(), kind.name().to_string());
    }
    let bytes = safetensors::serialize(tensors, &Some(meta))
        .map_err(|e| WeightsError::Invalid(e.to_string()))?;
    Ok(canonical_header(bytes))
}

fn view(dtype: Dtype, shape: Vec<usize>, data: &[u8]) -> Result<TensorView<'_>, WeightsError> {
    TensorView::new(dtype, shape, data).map_err(|e| WeightsError::Invalid(e.to_string()))
}

/// Read `snapshots.safetensors` bytes back (steps, and the `W`, `b`, `W_dec` of each).
pub fn from_bytes(bytes: &[u8]) -> Result<Vec<WeightsAt>, WeightsError> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| WeightsError::Invalid(format!("not a safetensors file: {e}")))?;
    let tensor = |name: &str| {
        st.tensor(name)
            .map_err(|_| WeightsError::Invalid(format!("the snapshots file has no `{name}`")))
    };
    let steps_t = tensor("steps")?;
    if steps_t.dtype() != Dtype::U64 || steps_t.shape().len() != 1 {
        return Err(WeightsError::Invalid(
            "`steps` must be u64 [snapshots]".into(),
        ));
    }
    let steps: Vec<u64> = from_le_bytes(steps_t.data()).collect();
    let w_t = tensor("W")?;
    let &[s, i, n, m] = w_t.shape() else {
        return Err(WeightsError::Invalid(format!(
            "`W` has shape {:?}; expected [snapshots, instances, features, hidden]",
            w_t.shape()
        )));
    };
    if s != steps.len() {
        return Err(WeightsError::Invalid(format!(
            "`W` has {s} snapshots but `steps` has {}",
            steps.len()
        )));
    }
    let w = f32_values(&w_t, "W")?;
    let b = match st.tensor("b") {
        Ok(t) if t.shape() == [s, i, n] => Some(f32_values(&t, "b")?),
        Ok(t) => {
            return Err(WeightsError::Invalid(format!(
                "`b` has shape {:?}; expected {:?}",
                t.shape(),
                [s, i, n]
            )))
        }
        Err(_) => None,
    };
    let w_dec = match st.tensor("W_dec") {
        Ok(t) if t.shape() == [s, i, n, m] => Some(f32_values(&t, "W_dec")?),
        Ok(t) => {
            return Err(WeightsError::Invalid(format!(
                "`W_dec` has shape {:?}; expected {:?}",
                t.shape(),
                [s, i, n, m]
            )))
        }
        Err(_) => None,
    };
    let (wl, bl) = (i * n * m, i * n);
    Ok(steps
        .iter()
        .enumerate()
        .map(|(k, &step)| WeightsAt {
            step,
            weights: Weights {
                instances: i,
                features: n,
                hidden: m,
                w: w[k * wl..(k + 1) * wl].to_vec(),
                b: b.as_ref().map(|b| b[k * bl..(k + 1) * bl].to_vec()),
                w_dec: w_dec.as_ref().map(|d| d[k * wl..(k + 1) * wl].to_vec()),
                kind: None,
                kinds: None,
                config: None,
            },
        })
        .collect())
}

/// `snapshots.json`: per snapshot, per instance, the analysis of the weights at that step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotMetrics {
    /// Steps taken.
    pub step: u64,
    /// One entry per instance, in the order of the weights file.
    pub instances: Vec<SnapshotInstance>,
}

/// The analysis of one instance at one step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotInstance {
    /// Instance index in its config.
    pub index: usize,
    /// ‖W_i‖.
    pub feature_norms: Vec<f64>,
    /// D_i.
    pub fractional_dimensionality: Vec<f64>,
    /// D* = m / ‖W‖_F².
    pub dimensions_per_feature: f64,
}

/// The analysis of every snapshot (`indices`: the config index of each instance).
pub fn metrics(snapshots: &[WeightsAt], indices: &[usize]) -> Vec<SnapshotMetrics> {
    snapshots
        .iter()
        .map(|s| {
            let (n, m) = (s.weights.features, s.weights.hidden);
            SnapshotMetrics {
                step: s.step,
                instances: (0..s.weights.instances)
                    .map(|k| {
                        let f = FeatureMetrics::compute(s.weights.instance_w(k), n, m);
                        SnapshotInstance {
                            index: indices.get(k).copied().unwrap_or(k),
                            feature_norms: f.feature_norms,
                            fractional_dimensionality: f.fractional_dimensionality,
                            dimensions_per_feature: f.dimensions_per_feature,
                        }
                    })
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelKind;

    fn weights(scale: f32, dec: bool) -> Weights {
        Weights {
            instances: 2,
            features: 3,
            hidden: 2,
            w: (0..12).map(|v| v as f32 * scale).collect(),
            b: Some(vec![scale; 6]),
            w_dec: dec.then(|| vec![-scale; 12]),
            kind: Some(ModelKind::ReluOutput),
            kinds: None,
            config: None,
        }
    }

    #[test]
    fn snapshots_round_trip() {
        for dec in [false, true] {
            let snaps: Vec<WeightsAt> = [0u64, 10, 1000]
                .iter()
                .enumerate()
                .map(|(k, &step)| WeightsAt {
                    step,
                    weights: weights(k as f32 + 0.5, dec),
                })
                .collect();
            let back = from_bytes(&to_bytes(&snaps).unwrap()).unwrap();
            assert_eq!(back.len(), 3);
            for (a, b) in snaps.iter().zip(&back) {
                assert_eq!(a.step, b.step);
                assert_eq!(a.weights.w, b.weights.w);
                assert_eq!(a.weights.b, b.weights.b);
                assert_eq!(a.weights.w_dec, b.weights.w_dec);
            }
        }
    }

    #[test]
    fn a_damaged_file_is_an_error() {
        let snaps = vec![WeightsAt {
            step: 3,
            weights: weights(1.0, false),
        }];
        let bytes = to_bytes(&snaps).unwrap();
        assert!(from_bytes(&bytes[..bytes.len() - 4]).is_err());
        assert!(from_bytes(b"garbage").is_err());
    }

    #[test]
    fn metrics_follow_the_analysis() {
        let snaps = vec![WeightsAt {
            step: 7,
            weights: weights(1.0, false),
        }];
        let m = metrics(&snaps, &[4, 9]);
        assert_eq!(m[0].step, 7);
        assert_eq!(m[0].instances[1].index, 9);
        let expect = (0f64 * 0.0 + 1.0).sqrt(); // feature 0 of instance 0 is (0, 1)
        assert!((m[0].instances[0].feature_norms[0] - expect).abs() < 1e-12);
    }
}
