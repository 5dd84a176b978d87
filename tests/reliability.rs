//! Interruptions, resumption, sharding and determinism, through the binary.

mod common;

use common::tms;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tms::output::weights::Weights;

fn spawn(args: &[&str], cwd: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tms"))
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tms binary starts")
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}

/// Wait until `path` exists (or time out).
fn wait_for(path: &Path, limit: Duration) {
    let start = Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < limit, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn weights(dir: &Path) -> Weights {
    Weights::load(&dir.join("weights.safetensors")).unwrap()
}

/// Several seconds of training on two cores (3.4 s on an AVX-512 machine, where 1,500 steps
/// finished before the tests' signals arrived).
const LONG: &str = r#"
name = "long"
[model]
kind = "relu-output"
features = 100
hidden = 20
[train]
steps = 8000
log_points = 300
[sweep]
sparsity = [0.0, 0.95]
"#;

/// The same length, with two correlated pairs and an anticorrelated pair among independent
/// features, and snapshots of the weights during training.
const SETS: &str = r#"
name = "sets"
[model]
kind = "relu-output"
features = 100
hidden = 20
[train]
steps = 8000
log_points = 300
snapshots = { count = 30 }
[data]
[[data.sets]]
kind = "correlated"
features = [0, 1]
[[data.sets]]
kind = "correlated"
features = [2, 3]
[[data.sets]]
kind = "anticorrelated"
features = [4, 5]
[sweep]
sparsity = [0.0, 0.95]
"#;

/// A fixed dataset of 3000 rows, visited in shuffled minibatches of 1024 (the last of each
/// epoch shorter).
const DATASET: &str = r#"
name = "dataset"
[model]
kind = "relu-output"
features = 100
hidden = 20
[train]
steps = 8000
log_points = 300
[data]
dataset = { rows = 3000, normalize = true }
[sweep]
sparsity = [0.0, 0.95]
"#;

#[test]
fn interrupted_runs_resume_bit_identically() {
    interrupt_and_resume(LONG);
}

#[test]
fn runs_with_feature_sets_and_snapshots_resume_bit_identically() {
    let d = interrupt_and_resume(SETS);
    assert_eq!(
        std::fs::read(d.path().join("full/snapshots.safetensors")).unwrap(),
        std::fs::read(d.path().join("part/snapshots.safetensors")).unwrap()
    );
}

#[test]
fn runs_on_a_fixed_dataset_resume_bit_identically() {
    let d = interrupt_and_resume(DATASET);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("part/metrics.json")).unwrap())
            .unwrap();
    assert!(m["instances"][1]["train_set_loss"].as_f64().is_some());
}

/// Train `config` once straight through (`full`) and once with a Ctrl-C, a resume, a SIGTERM
/// and a resume (`part`); the weights and loss curves must be equal.
fn interrupt_and_resume(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("c.toml"), config).unwrap();
    let o = tms(&["train", "c.toml", "--out", "full", "-q"], d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Ctrl-C once a checkpoint shows the run is under way (not after a fixed sleep, which a
    // fast machine outruns): a resumable checkpoint, exit 130.
    let child = spawn(
        &[
            "train",
            "c.toml",
            "--out",
            "part",
            "--checkpoint-every",
            "1",
        ],
        d,
    );
    wait_for(
        &d.join("part/checkpoint.safetensors"),
        Duration::from_secs(60),
    );
    signal(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("tms resume part"), "{err}");
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("part/status.json")).unwrap()).unwrap();
    assert_eq!(status["status"], "interrupted");
    assert!(!d.join("part/weights.safetensors").exists());

    // Resume, and stop it again with SIGTERM.
    let child = spawn(&["resume", "part", "--checkpoint-every", "0"], d);
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    // It may have finished before the signal on a fast machine; both are fine.
    assert!(matches!(out.status.code(), Some(130) | Some(0)));

    // Finish; the weights and the loss curve equal the uninterrupted run's exactly.
    if out.status.code() == Some(130) {
        let o = tms(&["resume", "part", "-q"], d);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let (a, b) = (weights(&d.join("full")), weights(&d.join("part")));
    assert_eq!(a.w, b.w);
    assert_eq!(a.b, b.b);
    assert_eq!(
        std::fs::read(d.join("full/loss.csv")).unwrap(),
        std::fs::read(d.join("part/loss.csv")).unwrap()
    );
    assert!(!d.join("part/checkpoint.safetensors").exists());
    dir
}

#[test]
fn a_killed_run_keeps_its_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("c.toml"), LONG).unwrap();
    // SIGKILL cannot be caught: only the periodic checkpoints (every second here) survive it.
    let mut child = spawn(
        &[
            "train",
            "c.toml",
            "--out",
            "run2",
            "--checkpoint-every",
            "1",
        ],
        d,
    );
    wait_for(
        &d.join("run2/checkpoint.safetensors"),
        Duration::from_secs(30),
    );
    signal(&child, "-KILL");
    let _ = child.wait();
    // A kill loses the work since the checkpoint, nothing else; no partial folder is left.
    assert!(d.join("run2/status.json").exists());
    let o = tms(&["resume", "run2", "-q"], d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = tms(&["train", "c.toml", "--out", "full", "-q"], d);
    assert!(o.status.success());
    assert_eq!(weights(&d.join("full")).w, weights(&d.join("run2")).w);
}

