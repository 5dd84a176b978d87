//! Checkpoints of `tms sae` runs: written periodically and on Ctrl-C / SIGTERM, finished by
//! `tms resume RUN`, bit-identical to an uninterrupted run.
//!
//! ```text
//! RUN/                          (at the run's output path, until the run completes)
//!   sae_checkpoint.safetensors  per SAE i: sae{i}.{params,adam_m,adam_v}.{w_enc_t,b_enc,w_dec,b_dec}
//!                               f32, sae{i}.stream u32 [32] (its input stream's position),
//!                               sae{i}.curve f64 [points]; adam_steps u64 [SAEs], tail f64
//!                               [SAEs], curve_steps u64 [points];
//!                               metadata: format, config (TOML), done, steps, elapsed
//!   sae.toml                    the run's config
//!   status.json                 {"status", "done", "steps", "resume"}
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use safetensors::tensor::{Dtype, TensorView};

use super::config::SaeConfig;
use super::model::Params;
use crate::data::LANES;
use crate::output::bytes::{from_le_bytes, le_bytes};
use crate::output::checkpoint::{metadata_value, parse_file};
use crate::output::RunFolder;

/// File name of the state inside an SAE checkpoint folder.
pub const CHECKPOINT_FILE: &str = "sae_checkpoint.safetensors";

const FORMAT: &str = "tms-sae-checkpoint/1";

/// One SAE's training state at a block boundary.
#[derive(Clone, Debug, PartialEq)]
pub struct SaeSnapshot {
    /// Weights.
    pub params: Params,
    /// Adam's first moments.
    pub adam_m: Params,
    /// Adam's second moments.
    pub adam_v: Params,
    /// Adam steps taken.
    pub adam_steps: u64,
    /// The position of the SAE's copy of its input stream.
    pub stream: [u32; 4 * LANES],
    /// Loss-curve points so far.
    pub curve: Vec<f64>,
    /// Sum of the losses of the last 1 % of steps so far.
    pub tail: f64,
}

/// A run's state at a block boundary: enough to finish it with the same bits.
#[derive(Clone, Debug, PartialEq)]
pub struct SaeState {
    /// Steps done.
    pub done: u64,
    /// Steps in the whole run.
    pub steps: u64,
    /// The steps of the curve points so far.
    pub curve_steps: Vec<u64>,
    /// Every SAE, in the order of the grid.
    pub saes: Vec<SaeSnapshot>,
    /// Training time so far.
    pub elapsed: Duration,
}

const ARRAYS: [&str; 4] = ["w_enc_t", "b_enc", "w_dec", "b_dec"];

/// Serialise `state` with its config (little-endian on any host).
pub fn to_bytes(config: &SaeConfig, state: &SaeState) -> anyhow::Result<Vec<u8>> {
    let mut blobs: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, s) in state.saes.iter().enumerate() {
        for (group, p) in [
            ("params", &s.params),
            ("adam_m", &s.adam_m),
            ("adam_v", &s.adam_v),
        ] {
            let (d, n) = (p.b_dec.len(), p.b_enc.len());
            let shapes = [vec![n, d], vec![n], vec![n, d], vec![d]];
            let arrays: [&[f32]; 4] = [&p.w_enc_t, &p.b_enc, &p.w_dec, &p.b_dec];
            for ((name, shape), values) in ARRAYS.iter().zip(shapes).zip(arrays) {
                blobs.push((
                    format!("sae{i}.{group}.{name}"),
                    Dtype::F32,
                    shape,
                    le_bytes(values),
                ));
            }
        }
        blobs.push((
            format!("sae{i}.stream"),
            Dtype::U32,
            vec![4 * LANES],
            le_bytes(&s.stream),
        ));
        blobs.push((
            format!("sae{i}.curve"),
            Dtype::F64,
            vec![s.curve.len()],
            le_bytes(&s.curve),
        ));
    }
    let count = state.saes.len();
    let adam_steps: Vec<u64> = state.saes.iter().map(|s| s.adam_steps).collect();
    let tail: Vec<f64> = state.saes.iter().map(|s| s.tail).collect();
    blobs.push((
        "adam_steps".into(),
        Dtype::U64,
        vec![count],
        le_bytes(&adam_steps),
    ));
    blobs.push(("tail".into(), Dtype::F64, vec![count], le_bytes(&tail)));
    blobs.push((
        "curve_steps".into(),
        Dtype::U64,
        vec![state.curve_steps.len()],
        le_bytes(&state.curve_steps),
    ));
    let mut tensors = Vec::with_capacity(blobs.len());
    for (name, dtype, shape, bytes) in &blobs {
        let view = TensorView::new(*dtype, shape.clone(), bytes)
            .with_context(|| format!("checkpoint tensor {name}"))?;
        tensors.push((name.as_str(), view));
    }
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("config".to_string(), config.to_toml());
    meta.insert("done".to_string(), state.done.to_string());
    meta.insert("steps".to_string(), state.steps.to_string());
    meta.insert(
        "elapsed".to_string(),
        state.elapsed.as_secs_f64().to_string(),
    );
    Ok(crate::output::weights::canonical_header(
        safetensors::serialize(tensors, &Some(meta))?,
    ))
}

