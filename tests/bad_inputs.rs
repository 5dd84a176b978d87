//! Bad inputs, run against the binary. Each case asserts: a non-zero exit, a one-line message
//! on stderr that names the cause, no panic, and nothing created in the working folder.

mod common;

use common::tms;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};

const BASE: &str = "[model]\nkind = \"relu-output\"\nfeatures = 5\nhidden = 2\n";

/// A config: the base model plus `extra`.
fn cfg(extra: &str) -> Vec<u8> {
    format!("{BASE}{extra}").into_bytes()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A safetensors file from (name, dtype, shape, bytes).
fn safetensors_file(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, &None).unwrap()
}

fn good_weights() -> Vec<u8> {
    safetensors_file(&[
        ("W", Dtype::F32, vec![1, 3, 2], f32_bytes(&[1.0; 6])),
        ("b", Dtype::F32, vec![1, 3], f32_bytes(&[0.0; 3])),
    ])
}

struct Case {
    name: &'static str,
    args: Vec<&'static str>,
    files: Vec<(&'static str, Vec<u8>)>,
    dirs: Vec<&'static str>,
    expect: Vec<&'static str>,
}

fn case(name: &'static str, args: &[&'static str], expect: &[&'static str]) -> Case {
    Case {
        name,
        args: args.to_vec(),
        files: vec![],
        dirs: vec![],
        expect: expect.to_vec(),
    }
}

impl Case {
    fn file(mut self, name: &'static str, content: Vec<u8>) -> Self {
        self.files.push((name, content));
        self
    }

    fn dir(mut self, name: &'static str) -> Self {
        self.dirs.push(name);
        self
    }
}

fn config_case(name: &'static str, extra: &str, expect: &[&'static str]) -> Case {
    case(name, &["train", "c.toml"], expect).file("c.toml", cfg(extra))
}

