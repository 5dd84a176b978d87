//! Every registered experiment, run as a user runs it (`tms reproduce all --profile quick`),
//! must reproduce the paper's result; the report must render every figure in a browser.

mod common;

use common::tms;
use std::path::Path;
use std::process::Command;

use tms::output::records::MetricsFile;

#[test]
fn reproduce_all_quick_reproduces_every_experiment_and_renders_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let o = tms(
        &[
            "reproduce",
            "all",
            "--profile",
            "quick",
            "--out",
            "all",
            "-q",
        ],
        dir.path(),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let all = dir.path().join("all");
    for e in tms::experiments::registry() {
        let m: MetricsFile =
            serde_json::from_slice(&std::fs::read(all.join(e.name).join("metrics.json")).unwrap())
                .unwrap();
        let v = m.verdict.expect("experiments have verdicts");
        assert!(v.reproduced, "{}: {:#?}", e.name, v.checks);
        assert!(!m.figures.is_empty(), "{} has no figures", e.name);
    }
    // `geometry` has the same config as `uniform`: judged on the same training, not retrained.
    assert!(out.contains("geometry: same config as uniform"), "{out}");
    assert_eq!(
        std::fs::read(all.join("uniform/weights.safetensors")).unwrap(),
        std::fs::read(all.join("geometry/weights.safetensors")).unwrap()
    );
    let html = std::fs::read_to_string(all.join("index.html")).unwrap();
    assert!(html.contains("<h2>Summary</h2>"));
    assert_eq!(
        html.matches("class=\"tms-figure\"").count(),
        expected_figures(&all)
    );
    render_in_chromium(&all.join("index.html"), expected_figures(&all));

    // The report can be rebuilt from the folders, and lists a damaged run instead of failing.
    std::fs::create_dir(all.join("damaged")).unwrap();
    std::fs::write(all.join("damaged/metrics.json"), "{").unwrap();
    let o = tms(&["report", "all"], dir.path());
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("skipped damaged"));
    let html = std::fs::read_to_string(all.join("index.html")).unwrap();
    assert!(html.contains("metrics.json is damaged"));
}

fn expected_figures(all: &Path) -> usize {
    tms::experiments::registry()
        .iter()
        .map(|e| {
            let m: MetricsFile = serde_json::from_slice(
                &std::fs::read(all.join(e.name).join("metrics.json")).unwrap(),
            )
            .unwrap();
            m.figures.len()
        })
        .sum()
}

/// Open the page in headless Chromium, let its script count the figures laid out with a
/// non-empty size, and read the count back from the DOM.
fn render_in_chromium(page: &Path, expected: usize) {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(chromium) = chromium else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install Chromium (see .ci/run)"
        );
        eprintln!("chromium not installed: skipping the browser check");
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let o = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
            &format!("--user-data-dir={}", profile.path().display()),
            "--dump-dom",
            &format!("file://{}", page.canonicalize().unwrap().display()),
        ])
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&o.stdout);
    let marker = format!("data-figures-rendered=\"{expected}\"");
    assert!(
        dom.contains(&marker),
        "chromium did not render all {expected} figures; body: {}; stderr: {}",
        dom.lines()
            .find(|l| l.contains("<body"))
            .unwrap_or("(no body)"),
        String::from_utf8_lossy(&o.stderr)
    );
}