/// Parse checkpoint bytes: the run's config and state (shapes checked against each other;
/// [`crate::sae::run::run_with`] checks them against the config's grid).
pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<(SaeConfig, SaeState)> {
    let (st, meta) = parse_file(bytes, "SAE checkpoint")?;
    let get = |k: &str| metadata_value(&meta, k);
    let format = get("format")?;
    if format != FORMAT {
        bail!("unknown SAE checkpoint format {format:?} (expected {FORMAT:?})");
    }
    let config = SaeConfig::from_toml(&get("config")?, "the checkpoint's config")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let done: u64 = get("done")?.parse().context("checkpoint `done`")?;
    let steps: u64 = get("steps")?.parse().context("checkpoint `steps`")?;
    let elapsed: f64 = get("elapsed")?.parse().context("checkpoint `elapsed`")?;
    if done > steps {
        bail!("checkpoint `done` ({done}) is beyond `steps` ({steps})");
    }
    // Up to about 30,000 years: a duration every later sum can hold.
    if !(elapsed.is_finite() && (0.0..1e12).contains(&elapsed)) {
        bail!("checkpoint `elapsed` is not a duration: {elapsed}");
    }

    // A tensor's bytes, checked for dtype and shape (`None` in `shape` accepts any size).
    let tensor = |name: &str, dtype: Dtype, shape: &[Option<usize>]| -> anyhow::Result<Vec<u8>> {
        let t = st
            .tensor(name)
            .map_err(|_| anyhow::anyhow!("the checkpoint lacks tensor `{name}`"))?;
        let fits = t.shape().len() == shape.len()
            && t.shape()
                .iter()
                .zip(shape)
                .all(|(a, b)| b.is_none_or(|b| *a == b));
        if t.dtype() != dtype || !fits {
            bail!(
                "checkpoint tensor `{name}` is {:?} {:?}; expected {dtype:?} {shape:?}",
                t.dtype(),
                t.shape()
            );
        }
        Ok(t.data().to_vec())
    };
    let adam_steps: Vec<u64> = from_le_bytes(&tensor("adam_steps", Dtype::U64, &[None])?).collect();
    let count = adam_steps.len();
    let tail: Vec<f64> = from_le_bytes(&tensor("tail", Dtype::F64, &[Some(count)])?).collect();
    let curve_steps: Vec<u64> =
        from_le_bytes(&tensor("curve_steps", Dtype::U64, &[None])?).collect();
    let points = curve_steps.len();
    let mut saes = Vec::with_capacity(count);
    for i in 0..count {
        // Sizes from the weights; the moments must match them.
        let enc = st
            .tensor(&format!("sae{i}.params.w_enc_t"))
            .map_err(|_| anyhow::anyhow!("the checkpoint lacks tensor `sae{i}.params.w_enc_t`"))?;
        let &[n, d] = enc.shape() else {
            bail!("checkpoint tensor `sae{i}.params.w_enc_t` is not a matrix");
        };
        let read = |group: &str| -> anyhow::Result<Params> {
            let shapes = [
                vec![Some(n), Some(d)],
                vec![Some(n)],
                vec![Some(n), Some(d)],
                vec![Some(d)],
            ];
            let mut arrays = Vec::with_capacity(4);
            for (name, shape) in ARRAYS.iter().zip(&shapes) {
                let bytes = tensor(&format!("sae{i}.{group}.{name}"), Dtype::F32, shape)?;
                arrays.push(from_le_bytes::<f32>(&bytes).collect::<Vec<f32>>());
            }
            let b_dec = arrays.pop().unwrap_or_default();
            let w_dec = arrays.pop().unwrap_or_default();
            let b_enc = arrays.pop().unwrap_or_default();
            let w_enc_t = arrays.pop().unwrap_or_default();
            Ok(Params {
                w_enc_t,
                b_enc,
                w_dec,
                b_dec,
            })
        };
        let params = read("params")?;
        if params
            .slices()
            .iter()
            .any(|a| a.iter().any(|v| !v.is_finite()))
        {
            bail!("checkpoint SAE {i} has non-finite weights");
        }
        let stream_bytes = tensor(&format!("sae{i}.stream"), Dtype::U32, &[Some(4 * LANES)])?;
        let mut stream = [0u32; 4 * LANES];
        stream
            .iter_mut()
            .zip(from_le_bytes::<u32>(&stream_bytes))
            .for_each(|(s, v)| *s = v);
        let curve = from_le_bytes(&tensor(
            &format!("sae{i}.curve"),
            Dtype::F64,
            &[Some(points)],
        )?)
        .collect();
        saes.push(SaeSnapshot {
            params,
            adam_m: read("adam_m")?,
            adam_v: read("adam_v")?,
            adam_steps: adam_steps[i],
            stream,
            curve,
            tail: tail[i],
        });
    }
    Ok((
        config,
        SaeState {
            done,
            steps,
            curve_steps,
            saes,
            elapsed: Duration::from_secs_f64(elapsed),
        },
    ))
}