fn cases() -> Vec<Case> {
    let good = good_weights();
    vec![
        // ---- configs
        config_case("probability above 1", "[data]\nfeature_probability = 1.5\n", &["c.toml:6:23", "data.feature_probability[0]", "[0, 1]"]),
        case("zero features", &["train", "c.toml"], &["model.features", "1 to"])
            .file("c.toml", b"[model]\nkind = \"relu-output\"\nfeatures = 0\nhidden = 2\n".to_vec()),
        case("zero hidden", &["train", "c.toml"], &["model.hidden", "1 to"])
            .file("c.toml", b"[model]\nkind = \"linear\"\nfeatures = 3\nhidden = 0\n".to_vec()),
        config_case("zero steps", "[train]\nsteps = 0\n", &["train.steps", "at least 1"]),
        config_case("unknown field with suggestion", "[train]\nstepz = 10\n", &["c.toml:6:1", "stepz", "did you mean `steps`"]),
        config_case("unknown section", "[optimizer]\nlr = 1\n", &["optimizer", "expected one of"]),
        config_case("wrong type", "[train]\nlr = \"fast\"\n", &["c.toml:6:6", "lr", "invalid type"]),
        case("unknown model kind", &["train", "c.toml"], &["kind", "did you mean `relu-output`"])
            .file("c.toml", b"[model]\nkind = \"relu_output\"\nfeatures = 5\nhidden = 2\n".to_vec()),
        config_case("importance of the wrong length", "[data]\nimportance = [1, 2]\n", &["data.importance", "5 features"]),
        case("missing config", &["train", "nope.toml"], &["cannot read the config", "nope.toml"]),
        config_case("TOML syntax error", "[train]\nsteps = = 5\n", &["c.toml:6", "steps"]),
        case("empty config", &["train", "c.toml"], &["model"]).file("c.toml", vec![]),
        config_case("negative batch size", "[train]\nbatch_size = -5\n", &["c.toml:6", "batch_size"]),
        config_case("NaN learning rate", "[train]\nlr = nan\n", &["train.lr", "finite"]),
        config_case("negative learning rate", "[train]\nlr = -0.1\n", &["train.lr", "> 0"]),
        config_case("beta1 above 1", "[train]\nbeta1 = 1.5\n", &["train.beta1", "[0, 1)"]),
        config_case("zero eps", "[train]\neps = 0.0\n", &["train.eps"]),
        config_case("negative weight decay", "[train]\nweight_decay = -1.0\n", &["train.weight_decay", ">= 0"]),
        config_case("zero restarts", "[sweep]\nrestarts = 0\n", &["sweep.restarts", "1 to"]),
        config_case("empty log range", "[sweep]\nfeature_probability = { from = 1.0, to = 0.1, count = 0 }\n", &["sweep.feature_probability.count"]),
        config_case("log range from zero", "[sweep]\nsparsity = { from = 0.0, to = 0.9, count = 3 }\n", &["c.toml:6:21", "sweep.sparsity.from", "> 0"]),
        config_case("two density axes", "[sweep]\nsparsity = [0.5]\nfeature_probability = [0.5]\n", &["sweep.sparsity", "not both"]),
        config_case("sweep and instances", "[sweep]\nsparsity = [0.5]\n[[instance]]\nimportance = 1\n", &["instance", "not both"]),
        config_case("swept feature out of range", "[sweep]\nfeature_importance = { feature = 9, values = [1.0] }\n", &["sweep.feature_importance.feature", "0 to 4"]),
        config_case("negative importance", "[[instance]]\nimportance = [1, 1, -1, 1, 1]\n", &["c.toml:6:21", "instance[0].importance[2]"]),
        case("name with a slash", &["train", "c.toml"], &["c.toml:1:8", "`name`", "not allowed"])
            .file("c.toml", format!("name = \"../x\"\n{BASE}").into_bytes()),
        case("absurd size", &["train", "c.toml"], &["GiB", "fewer instances"]).file(
            "c.toml",
            b"[model]\nkind = \"relu-output\"\nfeatures = 1000000\nhidden = 10000\n".to_vec(),
        ),
        // ---- flags
        case("non-numeric --steps", &["train", "c.toml", "--steps", "many"], &["--steps", "many"]).file("c.toml", cfg("")),
        case("zero --steps", &["train", "c.toml", "--steps", "0"], &["--steps"]).file("c.toml", cfg("")),
        case("zero --threads", &["reproduce", "intro", "--threads", "0"], &["--threads", "1..=1024"]),
        case("non-numeric --seed", &["reproduce", "intro", "--seed", "x1"], &["--seed"]),
        case("zero --restarts", &["reproduce", "intro", "--restarts", "0"], &["--restarts"]),
        case("backwards --instances", &["reproduce", "intro", "--instances", "5..3"], &["--instances", "FROM must be below TO"]),
        case("--instances beyond the sweep", &["reproduce", "intro", "--instances", "45..60"], &["train.only_instances", "50 instances"]),
        case("--shard of several experiments", &["reproduce", "uniform", "geometry", "--shard", "1/2"], &["--shard", "one experiment"]),
        case("--shard of an experiment that trains nothing", &["reproduce", "orthogonal", "--shard", "1/2"], &["orthogonal", "trains no models"]),
        case("unknown flag", &["reproduce", "intro", "--lr", "1"], &["--lr"]),
        case("unknown experiment", &["reproduce", "intr0"], &["unknown experiment", "intro"]),
        case("unknown command", &["reproduc"], &["reproduc"]),
        case("missing experiment", &["reproduce"], &["<EXPERIMENTS>"]),
        case("unknown experiment among several", &["reproduce", "intro", "intr0"], &["unknown experiment \"intr0\""]),
        // ---- divergence
        case("diverging training", &["train", "c.toml"], &["diverged", "instance 0", "step"]).file(
            "c.toml",
            b"[model]\nkind = \"linear\"\nfeatures = 5\nhidden = 2\n[train]\nlr = 1e30\nsteps = 50\n[data]\nimportance = 1e12\n".to_vec(),
        ),
        // ---- weights files
        case("not safetensors", &["analyze", "w.safetensors"], &["not a valid safetensors"]).file("w.safetensors", b"not a weights file".to_vec()),
        case("missing weights", &["analyze", "missing.safetensors"], &["missing.safetensors"]),
        case("empty weights file", &["analyze", "w.safetensors"], &["not a valid safetensors"]).file("w.safetensors", vec![]),
        case("truncated weights", &["analyze", "w.safetensors"], &["not a valid safetensors"]).file("w.safetensors", good[..good.len() - 7].to_vec()),
        case("header claiming a huge size", &["analyze", "w.safetensors"], &["not a valid safetensors"]).file("w.safetensors", {
            let mut b = (1u64 << 60).to_le_bytes().to_vec();
            b.extend_from_slice(b"{}");
            b
        }),
        case("tensor offsets beyond the file", &["analyze", "w.safetensors"], &["not a valid safetensors"]).file("w.safetensors", {
            let header = br#"{"W":{"dtype":"F32","shape":[100000,1000,1000],"data_offsets":[0,400000000000000]}}"#;
            let mut b = (header.len() as u64).to_le_bytes().to_vec();
            b.extend_from_slice(header);
            b.extend_from_slice(&[0; 16]);
            b
        }),
        case("integer W", &["analyze", "w.safetensors"], &["dtype", "float"]).file(
            "w.safetensors",
            safetensors_file(&[("W", Dtype::I32, vec![1, 2, 2], vec![0; 16])]),
        ),
        case("NaN in W", &["analyze", "w.safetensors"], &["non-finite", "`W`"]).file(
            "w.safetensors",
            safetensors_file(&[("W", Dtype::F32, vec![1, 2, 2], f32_bytes(&[1.0, f32::NAN, 0.0, 1.0]))]),
        ),
        case("4-D W", &["analyze", "w.safetensors"], &["[instances, features, hidden]"]).file(
            "w.safetensors",
            safetensors_file(&[("W", Dtype::F32, vec![1, 1, 2, 2], f32_bytes(&[1.0; 4]))]),
        ),
        case("bias of the wrong shape", &["analyze", "w.safetensors"], &["`b`", "[1, 3]"]).file(
            "w.safetensors",
            safetensors_file(&[
                ("W", Dtype::F32, vec![1, 3, 2], f32_bytes(&[1.0; 6])),
                ("b", Dtype::F32, vec![1, 2], f32_bytes(&[0.0; 2])),
            ]),
        ),
        case("no W tensor", &["analyze", "w.safetensors"], &["no tensor named `W`", "weights"]).file(
            "w.safetensors",
            safetensors_file(&[("weights", Dtype::F32, vec![3, 2], f32_bytes(&[1.0; 6]))]),
        ),
        case("a folder as weights", &["analyze", "wdir"], &["wdir"]).dir("wdir"),
        // ---- output locations
        case("--out is a file", &["reproduce", "intro", "--out", "taken"], &["--out", "not a folder"]).file("taken", b"x".to_vec()),
        case("--out inside a file", &["reproduce", "intro", "--out", "taken/run"], &["--out", "not a folder"]).file("taken", b"x".to_vec()),
        case("--out not empty", &["reproduce", "intro", "--out", "full"], &["--out", "--force"]).file("full/keep.txt", b"x".to_vec()),
        case("--out unwritable", &["reproduce", "intro", "--out", "/proc/tms-run"], &["--out", "cannot write in /proc"]),
        // ---- resume
        case("resume a folder without a checkpoint", &["resume", "empty"], &["not a resumable run"]).dir("empty"),
        case("resume a finished run", &["resume", "done"], &["finished run"]).file("done/metrics.json", b"{}".to_vec()),
        case("resume a corrupt checkpoint", &["resume", "ck"], &["not a valid checkpoint"]).file("ck/checkpoint.safetensors", b"garbage".to_vec()),
        case("resume weights instead of a checkpoint", &["resume", "ck"], &["format"]).file("ck/checkpoint.safetensors", good_weights()),
    ]
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            }
            out.push(p);
        }
    }
    let mut v = Vec::new();
    walk(dir, &mut v);
    v.sort();
    v
}

#[test]
fn every_bad_input_fails_cleanly_without_output() {
    let all = cases();
    assert!(
        all.len() >= 30,
        "the suite must cover at least 30 bad inputs"
    );
    let mut failures = Vec::new();
    for case in all {
        let dir = tempfile::tempdir().unwrap();
        for d in &case.dirs {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        for (name, content) in &case.files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        let before = listing(dir.path());
        let o = tms(&case.args, dir.path());
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        let mut problems = Vec::new();
        if o.status.success() {
            problems.push("was accepted".to_string());
        }
        if err.contains("panicked") {
            problems.push("panicked".into());
        }
        if err.lines().count() != 1 || !err.starts_with("error") {
            problems.push("message is not one line starting with `error`".into());
        }
        for e in &case.expect {
            if !err.contains(e) {
                problems.push(format!("message lacks {e:?}"));
            }
        }
        if listing(dir.path()) != before {
            problems.push("created files".into());
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {} — stderr: {err:?}",
                case.name,
                problems.join(", ")
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
