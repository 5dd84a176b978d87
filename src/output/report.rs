//! The report: one self-contained HTML page over a folder of runs.
//!
//! A summary table (experiment, the paper's claim, our measurement, reproduced or not), then a
//! section per run with its checks and its figures inlined as SVG. No network access, no
//! external files: the page opens from disk. Folders that cannot be reported (no metrics,
//! damaged metrics, an unfinished run) are listed with the reason.

use anyhow::Context;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::records::{describe_outcomes, MetricsFile};

/// A run folder that made it into the report.
pub struct Entry {
    /// Folder name.
    pub name: String,
    /// Its metrics.
    pub metrics: MetricsFile,
    /// (figure name, SVG text or the reason it is missing).
    pub figures: Vec<(String, Result<String, String>)>,
}

/// A folder left out of the report, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    /// Folder name.
    pub name: String,
    /// Why it was left out.
    pub reason: String,
}

/// Read every run folder directly under `dir` (and `dir` itself when it is one), in paper order
/// (from each `metrics.json`), then by name.
pub fn collect(dir: &Path) -> anyhow::Result<(Vec<Entry>, Vec<Skipped>)> {
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    if dir.join("metrics.json").exists() {
        folders.insert(0, dir.to_path_buf());
    }
    folders.sort();
    let (mut entries, mut skipped) = (Vec::new(), Vec::new());
    for folder in folders {
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| folder.display().to_string());
        match read_entry(&folder, &name) {
            Ok(e) => entries.push(e),
            Err(reason) => skipped.push(Skipped { name, reason }),
        }
    }
    entries.sort_by_key(|e| {
        let order = e.metrics.paper.as_ref().map_or(usize::MAX, |p| p.order);
        (order, e.name.clone())
    });
    Ok((entries, skipped))
}

