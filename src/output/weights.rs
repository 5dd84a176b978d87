//! `weights.safetensors`: the notebook's layout, readable with `safetensors.numpy.load_file`.
//!
//! | tensor  | shape                          | meaning                                     |
//! |---------|--------------------------------|---------------------------------------------|
//! | `W`     | f32 `[instances, features, hidden]` | encoder; `W[k, i]` is feature i's direction |
//! | `b`     | f32 `[instances, features]`    | output bias                                 |
//! | `W_dec` | f32 `[instances, features, hidden]` | decoder of the untied `abs` model only |
//!
//! Metadata: `format` = `tms/1`, `model` = the model kind, `config` = the run's TOML config.
//! Loading also accepts files saved from PyTorch with the notebook's names (`W`, `b_final`),
//! in f32, f64, f16 or bf16, and a 2-D `W` `[features, hidden]` as a single instance.

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

use super::bytes::{from_le_bytes, le_bytes};
use crate::config::TrainConfig;
use crate::model::{ModelKind, Shape};

/// Largest weights file `tms` reads (a guard against reading a huge file into memory).
pub const MAX_WEIGHTS_BYTES: u64 = 4 << 30;

/// Weights of every instance, flattened in the file's layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Weights {
    /// Number of instances.
    pub instances: usize,
    /// Features per instance.
    pub features: usize,
    /// Hidden dimensions per instance.
    pub hidden: usize,
    /// `W`, `[instances][features][hidden]`.
    pub w: Vec<f32>,
    /// `b`, `[instances][features]`, when the file has it.
    pub b: Option<Vec<f32>>,
    /// `W_dec`, `[instances][features][hidden]`, for untied models.
    pub w_dec: Option<Vec<f32>>,
    /// Model kind from the metadata, when the file was written by `tms` (for mixed runs, the
    /// kind of `[model]`).
    pub kind: Option<ModelKind>,
    /// Per-instance kinds, for runs that mix `linear`, `relu-output` and `relu-hidden`.
    pub kinds: Option<Vec<ModelKind>>,
    /// The run's config from the metadata, when present and valid.
    pub config: Option<TrainConfig>,
}

impl Weights {
    /// Gather per-instance parameter buffers (layout of [`crate::model`]) into file layout.
    pub fn from_params(
        shape: &Shape,
        kinds: &[ModelKind],
        params: &[Vec<f32>],
        config: Option<TrainConfig>,
    ) -> Self {
        let mut w = Vec::with_capacity(params.len() * shape.weight_len());
        let mut b = Vec::with_capacity(params.len() * shape.features);
        let mut w_dec = Vec::new();
        for p in params {
            w.extend_from_slice(shape.encoder(p));
            if !shape.kind.tied() {
                w_dec.extend_from_slice(shape.decoder(p));
            }
            b.extend_from_slice(shape.bias(p));
        }
        Weights {
            instances: params.len(),
            features: shape.features,
            hidden: shape.hidden,
            w,
            b: Some(b),
            w_dec: (!shape.kind.tied()).then_some(w_dec),
            kind: Some(shape.kind),
            kinds: kinds
                .iter()
                .any(|k| *k != shape.kind)
                .then(|| kinds.to_vec()),
            config,
        }
    }

    /// ReLU-output weights with `W` only (`[instances][features][hidden]`, no bias): hand-made
    /// weights for tests and examples.
    ///
    /// # Panics
    /// If `w` is not a whole number of `features × hidden` matrices.
    pub fn w_only(features: usize, hidden: usize, w: Vec<f32>) -> Self {
        let len = features * hidden;
        assert!(
            len > 0 && w.len().is_multiple_of(len),
            "W of {} values",
            w.len()
        );
        Weights {
            instances: w.len() / len,
            features,
            hidden,
            w,
            b: None,
            w_dec: None,
            kind: Some(ModelKind::ReluOutput),
            kinds: None,
            config: None,
        }
    }

    /// `W` of instance `k` (`[features][hidden]`).
    pub fn instance_w(&self, k: usize) -> &[f32] {
        let len = self.features * self.hidden;
        &self.w[k * len..(k + 1) * len]
    }

    /// `b` of instance `k`, if present.
    pub fn instance_b(&self, k: usize) -> Option<&[f32]> {
        self.b
            .as_ref()
            .map(|b| &b[k * self.features..(k + 1) * self.features])
    }