#[test]
fn a_subset_of_instances_trains_to_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = tms(&["reproduce", "intro", "--out", "all", "-q"], d);
    assert!(o.status.success());
    let o = tms(
        &[
            "reproduce",
            "intro",
            "--instances",
            "3..5",
            "--out",
            "part",
            "-q",
        ],
        d,
    );
    // The verdict needs the whole sweep: a shard is not judged (exit 0; `tms merge` judges).
    assert_eq!(o.status.code(), Some(0));
    let (all, part) = (weights(&d.join("all")), weights(&d.join("part")));
    assert_eq!(part.instances, 2);
    assert_eq!(part.instance_w(0), all.instance_w(3));
    assert_eq!(part.instance_w(1), all.instance_w(4));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("part/metrics.json")).unwrap()).unwrap();
    assert_eq!(m["instances"][0]["index"], 3);
    assert_eq!(m["instances"][1]["index"], 4);
    // The shard's config.toml records the range, so it reproduces the shard.
    let o = tms(&["train", "part/config.toml", "--out", "again", "-q"], d);
    assert!(o.status.success());
    assert_eq!(weights(&d.join("again")).w, part.w);
}

#[test]
fn thread_count_does_not_change_results() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (threads, out) in [("1", "one"), ("2", "two"), ("3", "three")] {
        let o = tms(
            &[
                "reproduce",
                "intro",
                "--threads",
                threads,
                "--out",
                out,
                "-q",
            ],
            d,
        );
        assert!(o.status.success());
    }
    let one = weights(&d.join("one"));
    assert_eq!(one.w, weights(&d.join("two")).w);
    assert_eq!(one.w, weights(&d.join("three")).w);
    // Not only the tensors: the files are byte-identical (sorted header, same metadata).
    let bytes = |dir: &str| std::fs::read(d.join(dir).join("weights.safetensors")).unwrap();
    assert_eq!(bytes("one"), bytes("two"));
}

/// `tms sae` on a toy model's activations, stopped by Ctrl-C after its first periodic
/// checkpoint and finished by `tms resume`, writes the same SAEs as a run straight through.
#[test]
fn an_interrupted_sae_run_resumes_to_the_same_saes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("toy.toml"),
        "name = \"toy\"\n[model]\nkind = \"relu-output\"\nfeatures = 12\nhidden = 4\n\
         [train]\nsteps = 300\n[data]\nfeature_probability = 0.05\n",
    )
    .unwrap();
    let o = tms(&["train", "toy.toml", "--out", "toy", "-q"], d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Three SAEs of 64 latents for 60,000 steps: a few seconds.
    let sae = |out: &'static str, every: &'static str| {
        [
            "sae",
            "--activations",
            "toy",
            "--latents",
            "64",
            "--steps",
            "60000",
            "--out",
            out,
            "--checkpoint-every",
            every,
            "-q",
        ]
    };
    let child = spawn(&sae("part", "1"), d);
    wait_for(
        &d.join("part/sae_checkpoint.safetensors"),
        Duration::from_secs(60),
    );
    signal(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("tms resume part"), "{err}");
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("part/status.json")).unwrap()).unwrap();
    assert_eq!(status["status"], "interrupted");
    assert!(d.join("part/sae.toml").exists());

    let o = tms(&["resume", "part", "-q"], d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!d.join("part/sae_checkpoint.safetensors").exists());
    let o = tms(&sae("full", "0"), d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let names: Vec<_> = std::fs::read_dir(d.join("full/saes"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 3);
    for name in names {
        let file = Path::new("saes").join(name).join("sae_weights.safetensors");
        assert_eq!(
            std::fs::read(d.join("full").join(&file)).unwrap(),
            std::fs::read(d.join("part").join(&file)).unwrap(),
            "{}",
            file.display()
        );
    }
    let curves = |run: &str| {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join(run).join("metrics.json")).unwrap())
                .unwrap();
        m["results"]["curves"].clone()
    };
    assert_eq!(curves("full"), curves("part"));

    // A damaged checkpoint is refused with the file named, and left as it was.
    let child = spawn(&sae("again", "1"), d);
    wait_for(
        &d.join("again/sae_checkpoint.safetensors"),
        Duration::from_secs(60),
    );
    signal(&child, "-KILL");
    let _ = child.wait_with_output();
    let file = d.join("again/sae_checkpoint.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let o = tms(&["resume", "again", "-q"], d);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("sae_checkpoint.safetensors") && err.contains("not a valid SAE checkpoint"),
        "{err}"
    );
    assert!(file.exists());
}
