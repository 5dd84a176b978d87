//! Weights saved by other toy-model codebases: safetensors, `.npy` and `.npz` files, with `W`
//! in any of the common layouts, turned into [`Weights`] in the notebook's layout.
//!
//! | layout            | `W`                              | saved by                          |
//! |-------------------|----------------------------------|-----------------------------------|
//! | `notebook`        | [instances, features, hidden]    | the paper's notebook, tms          |
//! | `arena`           | [instances, hidden, features]    | ARENA's superposition exercises   |
//! | `features-hidden` | [features, hidden], one model    |                                   |
//! | `hidden-features` | [hidden, features], one model    | `nn.Linear(features, hidden).weight` |
//!
//! The bias is `b` or `b_final` ([instances, features] or [features]). The untied |x| model
//! comes as `W1` (h = ReLU(W1 x): [.., hidden, features]) and `W2` (y = ReLU(W2 h + b):
//! [.., features, hidden]); it becomes tms's `abs` kind (`W` = W1ᵀ, `W_dec` = W2).
//! A file written by tms (its metadata has tms's format) is read as it is. Otherwise the layout
//! is the one with features ≥ hidden (superposition's regime) and the bias is checked against
//! it; a square `W` is refused until `--layout` names the layout. `W_dec`, when present, is
//! read in the same layout as `W`.

use std::io::{Cursor, Read};
use std::path::Path;

use super::weights::{f32_values, Weights, WeightsError, MAX_WEIGHTS_BYTES};
use crate::model::ModelKind;

/// How a file stores `W`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// [instances, features, hidden] (the notebook's and tms's).
    Notebook,
    /// [instances, hidden, features] (ARENA's exercises).
    Arena,
    /// [features, hidden]: one model.
    FeaturesHidden,
    /// [hidden, features]: one model (PyTorch's `nn.Linear(features, hidden).weight`).
    HiddenFeatures,
}

impl Layout {
    /// Every layout, in the order of the help text.
    pub const ALL: [Layout; 4] = [
        Layout::Notebook,
        Layout::Arena,
        Layout::FeaturesHidden,
        Layout::HiddenFeatures,
    ];

    /// The name `--layout` takes.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Notebook => "notebook",
            Layout::Arena => "arena",
            Layout::FeaturesHidden => "features-hidden",
            Layout::HiddenFeatures => "hidden-features",
        }
    }

    /// The layout named `name`.
    pub fn from_name(name: &str) -> Option<Layout> {
        Layout::ALL.into_iter().find(|l| l.name() == name)
    }

    /// W's shape, in words.
    pub fn shape(self) -> &'static str {
        match self {
            Layout::Notebook => "[instances, features, hidden]",
            Layout::Arena => "[instances, hidden, features]",
            Layout::FeaturesHidden => "[features, hidden]",
            Layout::HiddenFeatures => "[hidden, features]",
        }
    }

    fn rank(self) -> usize {
        match self {
            Layout::Notebook | Layout::Arena => 3,
            Layout::FeaturesHidden | Layout::HiddenFeatures => 2,
        }
    }

    /// Whether the last two axes are [hidden, features] (then they are transposed).
    fn hidden_first(self) -> bool {
        matches!(self, Layout::Arena | Layout::HiddenFeatures)
    }
}

/// Weights read from a file, and how they were read.
#[derive(Debug)]
pub struct Imported {
    /// The weights, in the notebook's layout.
    pub weights: Weights,
    /// The file's format: `safetensors`, `npy` or `npz` (`arrays` for [`from_memory`]).
    pub format: &'static str,
    /// The layout of `W` in the file.
    pub layout: Layout,
    /// Why that layout: the file's tms metadata, `--layout`, the bias's length, or the
    /// features ≥ hidden assumption.
    pub reason: String,
}

/// One array of a file: its name, shape and values (as f32).
struct Array {
    name: String,
    shape: Vec<usize>,
    values: Vec<f32>,
}

/// An array given in memory (from Python, say), named as in a file: `W`, `b` or `b_final`,
/// `W_dec`, `W1`, `W2`.
#[derive(Clone, Debug)]
pub struct NamedArray {
    /// Its name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values, in C order.
    pub values: Vec<f32>,
}