    /// Instance `k`'s parameters in the layout of [`crate::model`] for `shape` (the inverse of
    /// [`Weights::from_params`]), or `None` when the file lacks a block the shape needs or
    /// its sizes differ.
    pub fn instance_params(&self, k: usize, shape: &Shape) -> Option<Vec<f32>> {
        if k >= self.instances || shape.features != self.features || shape.hidden != self.hidden {
            return None;
        }
        let len = self.features * self.hidden;
        let mut params = Vec::with_capacity(shape.param_len());
        params.extend_from_slice(self.instance_w(k));
        if !shape.kind.tied() {
            params.extend_from_slice(self.w_dec.as_ref()?.get(k * len..(k + 1) * len)?);
        }
        params.extend_from_slice(self.instance_b(k)?);
        Some(params)
    }

    /// Serialise to safetensors bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, WeightsError> {
        let (i, n, m) = (self.instances, self.features, self.hidden);
        let w = le_bytes(&self.w);
        let b = self.b.as_deref().map(le_bytes);
        let w_dec = self.w_dec.as_deref().map(le_bytes);
        let mut tensors: Vec<(&str, TensorView<'_>)> = Vec::new();
        fn view(data: &[u8], shape: Vec<usize>) -> Result<TensorView<'_>, WeightsError> {
            TensorView::new(Dtype::F32, shape, data)
                .map_err(|e| WeightsError::Invalid(e.to_string()))
        }
        tensors.push(("W", view(&w, vec![i, n, m])?));
        if let Some(b) = &b {
            tensors.push(("b", view(b, vec![i, n])?));
        }
        if let Some(wd) = &w_dec {
            tensors.push(("W_dec", view(wd, vec![i, n, m])?));
        }
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), "tms/1".to_string());
        if let Some(kind) = self.kind {
            meta.insert("model".to_string(), kind.name().to_string());
        }
        if let Some(kinds) = &self.kinds {
            let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            meta.insert("model".to_string(), format!("mixed: {}", names.join(",")));
        }
        if let Some(cfg) = &self.config {
            meta.insert("config".to_string(), cfg.to_toml());
        }
        let bytes = safetensors::serialize(tensors, &Some(meta))
            .map_err(|e| WeightsError::Invalid(e.to_string()))?;
        Ok(canonical_header(bytes))
    }

    /// Read and check a weights file.
    pub fn load(path: &Path) -> Result<Self, WeightsError> {
        let size = std::fs::metadata(path)
            .map_err(|e| WeightsError::Io(format!("cannot read {}: {e}", path.display())))?
            .len();
        if size > MAX_WEIGHTS_BYTES {
            return Err(WeightsError::Invalid(format!(
                "{} is {size} bytes; tms reads weights files up to {MAX_WEIGHTS_BYTES} bytes",
                path.display()
            )));
        }
        let bytes = std::fs::read(path)
            .map_err(|e| WeightsError::Io(format!("cannot read {}: {e}", path.display())))?;
        Self::from_bytes(&bytes)
    }

    /// Parse and check safetensors bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WeightsError> {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| WeightsError::Invalid(format!("not a valid safetensors file ({e})")))?;
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| WeightsError::Invalid(format!("not a valid safetensors file ({e})")))?;
        let meta = header.metadata().clone().unwrap_or_default();

        let w_view = st.tensor("W").map_err(|_| {
            let names: Vec<String> = st.names().into_iter().cloned().collect();
            WeightsError::Invalid(format!(
                "no tensor named `W` (expected `W` as [instances, features, hidden], the \
                 notebook's layout); the file has: [{}]",
                names.join(", ")
            ))
        })?;
        let (instances, features, hidden) = match w_view.shape() {
            [i, n, m] => (*i, *n, *m),
            [n, m] => (1, *n, *m),
            s => {
                return Err(WeightsError::Invalid(format!(
                    "tensor `W` has shape {s:?}; expected [instances, features, hidden] or \
                     [features, hidden]"
                )))
            }
        };
        if instances == 0 || features == 0 || hidden == 0 {
            return Err(WeightsError::Invalid(format!(
                "tensor `W` has an empty dimension: {:?}",
                w_view.shape()
            )));
        }
        let w = f32_values(&w_view, "W")?;
        let b = ["b", "b_final"]
            .iter()
            .find_map(|name| st.tensor(name).ok().map(|t| (*name, t)))
            .map(|(name, t)| {
                let ok = t.shape() == [instances, features]
                    || (instances == 1 && t.shape() == [features]);
                if !ok {
                    return Err(WeightsError::Invalid(format!(
                        "tensor `{name}` has shape {:?}; expected [{instances}, {features}] \
                         ([instances, features], matching `W`)",
                        t.shape()
                    )));
                }
                f32_values(&t, name)
            })
            .transpose()?;
        let w_dec = st
            .tensor("W_dec")
            .ok()
            .map(|t| {
                if t.shape() != w_view.shape() {
                    return Err(WeightsError::Invalid(format!(
                        "tensor `W_dec` has shape {:?}; expected the shape of `W`, {:?}",
                        t.shape(),
                        w_view.shape()
                    )));
                }
                f32_values(&t, "W_dec")
            })
            .transpose()?;
        let parse_kind = |name: &str| {
            ModelKind::ALL
                .into_iter()
                .find(|k| k.name() == name)
                .ok_or_else(|| {
                    WeightsError::Invalid(format!(
                        "metadata `model` names {name:?}, not a known model kind"
                    ))
                })
        };
        let (kind, kinds) = match meta.get("model").map(String::as_str) {
            Some(mixed) if mixed.starts_with("mixed: ") => {
                let kinds = mixed["mixed: ".len()..]
                    .split(',')
                    .map(parse_kind)
                    .collect::<Result<Vec<_>, _>>()?;
                if kinds.len() != instances {
                    return Err(WeightsError::Invalid(format!(
                        "metadata `model` lists {} kinds for {instances} instances",
                        kinds.len()
                    )));
                }
                (kinds.first().copied(), Some(kinds))
            }
            Some(name) => (Some(parse_kind(name)?), None),
            None => (None, None),
        };
        if kind == Some(ModelKind::Abs) && w_dec.is_none() {
            return Err(WeightsError::Invalid(
                "an `abs` model needs the tensor `W_dec` [instances, features, hidden]".into(),
            ));
        }
        let config = meta
            .get("config")
            .and_then(|text| TrainConfig::from_toml(text, "metadata").ok())
            .filter(|c| c.model.features == features && c.model.hidden == hidden);
        Ok(Weights {
            instances,
            features,
            hidden,
            w,
            b,
            w_dec,
            kind,
            kinds,
            config,
        })
    }
}