fn read_entry(folder: &Path, name: &str) -> Result<Entry, String> {
    let metrics_path = folder.join("metrics.json");
    if !metrics_path.exists() {
        if super::checkpoint::is_checkpoint(folder) {
            return Err(format!(
                "unfinished run (a checkpoint); finish it with `tms resume {}`",
                folder.display()
            ));
        }
        return Err("no metrics.json: not a run folder".into());
    }
    let text = std::fs::read_to_string(&metrics_path)
        .map_err(|e| format!("cannot read metrics.json: {e}"))?;
    let metrics: MetricsFile =
        serde_json::from_str(&text).map_err(|e| format!("metrics.json is damaged: {e}"))?;
    let figures = metrics
        .figures
        .iter()
        .map(|f| {
            let svg = std::fs::read_to_string(folder.join(format!("{f}.svg")))
                .map_err(|e| format!("{f}.svg: {e}"))
                .and_then(|s| {
                    if s.trim_start().starts_with("<svg") && s.contains("</svg>") {
                        Ok(s)
                    } else {
                        Err(format!("{f}.svg is not an SVG document"))
                    }
                });
            (f.clone(), svg)
        })
        .collect();
    Ok(Entry {
        name: name.to_string(),
        metrics,
        figures,
    })
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page.
pub fn render(title: &str, entries: &[Entry], skipped: &[Skipped]) -> String {
    let mut h = String::new();
    let total_figures: usize = entries.iter().map(|e| e.figures.len()).sum();
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{t}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; color: #222; padding: 0 1em; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; font-size: 14px; }}
th {{ background: #f4f4f4; }}
.pass {{ color: #1a7f37; font-weight: bold; }} .fail {{ color: #cf222e; font-weight: bold; }}
.none {{ color: #666; }}
figure {{ margin: 1em 0; overflow-x: auto; }} figure svg {{ max-width: 100%; height: auto; }}
section {{ border-top: 2px solid #ddd; margin-top: 2em; }}
code {{ background: #f4f4f4; padding: 0 3px; }}
</style></head>
<body data-figures-expected="{n}" data-figures-rendered="pending">
<h1>{t}</h1>
<p>Reproductions of Elhage et al. (2022), <i>Toy Models of Superposition</i>, by <code>tms</code>.
Each experiment's verdict is computed from its trained weights; the numbers measured are shown
beside what the paper leads us to expect. <span id="render-status"></span></p>
<h2>Summary</h2>
<table><tr><th>experiment</th><th>paper's claim</th><th>our measurement</th><th>reproduced</th></tr>
"#,
        t = esc(title),
        n = total_figures
    );
    for e in entries {
        let claim = e.metrics.paper.as_ref().map_or("—", |p| p.claim.as_str());
        let (measured, status) = match &e.metrics.verdict {
            Some(v) => (
                v.checks
                    .iter()
                    .map(|c| format!("{} {}", if c.passed { "✓" } else { "✗" }, esc(&c.measured)))
                    .collect::<Vec<_>>()
                    .join("<br>"),
                if v.reproduced {
                    r#"<span class="pass">yes</span>"#
                } else {
                    r#"<span class="fail">no</span>"#
                },
            ),
            None => ("—".to_string(), r#"<span class="none">no claim</span>"#),
        };
        let _ = writeln!(
            h,
            "<tr><td><a href=\"#{id}\">{name}</a></td><td>{claim}</td><td>{measured}</td><td>{status}</td></tr>",
            id = esc(&e.name),
            name = esc(&e.name),
            claim = esc(claim),
        );
    }
    h.push_str("</table>\n");
    if !skipped.is_empty() {
        h.push_str("<h2>Skipped folders</h2><ul>\n");
        for s in skipped {
            let _ = writeln!(
                h,
                "<li><code>{}</code>: {}</li>",
                esc(&s.name),
                esc(&s.reason)
            );
        }
        h.push_str("</ul>\n");
    }
    for e in entries {
        let m = &e.metrics;
        let paper = m.paper.as_ref();
        let _ = writeln!(
            h,
            "<section id=\"{id}\"><h2>{name}{section}</h2>",
            id = esc(&e.name),
            name = esc(&e.name),
            section = paper.map_or(String::new(), |p| format!(
                " <small>({})</small>",
                esc(&p.section)
            ))
        );
        if let Some(p) = paper {
            let _ = writeln!(h, "<p><b>Paper:</b> {}</p>", esc(&p.claim));
        }
        let mut settings = format!(
            "{} model, n = {}, m = {}, {} instances",
            m.model.as_deref().unwrap_or("unknown"),
            m.features,
            m.hidden,
            m.instances.len()
        );
        if let Some(t) = &m.training {
            let _ = write!(
                settings,
                "; {} steps, batch {}, {}, seed {}; trained in {:.1} s ({} kernel)",
                t.steps, t.batch_size, t.optimizer, t.seed, t.seconds, t.kernel
            );
        }
        let _ = writeln!(h, "<p><b>Settings:</b> {}. Files: <a href=\"{d}/metrics.json\">metrics.json</a>, <a href=\"{d}/weights.safetensors\">weights.safetensors</a>, <a href=\"{d}/config.toml\">config.toml</a>.</p>", esc(&settings), d = esc(&e.name));
        if let Some(v) = &m.verdict {
            h.push_str(
                "<table><tr><th>check</th><th>measured</th><th>expected</th><th></th></tr>\n",
            );
            for c in &v.checks {
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&c.name),
                    esc(&c.measured),
                    esc(&c.expected),
                    if c.passed {
                        r#"<span class="pass">pass</span>"#
                    } else {
                        r#"<span class="fail">FAIL</span>"#
                    }
                );
            }
            h.push_str("</table>\n");
        }
        let points: Vec<_> = m
            .instances
            .iter()
            .filter(|r| !r.restart_outcomes.is_empty())
            .collect();
        if !points.is_empty() {
            h.push_str("<p><b>What the restarts reached</b> (per sweep point; best loss of each geometry):</p>\n<table><tr><th>instance</th><th>1−S</th><th>restarts</th></tr>\n");
            for r in points {
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td>{:.4}</td><td>{}</td></tr>",
                    r.index,
                    r.density(),
                    esc(&describe_outcomes(&r.restart_outcomes))
                );
            }
            h.push_str("</table>\n");
        }
        for (name, svg) in &e.figures {
            match svg {
                Ok(svg) => {
                    let _ = writeln!(
                        h,
                        "<figure class=\"tms-figure\" data-name=\"{n}\">{svg}<figcaption>{n}</figcaption></figure>",
                        n = esc(name)
                    );
                }
                Err(reason) => {
                    let _ = writeln!(
                        h,
                        "<p class=\"fail\">figure {}: {}</p>",
                        esc(name),
                        esc(reason)
                    );
                }
            }
        }
        h.push_str("</section>\n");
    }
    // Records whether every inline figure was laid out with a non-empty size (read by the
    // browser test; harmless for a reader).
    h.push_str(
        r#"<script>
window.addEventListener('load', function () {
  var figs = document.querySelectorAll('figure.tms-figure svg');
  var ok = 0;
  figs.forEach(function (s) { var b = s.getBoundingClientRect(); if (b.width > 0 && b.height > 0 && s.childElementCount > 0) ok++; });
  document.body.setAttribute('data-figures-rendered', String(ok));
  document.getElementById('render-status').textContent = ok + ' of ' + figs.length + ' figures rendered.';
});
</script>
</body></html>
"#,
    );
    h
}

/// Build `dir/index.html` from the run folders in `dir` (written atomically). Returns the
/// page's path, how many runs it shows, and what it skipped.
pub fn write_report(dir: &Path) -> anyhow::Result<(PathBuf, usize, Vec<Skipped>)> {
    let (entries, skipped) = collect(dir)?;
    let title = format!(
        "tms report — {}",
        dir.file_name()
            .map_or("runs".into(), |n| n.to_string_lossy().into_owned())
    );
    let page = render(&title, &entries, &skipped);
    let path = dir.join("index.html");
    let tmp = dir.join(format!(".index.html.partial-{}", std::process::id()));
    std::fs::write(&tmp, page).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok((path, entries.len(), skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_and_unfinished_runs_are_listed_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("broken")).unwrap();
        std::fs::write(dir.path().join("broken/metrics.json"), "{not json").unwrap();
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        std::fs::create_dir(dir.path().join("ck")).unwrap();
        std::fs::write(dir.path().join("ck/checkpoint.safetensors"), "x").unwrap();
        let (path, shown, skipped) = write_report(dir.path()).unwrap();
        assert_eq!(shown, 0);
        assert_eq!(skipped.len(), 3);
        let html = std::fs::read_to_string(path).unwrap();
        assert!(html.contains("metrics.json is damaged"));
        assert!(html.contains("unfinished run"));
        assert!(html.contains("not a run folder"));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