/// Read weights given as arrays in memory, as [`load`] reads a file holding those arrays
/// (the same layouts and checks; the format is called `arrays`).
pub fn from_memory(arrays: Vec<NamedArray>, layout: Option<Layout>) -> Result<Imported, String> {
    let mut kept = Vec::new();
    for a in arrays {
        if !is_known(&a.name) {
            return Err(format!(
                "unknown array `{}`; tms reads W, b (or b_final), W_dec, or the |x| model's W1 and W2",
                a.name
            ));
        }
        let len = a
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if len != Some(a.values.len()) {
            return Err(format!(
                "`{}` has {} values, not the {:?} its shape holds",
                a.name,
                a.values.len(),
                a.shape
            ));
        }
        if let Some(pos) = a.values.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "`{}` holds a non-finite value ({}) at flat index {pos}",
                a.name, a.values[pos]
            ));
        }
        kept.push(Array {
            name: a.name,
            shape: a.shape,
            values: a.values,
        });
    }
    if !kept.iter().any(|a| a.name == "W" || a.name == "W1") {
        return Err("no array named `W` (or the |x| model's `W1` and `W2`)".into());
    }
    from_arrays(kept, "arrays", layout)
}

/// Read `path` (safetensors, `.npy` or `.npz`), with `layout` forced when given.
pub fn load(path: &Path, layout: Option<Layout>) -> Result<Imported, WeightsError> {
    let invalid = |m: String| WeightsError::Invalid(format!("{}: {m}", path.display()));
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let pickle = || {
        invalid(format!(
            "PyTorch pickles are not read (unpickling runs code from the file); convert it \
             to safetensors first: python -c \"import torch; from safetensors.torch import \
             save_file; save_file({{k: v.contiguous() for k, v in torch.load('{0}', \
             map_location='cpu').items()}}, '{0}.safetensors')\"",
            path.display()
        ))
    };
    if extension == "pt" || extension == "pth" || extension == "ckpt" {
        return Err(pickle());
    }
    let size = std::fs::metadata(path)
        .map_err(|e| WeightsError::Io(format!("cannot read {}: {e}", path.display())))?
        .len();
    if size > MAX_WEIGHTS_BYTES {
        return Err(invalid(format!(
            "{size} bytes; tms reads weights files up to {MAX_WEIGHTS_BYTES} bytes"
        )));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| WeightsError::Io(format!("cannot read {}: {e}", path.display())))?;
    if bytes.starts_with(b"\x93NUMPY") {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let array = read_npy(&bytes, "W").map_err(|e| invalid(format!("{stem}.npy: {e}")))?;
        return from_arrays(vec![array], "npy", layout).map_err(invalid);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        // torch.save writes a zip too, with a pickle inside.
        let arrays = read_npz(&bytes).map_err(|e| match e {
            NpzError::Pickle => pickle(),
            NpzError::Invalid(m) => invalid(m),
        })?;
        return from_arrays(arrays, "npz", layout).map_err(invalid);
    }
    // safetensors: tms's own files (their metadata names the model) are read as they are.
    let own = safetensors::SafeTensors::read_metadata(&bytes)
        .ok()
        .and_then(|(_, h)| h.metadata().clone())
        .is_some_and(|m| {
            m.contains_key("model")
                || m.contains_key("config")
                || m.get("format").is_some_and(|f| f.starts_with("tms/"))
        });
    if own && matches!(layout, None | Some(Layout::Notebook)) {
        return Ok(Imported {
            weights: Weights::from_bytes(&bytes)?,
            format: "safetensors",
            layout: Layout::Notebook,
            reason: "written by tms".into(),
        });
    }
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
        invalid(format!(
            "not a valid safetensors file ({e}), nor a .npy or .npz file"
        ))
    })?;
    let mut arrays = Vec::new();
    for (name, view) in st.tensors() {
        // Only the arrays tms reads; others may be anything.
        if is_known(&name) {
            arrays.push(Array {
                values: f32_values(&view, &name)?,
                shape: view.shape().to_vec(),
                name,
            });
        }
    }
    if !arrays.iter().any(|a| a.name == "W" || a.name == "W1") {
        let names: Vec<String> = st.names().into_iter().cloned().collect();
        return Err(invalid(format!(
            "no tensor named `W` (expected `W` as [instances, features, hidden], the \
             notebook's layout, or another layout of it; or the |x| model's `W1` and `W2`); \
             the file has: [{}]",
            names.join(", ")
        )));
    }
    from_arrays(arrays, "safetensors", layout).map_err(invalid)
}