/// A weights file that cannot be used; the message says what was expected.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file could not be read.
    #[error("{0}")]
    Io(String),
    /// The file's content is not what `tms` expects.
    #[error("{0}")]
    Invalid(String),
}

/// Rewrite a safetensors file's JSON header with sorted keys, so that the same tensors and
/// metadata always give the same bytes (the crate writes its metadata map in hash order).
pub fn canonical_header(bytes: Vec<u8>) -> Vec<u8> {
    let Some(len) = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8")))
    else {
        return bytes;
    };
    let end = 8usize.saturating_add(len as usize);
    let Some(header) = bytes.get(8..end) else {
        return bytes;
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(header) else {
        return bytes;
    };
    let mut text = sorted(value).to_string().into_bytes();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - end);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[end..]);
    out
}

/// The same JSON with every object's keys in sorted order (insertion order is kept by
/// serde_json when a dependency enables `preserve_order`, so insert sorted).
fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        other => other,
    }
}

pub(crate) fn f32_values(t: &TensorView<'_>, name: &str) -> Result<Vec<f32>, WeightsError> {
    let data = t.data();
    let values: Vec<f32> = match t.dtype() {
        Dtype::F32 => from_le_bytes::<f32>(data).collect(),
        Dtype::F64 => from_le_bytes::<f64>(data).map(|v| v as f32).collect(),
        Dtype::BF16 => from_le_bytes::<u16>(data)
            .map(|h| f32::from_bits((h as u32) << 16))
            .collect(),
        Dtype::F16 => from_le_bytes::<u16>(data).map(f16_to_f32).collect(),
        other => {
            return Err(WeightsError::Invalid(format!(
                "tensor `{name}` has dtype {other:?}; expected a float type (F32, F64, F16, BF16)"
            )))
        }
    };
    if let Some(pos) = values.iter().position(|v| !v.is_finite()) {
        return Err(WeightsError::Invalid(format!(
            "tensor `{name}` holds a non-finite value ({}) at flat index {pos}",
            values[pos]
        )));
    }
    Ok(values)
}

