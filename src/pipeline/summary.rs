//! The terminal summary of a run: one line per instance, then the verdict.

use super::figures::panel_title;
use super::RunResult;
use crate::output::records::{describe_outcomes, InstanceRecord};

/// A plain-text table of the run, one line per instance, for the terminal.
pub fn summary_table(run: &RunResult) -> String {
    let n = run.weights.features;
    let show_restarts = run.records.iter().any(|r| r.restart > 0);
    // Columns for the hidden L1 penalty and the adversarial radius, only in runs that use them.
    let show_l1 = run.records.iter().any(|r| r.hidden_l1 > 0.0);
    let show_radius = run.records.iter().any(|r| r.adversarial_radius > 0.0);
    let extra_cells = |l1: String, radius: String| {
        let mut cells = String::new();
        if show_l1 {
            cells.push_str(&format!("{l1:>8}  "));
        }
        if show_radius {
            cells.push_str(&format!("{radius:>8}  "));
        }
        cells
    };
    if run.records.is_empty() {
        // An experiment that trains no toy model: only its verdict.
        return run.verdict.as_ref().map_or(String::new(), verdict_lines);
    }
    let mut out = format!(
        "{:>5}  {:>7}  {}{:>10}  {:>11}  {:>6}  {}\n",
        "inst",
        "S",
        extra_cells("λ".into(), "attack ε".into()),
        "loss",
        "represented",
        "D*",
        "geometry"
    );
    let rows: Vec<&InstanceRecord> = run.records.iter().collect();
    let limit = 40;
    for (k, r) in rows.iter().enumerate() {
        if rows.len() > limit && k == limit / 2 {
            out.push_str(&format!(
                "  ... {} more instances (all in metrics.json)\n",
                rows.len() - limit
            ));
        }
        if rows.len() > limit && k >= limit / 2 && k < rows.len() - limit / 2 {
            continue;
        }
        // "–" for weights analysed without their training data, "mixed" for unequal p_i.
        let s = match (&r.feature_probability, r.common_sparsity()) {
            (None, _) => "–".into(),
            (Some(_), Some(s)) => format!("{s:.3}"),
            (Some(_), None) => "mixed".into(),
        };
        let loss = r.final_loss.map_or("-".into(), |l| format!("{l:.3e}"));
        let mark = if show_restarts && r.selected {
            " *"
        } else {
            ""
        };
        out.push_str(&format!(
            "{:>5}  {:>7}  {}{:>10}  {:>11}  {:>6.3}  {}{}\n",
            r.index,
            s,
            extra_cells(
                format!("{}", r.hidden_l1),
                format!("{}", r.adversarial_radius)
            ),
            loss,
            format!("{}/{}", r.represented, n),
            r.dimensions_per_feature,
            r.geometry,
            mark
        ));
    }
    if show_restarts {
        out.push_str(
            "  * lowest-loss restart of its sweep point (used by figures and the verdict)\n",
        );
        let points: Vec<&InstanceRecord> = run
            .records
            .iter()
            .filter(|r| !r.restart_outcomes.is_empty())
            .collect();
        if !points.is_empty() {
            out.push_str("\nwhat the restarts reached, per sweep point (best loss of each):\n");
        }
        for (k, r) in points.iter().enumerate() {
            if points.len() > limit && k == limit / 2 {
                out.push_str(&format!(
                    "  ... {} more sweep points (all in metrics.json)\n",
                    points.len() - limit
                ));
            }
            if points.len() > limit && k >= limit / 2 && k < points.len() - limit / 2 {
                continue;
            }
            out.push_str(&format!(
                "  {}: {}\n",
                panel_title(r),
                describe_outcomes(&r.restart_outcomes)
            ));
        }
    }
    if let Some(v) = &run.verdict {
        out.push('\n');
        out.push_str(&verdict_lines(v));
    }
    out
}

/// The checks of a verdict and its outcome, one block each.
fn verdict_lines(v: &crate::analysis::Verdict) -> String {
    let mut out = String::new();
    for c in &v.checks {
        out.push_str(&format!(
            "  [{}] {}\n        measured: {}\n        expected: {}\n",
            if c.passed { "pass" } else { "FAIL" },
            c.name,
            c.measured,
            c.expected
        ));
    }
    out.push_str(if v.reproduced {
        "\nverdict: REPRODUCED\n"
    } else {
        "\nverdict: NOT REPRODUCED\n"
    });
    out
}