/// The array names tms reads.
fn is_known(name: &str) -> bool {
    matches!(name, "W" | "b" | "b_final" | "W_dec" | "W1" | "W2")
}

/// The number of values a `.npy` header's shape claims, read before the file is parsed (so a
/// crafted shape whose product overflows is refused here, not inside the parser); `None` when
/// the header cannot be read, which the parser then reports.
fn npy_claimed_len(bytes: &[u8]) -> Option<Result<u64, String>> {
    let (len, start): (usize, usize) = match bytes.get(6)? {
        1 => (
            u16::from_le_bytes([*bytes.get(8)?, *bytes.get(9)?]) as usize,
            10,
        ),
        _ => (
            u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?) as usize,
            12,
        ),
    };
    let header = std::str::from_utf8(bytes.get(start..start.checked_add(len)?)?).ok()?;
    let tuple = header.split("'shape'").nth(1)?;
    let inner = tuple.split('(').nth(1)?.split(')').next()?;
    let mut product: u64 = 1;
    for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let dim: u64 = part.parse().ok()?;
        product = match product.checked_mul(dim) {
            Some(p) => p,
            None => return Some(Err(format!("its shape ({inner}) overflows"))),
        };
    }
    Some(Ok(product))
}

/// One `.npy` array (f32 or f64, C or Fortran order) named `name`.
fn read_npy(bytes: &[u8], name: &str) -> Result<Array, String> {
    if let Some(claimed) = npy_claimed_len(bytes) {
        let claimed = claimed?;
        if claimed > MAX_WEIGHTS_BYTES / 4 {
            return Err(format!(
                "its shape claims {claimed} values; tms reads at most {} per array",
                MAX_WEIGHTS_BYTES / 4
            ));
        }
    }
    let file = npyz::NpyFile::new(bytes).map_err(|e| format!("not a valid .npy array ({e})"))?;
    let shape: Vec<usize> = file.shape().iter().map(|&s| s as usize).collect();
    let fortran = file.order() == npyz::Order::Fortran;
    let dtype = file.dtype().descr();
    let values: Vec<f32> = match dtype.as_str() {
        "'<f4'" => file.into_vec::<f32>().map_err(|e| e.to_string())?,
        "'<f8'" => file
            .into_vec::<f64>()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        other => return Err(format!("dtype {other}; expected float32 or float64")),
    };
    let expected = shape.iter().try_fold(1usize, |a, &s| a.checked_mul(s));
    if expected != Some(values.len()) {
        return Err(format!(
            "`{name}` has shape {shape:?} but {} values",
            values.len()
        ));
    }
    if let Some(pos) = values.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "`{name}` holds a non-finite value ({}) at flat index {pos}",
            values[pos]
        ));
    }
    let values = if fortran && shape.len() > 1 {
        fortran_to_c(&values, &shape)
    } else {
        values
    };
    Ok(Array {
        name: name.to_string(),
        shape,
        values,
    })
}

/// Why a zip file could not be read as `.npz`.
enum NpzError {
    /// It is a PyTorch checkpoint (a pickle inside a zip).
    Pickle,
    /// Anything else, said in words.
    Invalid(String),
}

/// The arrays of an `.npz` archive (a zip of `.npy` files named after the arrays).
fn read_npz(bytes: &[u8]) -> Result<Vec<Array>, NpzError> {
    let invalid = NpzError::Invalid;
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| invalid(format!("not a valid .npz archive ({e})")))?;
    if zip.file_names().any(|n| n.ends_with("data.pkl")) {
        return Err(NpzError::Pickle);
    }
    let mut arrays: Vec<Array> = Vec::new();
    // One budget for everything the archive decompresses to (a small zip can claim much more).
    let mut budget = MAX_WEIGHTS_BYTES;
    for i in 0..zip.len() {
        let entry = zip
            .by_index(i)
            .map_err(|e| invalid(format!("entry {i} of the archive: {e}")))?;
        let Some(name) = entry.name().strip_suffix(".npy").map(str::to_string) else {
            continue;
        };
        if !is_known(&name) {
            continue;
        }
        if arrays.iter().any(|a| a.name == name) {
            return Err(invalid(format!("the archive holds {name}.npy twice")));
        }
        let mut data = Vec::new();
        entry
            .take(budget + 1)
            .read_to_end(&mut data)
            .map_err(|e| invalid(format!("{name}.npy: {e}")))?;
        if data.len() as u64 > budget {
            return Err(invalid(format!(
                "the archive decompresses to more than {MAX_WEIGHTS_BYTES} bytes"
            )));
        }
        budget -= data.len() as u64;
        arrays.push(read_npy(&data[..], &name).map_err(|e| invalid(format!("{name}.npy: {e}")))?);
    }
    Ok(arrays)
}