/// IEEE half to single precision.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: normalise.
            let shift = f.leading_zeros() - 21;
            sign | ((127 - 15 + 1 - shift) << 23) | ((f << shift) & 0x3ff) << 13
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Weights {
        let shape = Shape {
            kind: ModelKind::Abs,
            features: 3,
            hidden: 2,
        };
        let params = vec![(0..shape.param_len()).map(|v| v as f32).collect::<Vec<_>>(); 2];
        Weights::from_params(&shape, &[shape.kind; 2], &params, None)
    }

    #[test]
    fn round_trip_keeps_every_tensor() {
        let w = sample();
        let back = Weights::from_bytes(&w.to_bytes().unwrap()).unwrap();
        assert_eq!(back, w);
        assert_eq!(back.instance_w(1), &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(back.w_dec.as_ref().unwrap()[..2], [6.0, 7.0]);
        assert_eq!(back.instance_b(0).unwrap(), &[12.0, 13.0, 14.0]);
    }

    #[test]
    fn instance_params_invert_from_params() {
        let shape = Shape {
            kind: ModelKind::Abs,
            features: 3,
            hidden: 2,
        };
        let params: Vec<Vec<f32>> = (0..2)
            .map(|k| {
                (0..shape.param_len())
                    .map(|v| (v + 100 * k) as f32)
                    .collect()
            })
            .collect();
        let w = Weights::from_params(&shape, &[shape.kind; 2], &params, None);
        assert_eq!(w.instance_params(1, &shape).unwrap(), params[1]);
        assert_eq!(w.instance_params(2, &shape), None);
        let mut no_dec = w.clone();
        no_dec.w_dec = None;
        assert_eq!(no_dec.instance_params(0, &shape), None);
        let tied = Shape {
            kind: ModelKind::ReluOutput,
            ..shape
        };
        assert_eq!(
            no_dec.instance_params(0, &tied).unwrap().len(),
            tied.param_len()
        );
    }

    #[test]
    fn the_same_weights_give_the_same_bytes() {
        let cfg = crate::config::TrainConfig::from_toml(
            "[model]\nkind = \"abs\"\nfeatures = 3\nhidden = 2\n",
            "x",
        )
        .unwrap();
        let mut w = sample();
        w.config = Some(cfg);
        let first = w.to_bytes().unwrap();
        for _ in 0..10 {
            assert_eq!(w.to_bytes().unwrap(), first);
        }
        assert_eq!(Weights::from_bytes(&first).unwrap(), w);
    }

    #[test]
    fn rejects_garbage_and_wrong_shapes() {
        let e = Weights::from_bytes(b"hello").unwrap_err().to_string();
        assert!(e.contains("not a valid safetensors"), "{e}");
        // A header that claims a huge size.
        let mut hostile = (u64::MAX / 2).to_le_bytes().to_vec();
        hostile.extend_from_slice(b"{}");
        assert!(Weights::from_bytes(&hostile).is_err());
        let x = le_bytes(&[1.0f32; 4]);
        let t = TensorView::new(Dtype::F32, vec![4], &x).unwrap();
        let bytes = safetensors::serialize(vec![("W", t)], &None).unwrap();
        let e = Weights::from_bytes(&bytes).unwrap_err().to_string();
        assert!(e.contains("[instances, features, hidden]"), "{e}");
        let t = TensorView::new(Dtype::F32, vec![2, 2], &x).unwrap();
        let bytes = safetensors::serialize(vec![("weights", t)], &None).unwrap();
        let e = Weights::from_bytes(&bytes).unwrap_err().to_string();
        assert!(
            e.contains("no tensor named `W`") && e.contains("weights"),
            "{e}"
        );
    }

    proptest::proptest! {
        /// Arbitrary bytes, and valid files with bytes flipped or cut, never panic the loader.
        #[test]
        fn loading_never_panics(
            junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            flips in proptest::collection::vec((0usize..400, proptest::prelude::any::<u8>()), 0..6),
            cut in 0usize..400,
        ) {
            let _ = Weights::from_bytes(&junk);
            let mut good = sample().to_bytes().unwrap();
            for (at, byte) in flips {
                let at = at % good.len();
                good[at] = byte;
            }
            let _ = Weights::from_bytes(&good);
            let _ = Weights::from_bytes(&good[..cut.min(good.len())]);
        }
    }

    #[test]
    fn reads_notebook_names_and_half_precision() {
        let w: Vec<u16> = [1.0f32, -2.0, 0.5, 0.0]
            .iter()
            .map(|v| (v.to_bits() >> 16) as u16)
            .collect();
        let wb: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
        let b16: Vec<u8> = [0x3c00u16, 0x0001]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let bytes = safetensors::serialize(
            vec![
                (
                    "W",
                    TensorView::new(Dtype::BF16, vec![1, 2, 2], &wb).unwrap(),
                ),
                (
                    "b_final",
                    TensorView::new(Dtype::F16, vec![1, 2], &b16).unwrap(),
                ),
            ],
            &None,
        )
        .unwrap();
        let loaded = Weights::from_bytes(&bytes).unwrap();
        assert_eq!(loaded.w, vec![1.0, -2.0, 0.5, 0.0]);
        let b = loaded.b.unwrap();
        assert_eq!(b[0], 1.0);
        assert!((b[1] - 5.96e-8).abs() < 1e-9);
    }
}
