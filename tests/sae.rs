//! `tms sae` from the command line: a grid on synthetic ground truth, SAEs on a toy-model run's
//! activations, bad input, and the saved SAEs read back by Python (numpy + safetensors only)
//! giving tms's reconstruction.

mod common;

use std::path::Path;

use common::{stderr, stdout, tms};

const GRID: &str = "[ground_truth]
features = 32
dim = 16
mean_active = 3

[sae]
latents = [16, 64]
penalties = [0.01, 0.3]

[train]
steps = 300
batch = 128
eval_rows = 512
";

#[test]
fn a_grid_on_synthetic_features_writes_scores_and_saelens_folders() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("grid.toml"), GRID).unwrap();
    let o = tms(&["sae", "grid.toml", "--out", "run", "-q"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("in0-d64-l1-0.3") && out.contains("MMCS"),
        "{out}"
    );
    let run = dir.path().join("run");
    for name in [
        "in0-d16-l1-0.01",
        "in0-d16-l1-0.3",
        "in0-d64-l1-0.01",
        "in0-d64-l1-0.3",
    ] {
        let cfg: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(run.join(format!("saes/{name}/cfg.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(cfg["architecture"], "standard");
        assert_eq!(cfg["d_in"], 16);
        let bytes =
            std::fs::read(run.join(format!("saes/{name}/sae_weights.safetensors"))).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let d_sae = cfg["d_sae"].as_u64().unwrap() as usize;
        assert_eq!(st.tensor("W_enc").unwrap().shape(), &[16, d_sae]);
        assert_eq!(st.tensor("W_dec").unwrap().shape(), &[d_sae, 16]);
    }
    let truth = std::fs::read(run.join("ground_truth.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&truth).unwrap();
    assert_eq!(st.tensor("directions").unwrap().shape(), &[32, 16]);
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    let saes = metrics["results"]["saes"].as_array().unwrap();
    assert_eq!(saes.len(), 4);
    // The ground-truth-free check links each size to the next-larger one.
    assert!(saes[0]["metrics"]["mmcs_to_larger"].is_number());
    assert!(run.join("grid.svg").exists() && run.join("sae.toml").exists());

    // The saved config trains the same SAEs again, bit for bit.
    let o = tms(&["sae", "run/sae.toml", "--out", "again", "-q"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    for name in ["in0-d16-l1-0.01", "in0-d64-l1-0.3"] {
        let file = format!("saes/{name}/sae_weights.safetensors");
        assert_eq!(
            std::fs::read(run.join(&file)).unwrap(),
            std::fs::read(dir.path().join("again").join(&file)).unwrap()
        );
    }
}

#[test]
fn saes_train_on_a_toy_models_activations() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("toy.toml"),
        "name = \"toy\"\n[model]\nkind = \"relu-output\"\nfeatures = 12\nhidden = 4\n[train]\nsteps = 300\n\
         [data]\nfeature_probability = 0.05\n",
    )
    .unwrap();
    let o = tms(&["train", "toy.toml", "--out", "toy", "-q"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let o = tms(
        &[
            "sae",
            "--activations",
            "toy",
            "--latents",
            "24",
            "--steps",
            "200",
            "--out",
            "s",
            "-q",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("instance 0"), "{}", stdout(&o));
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("s/metrics.json")).unwrap())
            .unwrap();
    let input = &metrics["results"]["inputs"][0];
    assert_eq!(input["dim"], 4);
    assert!(
        input["toy"]["represented"].as_array().unwrap().len()
            == input["features"].as_u64().unwrap() as usize
    );
    assert!(dir.path().join("s/recovered.svg").exists());
}

#[test]
fn bad_sae_input_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str); 3] = [
        ("[ground_truth]\nfeatures = 0\n", "features must be"),
        ("[sae]\nlatents = [8]\n", "exactly one input"),
        ("[ground_truth]\n[train]\nsteps = 0\n", "train.steps"),
    ];
    for (text, want) in cases {
        std::fs::write(dir.path().join("bad.toml"), text).unwrap();
        let o = tms(&["sae", "bad.toml", "-q"], dir.path());
        assert_eq!(o.status.code(), Some(1), "{text}");
        let e = stderr(&o);
        assert!(e.contains(want) && e.contains("bad.toml"), "{text}: {e}");
    }
    // A missing run, and a weights file that is not one.
    let o = tms(&["sae", "--activations", "nowhere", "-q"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nowhere"), "{}", stderr(&o));
    std::fs::write(dir.path().join("junk.safetensors"), b"not a weights file").unwrap();
    let o = tms(
        &["sae", "--activations", "junk.safetensors", "-q"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("activations.run"), "{}", stderr(&o));
    assert!(
        !dir.path().join("runs").exists(),
        "no half-written run folder"
    );
}

/// The saved SAE, read by `tests/python/sae_roundtrip.py` with numpy and safetensors, gives
/// the reconstruction tms computes. Runs where `TMS_PYTHON` names a Python with both
/// packages (`.ci/run` makes one); elsewhere it says it skipped.
#[test]
fn python_reads_the_saved_sae_and_reconstructs_the_same() {
    let Ok(python) = std::env::var("TMS_PYTHON") else {
        eprintln!("skipped: set TMS_PYTHON to a python with numpy and safetensors");
        return;
    };
    use tms::sae::model::{Sae, SaeKind, Workspace};
    let dir = tempfile::tempdir().unwrap();
    let (d, n, rows) = (8, 20, 64);
    for (kind, name) in [
        (SaeKind::L1 { alpha: 0.1 }, "l1"),
        (SaeKind::TopK { k: 3 }, "topk"),
    ] {
        let mut sae = Sae::new(d, n, kind, 5, 0);
        // Non-zero biases, so that the test checks where they enter.
        sae.params
            .b_enc
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = 0.01 * i as f32 - 0.05);
        sae.params
            .b_dec
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = 0.02 * i as f32);
        let x: Vec<f32> = (0..rows * d)
            .map(|i| ((i * 37 % 101) as f32 / 101.0) - 0.3)
            .collect();
        let mut ws = Workspace::default();
        sae.forward(&x, &mut ws, false);
        let folder = dir.path().join(name);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("cfg.json"), tms::sae::output::saelens_cfg(&sae)).unwrap();
        std::fs::write(
            folder.join("sae_weights.safetensors"),
            tms::sae::output::saelens_weights(&sae).unwrap(),
        )
        .unwrap();
        let check = dir.path().join(format!("{name}-check.safetensors"));
        write_check(&check, &x, &ws.x_hat, rows, d);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/sae_roundtrip.py");
        let o = std::process::Command::new(&python)
            .arg(&script)
            .arg(&folder)
            .arg(&check)
            .output()
            .expect("python runs");
        assert!(
            o.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        // A wrong reconstruction must be caught.
        let wrong: Vec<f32> = ws.x_hat.iter().map(|v| v + 0.1).collect();
        write_check(&check, &x, &wrong, rows, d);
        let o = std::process::Command::new(&python)
            .arg(&script)
            .arg(&folder)
            .arg(&check)
            .output()
            .expect("python runs");
        assert_eq!(o.status.code(), Some(1), "{name}: a wrong x_hat passed");
    }
}

fn write_check(path: &Path, x: &[f32], x_hat: &[f32], rows: usize, d: usize) {
    use safetensors::tensor::TensorView;
    let bytes = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    let (xb, hb) = (bytes(x), bytes(x_hat));
    let tensors = vec![
        (
            "x",
            TensorView::new(safetensors::Dtype::F32, vec![rows, d], &xb).unwrap(),
        ),
        (
            "x_hat",
            TensorView::new(safetensors::Dtype::F32, vec![rows, d], &hb).unwrap(),
        ),
    ];
    std::fs::write(path, safetensors::serialize(tensors, &None).unwrap()).unwrap();
}
