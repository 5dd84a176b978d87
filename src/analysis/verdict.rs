//! Verdicts: an experiment's "reproduced when" as explicit checks with the numbers measured.

use serde::{Deserialize, Serialize};

/// One check of a paper claim against a measurement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// What is checked, in words.
    pub name: String,
    /// Whether the measurement meets the expectation.
    pub passed: bool,
    /// What was measured.
    pub measured: String,
    /// What the paper leads us to expect.
    pub expected: String,
}

/// Whether an experiment reproduced the paper, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// True when every check passed.
    pub reproduced: bool,
    /// The checks, in order.
    pub checks: Vec<Check>,
}

impl Verdict {
    /// A verdict from its checks (reproduced iff all passed and there is at least one).
    pub fn from_checks(checks: Vec<Check>) -> Self {
        Verdict {
            reproduced: !checks.is_empty() && checks.iter().all(|c| c.passed),
            checks,
        }
    }
}

/// Format numbers compactly for `measured` strings.
pub fn fmt_list(values: &[f64], digits: usize) -> String {
    let items: Vec<String> = values.iter().map(|v| format!("{v:.digits$}")).collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduced_needs_every_check() {
        let ok = Check {
            name: "a".into(),
            passed: true,
            measured: "1".into(),
            expected: "1".into(),
        };
        let bad = Check {
            passed: false,
            ..ok.clone()
        };
        assert!(Verdict::from_checks(vec![ok.clone()]).reproduced);
        assert!(!Verdict::from_checks(vec![ok, bad]).reproduced);
        assert!(!Verdict::from_checks(vec![]).reproduced);
        assert_eq!(fmt_list(&[1.0, 0.25], 2), "[1.00, 0.25]");
    }
}
