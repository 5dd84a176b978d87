//! Shards and `tms merge`, through the binary: shards trained apart and merged give the run
//! folder a single machine writes (the weights file byte for byte), and a missing, duplicated,
//! overlapping, foreign, damaged or unfinished shard is refused with a message that names it.

mod common;

use common::{stderr, tms};
use std::path::Path;

/// Six instances (three densities × two restarts), a fixed dataset for some, snapshots: every
/// piece of state a merge has to join.
const SWEEP: &str = r#"
name = "sweep"
[model]
kind = "relu-output"
features = 12
hidden = 4
[train]
steps = 400
batch_size = 128
log_points = 20
snapshots = { count = 5 }
[data]
dataset = { rows = 300, normalize = false }
[sweep]
sparsity = [0.0, 0.7, 0.95]
restarts = 2
"#;

fn ok(args: &[&str], d: &Path) {
    let o = tms(args, d);
    assert!(o.status.success(), "tms {args:?}: {}", stderr(&o));
}

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `metrics.json` without its wall-clock fields.
fn metrics(dir: &Path) -> serde_json::Value {
    let mut m: serde_json::Value =
        serde_json::from_slice(&bytes(&dir.join("metrics.json"))).unwrap();
    let t = m["training"].as_object_mut().unwrap();
    t.remove("seconds");
    t.remove("steps_per_second");
    m
}

fn same_run(a: &Path, b: &Path) {
    for file in [
        "weights.safetensors",
        "loss.csv",
        "config.toml",
        "snapshots.safetensors",
    ] {
        if a.join(file).exists() || b.join(file).exists() {
            assert!(
                bytes(&a.join(file)) == bytes(&b.join(file)),
                "{file} differs"
            );
        }
    }
    assert_eq!(metrics(a), metrics(b));
}

#[test]
fn shards_merge_into_the_single_machine_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("sweep.toml"), SWEEP).unwrap();
    ok(&["train", "sweep.toml", "--out", "full", "-q"], d);
    // Three shards of uneven origin: two by --shard, one by --instances.
    ok(
        &["train", "sweep.toml", "--shard", "1/3", "--out", "a", "-q"],
        d,
    );
    ok(
        &["train", "sweep.toml", "--shard", "3/3", "--out", "c", "-q"],
        d,
    );
    ok(
        &[
            "train",
            "sweep.toml",
            "--instances",
            "2..4",
            "--out",
            "b",
            "-q",
        ],
        d,
    );
    assert!(d.join("a/shard.safetensors").is_file());
    ok(&["merge", "c", "a", "b", "--out", "merged", "-q"], d);
    same_run(&d.join("full"), &d.join("merged"));
    assert!(!d.join("merged/shard.safetensors").exists());

    // An experiment: its shards are not judged (exit 0); the merge is, like the full run.
    ok(&["reproduce", "intro", "--out", "intro", "-q"], d);
    for k in ["1/2", "2/2"] {
        let o = tms(
            &[
                "reproduce",
                "intro",
                "--shard",
                k,
                "--out",
                &format!("intro-{}", &k[..1]),
                "-q",
            ],
            d,
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let shard: serde_json::Value =
        serde_json::from_slice(&bytes(&d.join("intro-1/metrics.json"))).unwrap();
    assert!(shard["verdict"].is_null(), "a shard has no verdict");
    ok(
        &["merge", "intro-2", "intro-1", "--out", "intro-merged", "-q"],
        d,
    );
    same_run(&d.join("intro"), &d.join("intro-merged"));
    let merged: serde_json::Value =
        serde_json::from_slice(&bytes(&d.join("intro-merged/metrics.json"))).unwrap();
    assert_eq!(merged["verdict"]["reproduced"], true);
}

#[test]
fn bad_shards_are_refused_by_name_without_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("sweep.toml"), SWEEP).unwrap();
    for (k, out) in [("1/3", "a"), ("2/3", "b"), ("3/3", "c")] {
        ok(
            &["train", "sweep.toml", "--shard", k, "--out", out, "-q"],
            d,
        );
    }
    ok(
        &[
            "train",
            "sweep.toml",
            "--instances",
            "1..3",
            "--out",
            "overlap",
            "-q",
        ],
        d,
    );
    ok(
        &[
            "train",
            "sweep.toml",
            "--shard",
            "2/3",
            "--seed",
            "5",
            "--out",
            "foreign",
            "-q",
        ],
        d,
    );
    ok(&["train", "sweep.toml", "--out", "whole", "-q"], d);
    // Damaged: the shard file cut short.
    std::fs::create_dir(d.join("damaged")).unwrap();
    for f in ["weights.safetensors", "metrics.json", "config.toml"] {
        std::fs::copy(d.join("b").join(f), d.join("damaged").join(f)).unwrap();
    }
    let full = bytes(&d.join("b/shard.safetensors"));
    std::fs::write(d.join("damaged/shard.safetensors"), &full[..full.len() / 2]).unwrap();
    // Unfinished: a checkpoint folder, not a run folder.
    std::fs::create_dir(d.join("unfinished")).unwrap();
    std::fs::write(d.join("unfinished/checkpoint.safetensors"), b"x").unwrap();

    let cases: [(&[&str], &[&str]); 8] = [
        (&["a", "c"], &["instances 2..4", "no shard", "missing"]),
        (&["a", "b", "b", "c"], &["b is given twice"]),
        (&["a", "b", "overlap", "c"], &["both hold instances"]),
        (&["a", "foreign", "c"], &["foreign", "another run", "seed"]),
        (&["a", "damaged", "c"], &["damaged", "shard.safetensors"]),
        (&["a", "unfinished", "c"], &["unfinished", "tms resume"]),
        (
            &["a", "whole"],
            &[
                "whole",
                "shard.safetensors",
                "not the finished run folder of a shard",
            ],
        ),
        (
            &["a", "missing-folder", "c"],
            &["missing-folder", "shard.safetensors"],
        ),
    ];
    for (shards, expect) in cases {
        let mut args = vec!["merge"];
        args.extend_from_slice(shards);
        args.extend_from_slice(&["--out", "merged"]);
        let o = tms(&args, d);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{shards:?}: {err}");
        assert!(!err.contains("panicked"), "{shards:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{shards:?}: one line: {err}");
        for e in expect {
            assert!(err.contains(e), "{shards:?}: {err:?} lacks {e:?}");
        }
        assert!(!d.join("merged").exists(), "{shards:?} wrote output");
    }
    // Shards of more than the instances, and a malformed shard argument.
    let o = tms(&["train", "sweep.toml", "--shard", "1/7", "--out", "x"], d);
    assert!(stderr(&o).contains("at most 6"), "{}", stderr(&o));
    let o = tms(&["train", "sweep.toml", "--shard", "4/3", "--out", "x"], d);
    assert!(stderr(&o).contains("K/N"), "{}", stderr(&o));
    assert!(!d.join("x").exists());
}
