//! Integration tests: run the `tms` binary as a user would.

mod common;

use common::{stderr, stdout, tms};
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use tms::output::records::MetricsFile;
use tms::output::weights::Weights;

fn read_metrics(dir: &Path) -> MetricsFile {
    serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap()
}

const SMALL_CONFIG: &str = r#"
name = "small"
[model]
kind = "relu-output"
features = 6
hidden = 3
[train]
steps = 300
batch_size = 256
[data]
importance = { decay = 0.8 }
[sweep]
sparsity = [0.0, 0.9]
"#;

#[test]
fn list_names_every_experiment() {
    let dir = tempfile::tempdir().unwrap();
    let o = tms(&["list"], dir.path());
    assert!(o.status.success());
    assert!(stdout(&o).lines().any(|l| l.starts_with("intro ")));
}

#[test]
fn reproduce_intro_writes_the_run_folder_contract() {
    let dir = tempfile::tempdir().unwrap();
    let o = tms(&["reproduce", "intro", "--quiet"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let run = dir.path().join("runs/intro");
    let text = stdout(&o);
    assert!(text.contains("verdict: REPRODUCED"), "{text}");
    assert!(text.contains("pentagon"), "{text}");

    // metrics.json
    let m = read_metrics(&run);
    assert_eq!(m.experiment, "intro");
    assert_eq!(m.instances.len(), 50, "10 sparsities × 5 restarts");
    assert_eq!(m.instances.iter().filter(|i| i.selected).count(), 10);
    let v = m.verdict.as_ref().unwrap();
    assert!(v.reproduced && v.checks.len() >= 4 && v.checks.iter().all(|c| c.passed));
    for (k, inst) in m.instances.iter().enumerate() {
        assert_eq!(inst.index, k);
        assert_eq!(inst.feature_probability.as_ref().unwrap().len(), 5);
        assert_eq!(inst.importance.as_ref().unwrap()[1], 0.9);
        assert_eq!(inst.feature_norms.len(), 5);
        assert_eq!(inst.interference.len(), 5);
        assert_eq!(inst.fractional_dimensionality.len(), 5);
        assert!(inst.final_loss.unwrap() > 0.0);
    }
    let raw: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("metrics.json")).unwrap()).unwrap();
    for key in [
        "index",
        "feature_probability",
        "importance",
        "final_loss",
        "feature_norms",
        "interference",
        "dimensions_per_feature",
        "fractional_dimensionality",
    ] {
        assert!(raw["instances"][0].get(key).is_some(), "missing {key}");
    }
    assert!(raw["training"]["optimizer"]
        .as_str()
        .unwrap()
        .starts_with("AdamW(lr=0.001"));

    // weights in the notebook layout, with the config in the metadata
    let w = Weights::load(&run.join("weights.safetensors")).unwrap();
    assert_eq!((w.instances, w.features, w.hidden), (50, 5, 2));
    assert_eq!(w.b.as_ref().unwrap().len(), 250);
    assert!(w.config.is_some());

    // loss.csv: header + one row per logged block
    let csv = std::fs::read_to_string(run.join("loss.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap().split(',').count(), 51);
    assert_eq!(lines.count(), 200);

    // figures as SVG and PNG
    for name in ["features", "norms", "loss", "wtw"] {
        let svg = std::fs::read_to_string(run.join(format!("{name}.svg"))).unwrap();
        assert!(svg.contains("<svg"));
        let png = std::fs::read(run.join(format!("{name}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
    assert!(!std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .any(|e| e.unwrap().file_name().to_string_lossy().contains("partial")));

    // config.toml reproduces the weights bit for bit, with any thread count
    let o = tms(
        &[
            "train",
            "runs/intro/config.toml",
            "--out",
            "again",
            "--threads",
            "1",
            "--quiet",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let again = Weights::load(&dir.path().join("again/weights.safetensors")).unwrap();
    assert_eq!(again.w, w.w);
    assert_eq!(again.b, w.b);

    // a second reproduce does not overwrite the first
    let o = tms(&["reproduce", "intro", "-q"], dir.path());
    assert!(o.status.success());
    assert!(dir.path().join("runs/intro-2/metrics.json").exists());
}

/// Several experiments are written like `all`: a run folder each, and the report.
#[test]
fn reproduce_several_experiments_writes_them_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let o = tms(
        &[
            "reproduce",
            "intro",
            "linear-vs-relu",
            "intro",
            "--out",
            "two",
            "-q",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for name in ["intro", "linear-vs-relu"] {
        assert_eq!(
            read_metrics(&dir.path().join("two").join(name)).experiment,
            name
        );
    }
    assert!(dir.path().join("two/index.html").exists());
    let folders = std::fs::read_dir(dir.path().join("two")).unwrap().count();
    assert_eq!(folders, 3, "intro once, linear-vs-relu, index.html");
}

#[test]
fn train_a_config_and_analyze_its_weights() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("small.toml"), SMALL_CONFIG).unwrap();
    let o = tms(&["train", "small.toml", "--out", "run", "-q"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let trained = read_metrics(&dir.path().join("run"));
    assert_eq!(trained.instances.len(), 2);
    assert!(trained.verdict.is_none());
    assert!((trained.instances[1].feature_probability.as_ref().unwrap()[0] - 0.1).abs() < 1e-6);

    let o = tms(
        &["analyze", "run/weights.safetensors", "--out", "an", "-q"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let analyzed = read_metrics(&dir.path().join("an"));
    assert_eq!(analyzed.experiment, "analyze");
    for (a, t) in analyzed.instances.iter().zip(&trained.instances) {
        assert_eq!(a.feature_norms, t.feature_norms);
        assert_eq!(a.fractional_dimensionality, t.fractional_dimensionality);
        // the loss is re-evaluated from the config carried in the weights' metadata
        assert_eq!(a.final_loss, t.final_loss);
    }
    assert!(dir.path().join("an/norms.png").exists());
}

/// A file as the notebook would save it from PyTorch: `W` and `b_final`, no metadata.
#[test]
fn analyze_accepts_notebook_tensors() {
    let dir = tempfile::tempdir().unwrap();
    // two instances: an orthogonal pair plus a dropped feature; an antipodal pair
    let w: Vec<f32> = vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0];
    let b: Vec<f32> = vec![0.0; 6];
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (wb, bb) = (bytes(&w), bytes(&b));
    let file = safetensors::serialize(
        vec![
            (
                "W",
                TensorView::new(Dtype::F32, vec![2, 3, 2], &wb).unwrap(),
            ),
            (
                "b_final",
                TensorView::new(Dtype::F32, vec![2, 3], &bb).unwrap(),
            ),
        ],
        &None,
    )
    .unwrap();
    std::fs::write(dir.path().join("nb.safetensors"), file).unwrap();
    let o = tms(&["analyze", "nb.safetensors", "-q"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let m = read_metrics(&dir.path().join("runs/analyze-nb"));
    assert_eq!(
        m.instances[0].fractional_dimensionality,
        vec![1.0, 1.0, 0.0]
    );
    assert_eq!(m.instances[1].fractional_dimensionality[..2], [0.5, 0.5]);
    assert_eq!(m.instances[1].geometry, "1 antipodal pair");
    assert!(m.instances[0].final_loss.is_none());
    assert!(dir.path().join("runs/analyze-nb/features.svg").exists());
}

/// A `.npy` file's bytes: `values` as float64 (numpy's default) of shape `shape`.
fn npy_f64(values: &[f32], shape: &[u64]) -> Vec<u8> {
    use npyz::WriterBuilder;
    let mut out = std::io::Cursor::new(Vec::new());
    let mut writer = npyz::WriteOptions::<f64>::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut out)
        .begin_nd()
        .unwrap();
    writer.extend(values.iter().map(|&v| v as f64)).unwrap();
    writer.finish().unwrap();
    out.into_inner()
}

/// The same trained weights saved as other tools save them — the notebook's layout from
/// PyTorch (no metadata), ARENA's [instances, hidden, features], an `.npz` of float64 arrays,
/// one model's `nn.Linear` weight as `.npy` — analyse to the same metrics as tms's own file;
/// a square W needs --layout, a pickle is refused with the conversion.
#[test]
fn analyze_reads_other_tools_layouts_and_formats_to_the_same_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("small.toml"), SMALL_CONFIG).unwrap();
    let o = tms(&["train", "small.toml", "--out", "run", "-q"], d);
    assert!(o.status.success(), "{}", stderr(&o));
    let w = Weights::load(&d.join("run/weights.safetensors")).unwrap();
    let (i, n, m) = (w.instances, w.features, w.hidden);
    let b = w.b.clone().unwrap();
    // ARENA's layout: every instance's W transposed.
    let mut arena = vec![0f32; w.w.len()];
    for k in 0..i {
        for f in 0..n {
            for h in 0..m {
                arena[k * n * m + h * n + f] = w.w[k * n * m + f * m + h];
            }
        }
    }
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let st = |w: &[f32], shape: Vec<usize>| {
        let (wb, bb) = (bytes(w), bytes(&b));
        safetensors::serialize(
            vec![
                ("W", TensorView::new(Dtype::F32, shape, &wb).unwrap()),
                (
                    "b_final",
                    TensorView::new(Dtype::F32, vec![i, n], &bb).unwrap(),
                ),
            ],
            &None,
        )
        .unwrap()
    };
    std::fs::write(d.join("nb.safetensors"), st(&w.w, vec![i, n, m])).unwrap();
    std::fs::write(d.join("arena.safetensors"), st(&arena, vec![i, m, n])).unwrap();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for (name, data) in [
        ("W.npy", npy_f64(&w.w, &[i as u64, n as u64, m as u64])),
        ("b_final.npy", npy_f64(&b, &[i as u64, n as u64])),
    ] {
        zip.start_file(name, options).unwrap();
        std::io::Write::write_all(&mut zip, &data).unwrap();
    }
    std::fs::write(d.join("nb.npz"), zip.finish().unwrap().into_inner()).unwrap();
    // One model (instance 1) as nn.Linear(features, hidden).weight: [hidden, features].
    std::fs::write(
        d.join("linear.npy"),
        npy_f64(&arena[n * m..], &[m as u64, n as u64]),
    )
    .unwrap();

    let analyse = |file: &str, extra: &[&str]| {
        let out = format!("an-{file}");
        let mut args = vec!["analyze", file, "--out", &out, "--force", "-q"];
        args.extend_from_slice(extra);
        let o = tms(&args, d);
        assert!(o.status.success(), "{file}: {}", stderr(&o));
        (stdout(&o), read_metrics(&d.join(&out)))
    };
    let (said, own) = analyse("run/weights.safetensors", &[]);
    assert!(said.contains("notebook: written by tms"), "{said}");
    for (file, layout) in [
        ("nb.safetensors", "notebook: assumed features ≥ hidden"),
        ("arena.safetensors", "arena: assumed features ≥ hidden"),
        ("nb.npz", "npz, W as [instances, features, hidden]"),
    ] {
        let (said, m) = analyse(file, &[]);
        assert!(said.contains(layout), "{file}: {said}");
        assert_eq!(m.instances.len(), own.instances.len(), "{file}");
        for (a, t) in m.instances.iter().zip(&own.instances) {
            assert_eq!(a.feature_norms, t.feature_norms, "{file}");
            assert_eq!(a.fractional_dimensionality, t.fractional_dimensionality);
            assert_eq!((a.represented, &a.geometry), (t.represented, &t.geometry));
        }
        // No training data: no loss, and "–" for the sparsity in the summary.
        assert!(m.instances[0].final_loss.is_none());
    }
    let o = tms(&["analyze", "nb.npz", "--out", "table"], d);
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.split_whitespace().take(3).eq(["0", "–", "-"])),
        "{}",
        stdout(&o)
    );
    let (said, single) = analyse("linear.npy", &[]);
    assert!(
        said.contains("hidden-features: assumed features ≥ hidden"),
        "{said}"
    );
    assert_eq!(
        single.instances[0].feature_norms,
        own.instances[1].feature_norms
    );

    // A square W is refused until --layout says which axis is which.
    // The two readings differ: feature 0 has weights 3 and 4, or 3 and 0.
    let square = npy_f64(&[3.0, 4.0, 0.0, 0.0], &[2, 2]);
    std::fs::write(d.join("square.npy"), square).unwrap();
    let o = tms(&["analyze", "square.npy", "-q"], d);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--layout features-hidden or --layout hidden-features"),
        "{}",
        stderr(&o)
    );
    let norm0 =
        |layout: &str| analyse("square.npy", &["--layout", layout]).1.instances[0].feature_norms[0];
    assert!((norm0("features-hidden") - 5.0).abs() < 1e-6);
    assert!((norm0("hidden-features") - 3.0).abs() < 1e-6);
    // The |x| model as W1 [hidden, features] and W2 [features, hidden] in an .npz.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in [
        ("W1.npy", npy_f64(&[1.0, 0.0, 0.0, -1.0, 0.0, 0.0], &[2, 3])),
        ("W2.npy", npy_f64(&[1.0, 1.0, 0.0, 0.0, 0.0, 0.0], &[3, 2])),
    ] {
        zip.start_file(name, options).unwrap();
        std::io::Write::write_all(&mut zip, &data).unwrap();
    }
    std::fs::write(d.join("abs.npz"), zip.finish().unwrap().into_inner()).unwrap();
    let (said, m) = analyse("abs.npz", &[]);
    assert!(said.contains("the |x| model"), "{said}");
    assert_eq!(m.model.as_deref(), Some("abs"));
    // A torch.save zip under another name is refused as a pickle too.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("archive/data.pkl", options).unwrap();
    std::io::Write::write_all(&mut zip, b"pickle").unwrap();
    std::fs::write(d.join("model.bin"), zip.finish().unwrap().into_inner()).unwrap();
    let o = tms(&["analyze", "model.bin", "-q"], d);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("PyTorch pickles are not read"),
        "{}",
        stderr(&o)
    );
    // A PyTorch pickle is refused with the conversion, before it is opened.
    std::fs::write(d.join("model.pt"), b"not opened").unwrap();
    let o = tms(&["analyze", "model.pt", "-q"], d);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("safetensors.torch import save_file") && err.contains("model.pt"),
        "{err}"
    );
}

#[test]
fn existing_out_folder_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("out")).unwrap();
    std::fs::write(dir.path().join("out/keep.txt"), "mine").unwrap();
    std::fs::write(dir.path().join("c.toml"), SMALL_CONFIG).unwrap();
    let o = tms(&["train", "c.toml", "--out", "out", "-q"], dir.path());
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--force"));
    assert!(dir.path().join("out/keep.txt").exists());
    let o = tms(
        &["train", "c.toml", "--out", "out", "--force", "-q"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!dir.path().join("out/keep.txt").exists());
    assert!(dir.path().join("out/metrics.json").exists());
}

#[test]
fn help_is_available_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--help"],
        vec!["reproduce", "--help"],
        vec!["train", "--help"],
        vec!["analyze", "--help"],
        vec!["list", "--help"],
    ] {
        let o = tms(&args, dir.path());
        assert!(o.status.success());
        assert!(stdout(&o).contains("Usage"));
    }
}