/// Write a checkpoint folder at `dir` (atomically, replacing an earlier checkpoint).
pub fn write(
    dir: &Path,
    config: &SaeConfig,
    state: &SaeState,
    status: &str,
    force: bool,
) -> anyhow::Result<()> {
    let folder = RunFolder::create(dir, force)?;
    folder.write(CHECKPOINT_FILE, &to_bytes(config, state)?)?;
    folder.write("sae.toml", config.to_toml().as_bytes())?;
    let status = serde_json::json!({
        "status": status,
        "done": state.done,
        "steps": state.steps,
        "resume": format!("tms resume {}", dir.display()),
    });
    folder.write(
        "status.json",
        serde_json::to_string_pretty(&status)?.as_bytes(),
    )?;
    folder.commit()?;
    Ok(())
}

/// Read the checkpoint of an SAE checkpoint folder.
pub fn read(dir: &Path) -> anyhow::Result<(SaeConfig, SaeState)> {
    let path = dir.join(CHECKPOINT_FILE);
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    from_bytes(&bytes).with_context(|| format!("{}", path.display()))
}

/// Whether `dir` holds an SAE checkpoint (an unfinished `tms sae` run).
pub fn is_checkpoint(dir: &Path) -> bool {
    dir.join(CHECKPOINT_FILE).exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sae::model::{Sae, SaeKind};

    fn state() -> (SaeConfig, SaeState) {
        let config = SaeConfig::from_toml(
            "[ground_truth]\nfeatures = 8\ndim = 4\n[sae]\nlatents = [6, 8]\npenalties = [0.1]\n",
            "test",
        )
        .unwrap();
        let snapshot = |n: usize, k: u64| {
            let sae = Sae::new(4, n, SaeKind::L1 { alpha: 0.1 }, 1, k);
            let mut m = sae.params.clone();
            m.b_dec[0] = 0.5;
            SaeSnapshot {
                params: sae.params.clone(),
                adam_m: m,
                adam_v: sae.params.clone(),
                adam_steps: 40 + k,
                stream: [k as u32 + 3; 4 * LANES],
                curve: vec![1.0, 0.5 + k as f64],
                tail: 0.0,
            }
        };
        let state = SaeState {
            done: 40,
            steps: 100,
            curve_steps: vec![0, 20],
            saes: vec![snapshot(6, 0), snapshot(8, 1)],
            elapsed: Duration::from_millis(2500),
        };
        (config, state)
    }

    #[test]
    fn round_trips_exactly() {
        let (config, state) = state();
        let (c, s) = from_bytes(&to_bytes(&config, &state).unwrap()).unwrap();
        assert_eq!(s, state);
        assert_eq!(c.to_toml(), config.to_toml());
    }

    #[test]
    fn damaged_checkpoints_are_refused_with_the_reason() {
        let (config, mut state) = state();
        assert!(from_bytes(b"junk")
            .unwrap_err()
            .to_string()
            .contains("not a valid SAE checkpoint"));
        state.saes[1].params.w_dec[3] = f32::NAN;
        let err = from_bytes(&to_bytes(&config, &state).unwrap()).unwrap_err();
        assert!(err.to_string().contains("non-finite"), "{err}");
        let (config, mut state) = self::state();
        state.saes[0].curve.push(0.1); // one point more than curve_steps
        let err = from_bytes(&to_bytes(&config, &state).unwrap()).unwrap_err();
        assert!(err.to_string().contains("sae0.curve"), "{err}");
        let (config, mut state) = self::state();
        // Moments of another size than the weights.
        state.saes[1].adam_v = Sae::new(4, 7, SaeKind::L1 { alpha: 0.1 }, 1, 1).params;
        let err = from_bytes(&to_bytes(&config, &state).unwrap()).unwrap_err();
        assert!(err.to_string().contains("sae1.adam_v.w_enc_t"), "{err}");
    }
}