/// Reorder a column-major (Fortran) array's values into row-major order.
fn fortran_to_c(values: &[f32], shape: &[usize]) -> Vec<f32> {
    let mut out = vec![0f32; values.len()];
    let mut index = vec![0usize; shape.len()];
    for v in out.iter_mut() {
        // `index` walks row-major; its column-major offset is Σ index[k]·Π shape[..k].
        let mut offset = 0;
        let mut stride = 1;
        for (&i, &s) in index.iter().zip(shape) {
            offset += i * stride;
            stride *= s;
        }
        *v = values[offset];
        for k in (0..shape.len()).rev() {
            index[k] += 1;
            if index[k] < shape[k] {
                break;
            }
            index[k] = 0;
        }
    }
    out
}

/// Weights in the notebook's layout from named arrays.
fn from_arrays(
    mut arrays: Vec<Array>,
    format: &'static str,
    forced: Option<Layout>,
) -> Result<Imported, String> {
    let mut take = |name: &str| {
        arrays
            .iter()
            .position(|a| a.name == name)
            .map(|i| arrays.swap_remove(i))
    };
    let bias = take("b").or_else(|| take("b_final"));
    let w_dec = take("W_dec");
    let (w, w_dec) = match (take("W"), take("W1"), take("W2")) {
        (Some(w), None, None) => (w, w_dec),
        // The |x| model: W1 is [.., hidden, features]; W2 is [.., features, hidden].
        (None, Some(w1), Some(w2)) => {
            let layout = if w1.shape.len() == 3 {
                Layout::Arena
            } else {
                Layout::HiddenFeatures
            };
            if forced.is_some_and(|l| l != layout) {
                return Err(format!(
                    "W1 is stored as {}; --layout {} does not apply",
                    layout.shape(),
                    forced.map_or("", Layout::name)
                ));
            }
            let (w, features, hidden) = to_notebook(&w1, layout)?;
            let mut expected = w1.shape.clone();
            let rank = expected.len();
            expected[rank - 2..].copy_from_slice(&[features, hidden]);
            if w2.shape != expected {
                return Err(format!(
                    "W2 has shape {:?}; expected {expected:?} ([.., features, hidden]) to match \
                     W1 {:?}",
                    w2.shape, w1.shape
                ));
            }
            let mut weights = build(w, features, hidden, bias, Some(w2.values))?;
            weights.kind = Some(ModelKind::Abs);
            return Ok(Imported {
                weights,
                format,
                layout,
                reason: "the |x| model's W1 and W2".into(),
            });
        }
        (None, None, None) => {
            return Err(format!(
                "no array named `W` (or `W1` and `W2` for the |x| model); the file has: [{}]",
                arrays
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
        _ => return Err("expected either `W`, or `W1` with `W2`, not a mix".into()),
    };
    let (layout, reason) = choose_layout(&w.shape, forced)?;
    let (values, features, hidden) = to_notebook(&w, layout)?;
    let w_dec = match w_dec {
        Some(dec) if dec.shape == w.shape => Some(to_notebook(&dec, layout)?.0),
        Some(dec) => {
            return Err(format!(
                "tensor `W_dec` has shape {:?}; expected the shape of `W`, {:?}",
                dec.shape, w.shape
            ))
        }
        None => None,
    };
    let weights = build(values, features, hidden, bias, w_dec).map_err(|e| {
        if forced.is_some() {
            return e;
        }
        let other = match layout {
            Layout::Notebook => Layout::Arena,
            Layout::Arena => Layout::Notebook,
            Layout::FeaturesHidden => Layout::HiddenFeatures,
            Layout::HiddenFeatures => Layout::FeaturesHidden,
        };
        format!(
            "{e}; W was read as {} ({reason}): if it is {}, pass --layout {}",
            layout.shape(),
            other.shape(),
            other.name()
        )
    })?;
    Ok(Imported {
        weights,
        format,
        layout,
        reason,
    })
}

/// The layout of a `W` of shape `shape`: forced by `--layout`, or the one that makes features
/// ≥ hidden (superposition's regime; the bias is then checked against it, not used to guess);
/// a square `W` is refused until `--layout` names the layout.
fn choose_layout(shape: &[usize], forced: Option<Layout>) -> Result<(Layout, String), String> {
    let (first, second) = match shape.len() {
        3 => (Layout::Notebook, Layout::Arena),
        2 => (Layout::FeaturesHidden, Layout::HiddenFeatures),
        _ => {
            return Err(format!(
                "tensor `W` has shape {shape:?}; expected [instances, features, hidden] (or \
                 [instances, hidden, features], [features, hidden], [hidden, features])"
            ))
        }
    };
    if let Some(layout) = forced {
        if layout.rank() != shape.len() {
            return Err(format!(
                "--layout {} needs W as {}; W has shape {shape:?}",
                layout.name(),
                layout.shape()
            ));
        }
        return Ok((layout, "--layout".into()));
    }
    let (a, c) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    let assumed = "assumed features ≥ hidden; --layout says otherwise".to_string();
    if a > c {
        Ok((first, assumed))
    } else if a < c {
        Ok((second, assumed))
    } else {
        Err(format!(
            "W's last two axes are both {a}: features and hidden cannot be told apart (pass \
             --layout {} or --layout {})",
            first.name(),
            second.name()
        ))
    }
}

/// W's values as [instances, features, hidden], with the feature and hidden counts.
fn to_notebook(w: &Array, layout: Layout) -> Result<(Vec<f32>, usize, usize), String> {
    let s = &w.shape;
    if s.len() != layout.rank() || s.contains(&0) {
        return Err(format!(
            "{} has shape {s:?}; the layout {} needs {} with no empty axis",
            w.name,
            layout.name(),
            layout.shape()
        ));
    }
    let (a, c) = (s[s.len() - 2], s[s.len() - 1]);
    if !layout.hidden_first() {
        return Ok((w.values.clone(), a, c));
    }
    let (hidden, features) = (a, c);
    let mut out = vec![0f32; w.values.len()];
    for (src, dst) in w
        .values
        .chunks_exact(a * c)
        .zip(out.chunks_exact_mut(a * c))
    {
        for k in 0..hidden {
            for i in 0..features {
                dst[i * hidden + k] = src[k * features + i];
            }
        }
    }
    Ok((out, features, hidden))
}

/// [`Weights`] from notebook-layout values, checking the bias against them.
fn build(
    w: Vec<f32>,
    features: usize,
    hidden: usize,
    bias: Option<Array>,
    w_dec: Option<Vec<f32>>,
) -> Result<Weights, String> {
    let instances = w.len() / (features * hidden);
    let b = match bias {
        Some(b) => {
            let ok = b.shape == [instances, features] || (instances == 1 && b.shape == [features]);
            if !ok {
                return Err(format!(
                    "tensor `{}` has shape {:?}; expected [{instances}, {features}] ([instances, \
                     features], matching `W`)",
                    b.name, b.shape
                ));
            }
            Some(b.values)
        }
        None => None,
    };
    Ok(Weights {
        instances,
        features,
        hidden,
        w,
        b,
        w_dec,
        kind: None,
        kinds: None,
        config: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array(name: &str, shape: &[usize]) -> Array {
        let len = shape.iter().product();
        Array {
            name: name.into(),
            shape: shape.to_vec(),
            values: (0..len).map(|v| v as f32).collect(),
        }
    }

    #[test]
    fn layouts_follow_features_over_hidden_or_the_flag() {
        let pick = |w: &[usize]| choose_layout(w, None).map(|l| l.0);
        assert_eq!(pick(&[4, 5, 2]), Ok(Layout::Notebook));
        assert_eq!(pick(&[4, 2, 5]), Ok(Layout::Arena));
        assert_eq!(pick(&[5, 2]), Ok(Layout::FeaturesHidden));
        assert_eq!(pick(&[2, 5]), Ok(Layout::HiddenFeatures));
        let err = pick(&[4, 5, 5]).unwrap_err();
        assert!(err.contains("--layout notebook or --layout arena"), "{err}");
        assert!(pick(&[4, 1, 2, 2]).is_err());
        let forced = |w: &[usize], l| choose_layout(w, Some(l)).map(|l| l.0);
        assert_eq!(forced(&[4, 5, 5], Layout::Arena), Ok(Layout::Arena));
        assert_eq!(forced(&[4, 2, 5], Layout::Notebook), Ok(Layout::Notebook));
        assert!(forced(&[5, 5], Layout::Arena).is_err());
    }

    /// A bias that fits the other reading of W is refused with the flag that would read it.
    #[test]
    fn a_bias_that_contradicts_the_layout_names_the_flag() {
        let err = from_arrays(
            vec![array("W", &[1, 6, 3]), array("b", &[1, 3])],
            "npz",
            None,
        )
        .unwrap_err();
        assert!(
            err.contains("tensor `b`") && err.contains("--layout arena"),
            "{err}"
        );
        let ok = from_arrays(
            vec![array("W", &[1, 6, 3]), array("b", &[1, 3])],
            "npz",
            Some(Layout::Arena),
        )
        .unwrap();
        assert_eq!((ok.weights.features, ok.weights.hidden), (3, 6));
    }

    #[test]
    fn the_arena_layout_is_transposed_into_the_notebooks() {
        let notebook = array("W", &[2, 3, 2]);
        // The same weights as [instances, hidden, features].
        let mut arena = array("W", &[2, 2, 3]);
        for inst in 0..2 {
            for i in 0..3 {
                for k in 0..2 {
                    arena.values[inst * 6 + k * 3 + i] = notebook.values[inst * 6 + i * 2 + k];
                }
            }
        }
        let (values, features, hidden) = to_notebook(&arena, Layout::Arena).unwrap();
        assert_eq!((features, hidden), (3, 2));
        assert_eq!(values, notebook.values);
    }

    /// A `.npy` header whose shape's product overflows, or claims more than tms reads, is
    /// refused before the parser sees it.
    #[test]
    fn oversized_npy_shapes_are_refused() {
        let npy = |shape: &str| {
            let mut header =
                format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({shape}), }}");
            while (10 + header.len() + 1) % 64 != 0 {
                header.push(' ');
            }
            header.push('\n');
            let mut out = b"\x93NUMPY\x01\x00".to_vec();
            out.extend_from_slice(&(header.len() as u16).to_le_bytes());
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(&[0u8; 8]);
            out
        };
        for shape in ["1, 8589934592, 2147483648", "1, 9223372036854775809, 2"] {
            let err = read_npy(&npy(shape), "W").err().expect("refused");
            assert!(err.contains("overflows") || err.contains("claims"), "{err}");
        }
        // Two floats claimed, two given: read.
        assert_eq!(read_npy(&npy("1, 2"), "W").unwrap().values, vec![0.0, 0.0]);
        // Three claimed, two given: the parser's error, not a short array.
        assert!(read_npy(&npy("3,"), "W").is_err());
    }

    #[test]
    fn fortran_order_is_read_as_c_order() {
        // [[0, 1, 2], [3, 4, 5]] stored column by column.
        assert_eq!(
            fortran_to_c(&[0.0, 3.0, 1.0, 4.0, 2.0, 5.0], &[2, 3]),
            vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        );
    }

    #[test]
    fn the_abs_model_comes_from_w1_and_w2() {
        let w1 = array("W1", &[6, 3]); // [hidden, features]
        let w2 = array("W2", &[3, 6]); // [features, hidden]
        let imported = from_arrays(vec![w1, w2], "npz", None).unwrap();
        let w = &imported.weights;
        assert_eq!((w.instances, w.features, w.hidden), (1, 3, 6));
        assert_eq!(w.kind, Some(ModelKind::Abs));
        assert_eq!(w.w[1], 3.0); // W[feature 0, hidden 1] = W1[1, 0]
        assert_eq!(w.w_dec.as_deref(), Some(&array("W2", &[3, 6]).values[..]));
        let bad = from_arrays(
            vec![array("W1", &[6, 3]), array("W2", &[6, 3])],
            "npz",
            None,
        );
        assert!(bad.unwrap_err().contains("W2 has shape"));
        // With instances: W2 must have as many as W1.
        let bad = from_arrays(
            vec![array("W1", &[2, 6, 3]), array("W2", &[1, 3, 6])],
            "npz",
            None,
        );
        assert!(bad.unwrap_err().contains("expected [2, 3, 6]"));
        let ok = from_arrays(
            vec![array("W1", &[2, 6, 3]), array("W2", &[2, 3, 6])],
            "npz",
            None,
        )
        .unwrap();
        assert_eq!(ok.weights.instances, 2);
    }
}