/// `tms orthogonal`: Welch's bound, a known optimal packing, a window it refuses plainly, the
/// capacity search, and a run's feature directions against packings.
#[test]
fn orthogonal_reports_bounds_packings_and_capacity() {
    let dir = tempfile::tempdir().unwrap();
    // Six lines in three dimensions: the icosahedron's diagonals meet Welch's bound 1/√5.
    let o = tms(
        &[
            "orthogonal",
            "--dim",
            "3",
            "--count",
            "6",
            "--steps",
            "4000",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("|cos| ≥ 0.4472"), "{text}");
    assert!(text.contains("1.00× Welch's bound"), "{text}");

    // 200 vectors within 90° ± 1° in 10 dimensions: impossible, and said so.
    let o = tms(
        &[
            "orthogonal",
            "--dim",
            "10",
            "--count",
            "200",
            "--angle",
            "1",
            "--steps",
            "20",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("impossible for 200 vectors") && text.contains("at most 10 vectors fit"),
        "{text}"
    );

    // The capacity within ±1° in 100 dimensions: Welch caps it at 103; a simplex of 101
    // vectors (|cos| = 1/100) fits.
    let o = tms(&["orthogonal", "--dim", "100", "--angle", "1"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("Welch's cap: 103 vectors"), "{text}");
    let found: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("found by optimisation: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.trim_end_matches('+').parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!((101..=103).contains(&found), "{text}");

    // A trained run's features against packings of the same count and dimensions.
    std::fs::write(dir.path().join("small.toml"), SMALL_CONFIG).unwrap();
    let o = tms(
        &["train", "small.toml", "--out", "small", "--quiet"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = tms(&["orthogonal", "--compare", "small"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("2 instance(s), n = 6 features in m = 3 dimensions"),
        "{text}"
    );
    assert!(text.contains("model/optim"), "{text}");
}

#[test]
fn orthogonal_refuses_bad_arguments_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let o = tms(&["orthogonal", "--dim", "10", "--angle", "95"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("0 < DEG < 90"), "{}", stderr(&o));
    let o = tms(&["orthogonal", "--dim", "10"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--count N"), "{}", stderr(&o));
    let o = tms(&["orthogonal", "--dim", "0", "--count", "5"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    let o = tms(&["orthogonal", "--compare", "missing-run"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("missing-run"), "{}", stderr(&o));
}

/// A reader that stops early (`| head`) ends the command quietly, not with a panic.
#[test]
fn orthogonal_output_into_a_closed_pipe_is_not_a_panic() {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_tms"))
        .args([
            "orthogonal",
            "--dim",
            "100",
            "--count",
            "300",
            "--steps",
            "5",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // close the pipe before anything is written
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
}
