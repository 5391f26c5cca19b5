//! The figures a run measures, printed as they come and as a Markdown table at the end, with
//! registryd / registry:2 ratios and the targets.

use std::time::Duration;

use registry_bench::bounds::Bound;
use registry_bench::human_bytes;
use registry_bench::load::format_micros;

/// How a figure is shown, and which way is better.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Unit {
    /// MB/s (10^6 bytes per second); higher is better.
    MBps,
    /// Requests per second; higher is better.
    PerSec,
    /// A time in microseconds; lower is better.
    Micros,
    /// Bytes of memory; lower is better.
    Bytes,
}

impl Unit {
    fn format(self, value: f64) -> String {
        match self {
            Unit::MBps => format!("{value:.1} MB/s"),
            Unit::PerSec => format!("{}/s", thousands(value.round() as u64)),
            Unit::Micros => format_micros(value.round() as u64),
            Unit::Bytes => human_bytes(value.round() as u64),
        }
    }

    fn higher_is_better(self) -> bool {
        matches!(self, Unit::MBps | Unit::PerSec)
    }
}

pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A target of the issue for one figure.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Goal {
    /// registryd / registry:2 at least this.
    RatioAtLeast(f64),
    /// registryd / registry:2 at most this.
    RatioAtMost(f64),
    /// registryd's own value at most this (in the figure's unit).
    AtMost(f64),
}

struct Figure {
    name: String,
    unit: Unit,
    registryd: Option<f64>,
    registry2: Option<f64>,
    goal: Option<Goal>,
}

impl Figure {
    fn ratio(&self) -> Option<f64> {
        Some(self.registryd? / self.registry2.filter(|v| *v > 0.0)?)
    }

    fn goal_text(&self) -> String {
        match self.goal {
            None => String::new(),
            Some(Goal::RatioAtLeast(x)) => format!("≥ {x}x"),
            Some(Goal::RatioAtMost(x)) => format!("≤ {x}x"),
            Some(Goal::AtMost(x)) => format!("≤ {}", self.unit.format(x)),
        }
    }

    /// `met`, `MISSED`, or empty when there is no goal or no figure to judge.
    fn verdict(&self) -> &'static str {
        let met = match self.goal {
            None => return "",
            Some(Goal::AtMost(x)) => self.registryd.map(|v| v <= x),
            Some(Goal::RatioAtLeast(x)) => self.ratio().map(|r| r >= x),
            Some(Goal::RatioAtMost(x)) => self.ratio().map(|r| r <= x),
        };
        match met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "",
        }
    }

    fn cell(&self, value: Option<f64>) -> String {
        value.map_or_else(|| "—".to_string(), |v| self.unit.format(v))
    }

    fn ratio_text(&self) -> String {
        self.ratio()
            .map_or_else(String::new, |r| format!("{r:.3}x"))
    }

    /// `4.2x faster` / `1.3x slower` as a reader wants it.
    fn better_text(&self) -> String {
        let Some(r) = self.ratio() else {
            return String::new();
        };
        let better = if self.unit.higher_is_better() {
            r
        } else {
            1.0 / r.max(1e-12)
        };
        let (word_better, word_worse) = match self.unit {
            Unit::Bytes => ("less", "more"),
            _ => ("better", "worse"),
        };
        if better >= 1.0 {
            format!("{better:.1}x {word_better}")
        } else {
            format!("{:.1}x {word_worse}", 1.0 / better.max(1e-12))
        }
    }
}

#[derive(Default)]
pub(crate) struct Report {
    figures: Vec<Figure>,
    /// The machine's own limits, when the `bounds` workload ran.
    pub(crate) bounds: Vec<Bound>,
    /// Remarks printed after the table.
    pub(crate) notes: Vec<String>,
}

impl Report {
    pub(crate) fn add(
        &mut self,
        name: &str,
        unit: Unit,
        values: [Option<f64>; 2],
        goal: Option<Goal>,
    ) {
        let figure = Figure {
            name: name.to_string(),
            unit,
            registryd: values[0],
            registry2: values[1],
            goal,
        };
        println!(
            "  {:<44} registryd {:>12}   registry:2 {:>12}   ratio {:>8}  {} {}",
            figure.name,
            figure.cell(figure.registryd),
            figure.cell(figure.registry2),
            figure.ratio_text(),
            figure.goal_text(),
            figure.verdict(),
        );
        self.figures.push(figure);
    }

    pub(crate) fn markdown(&self, compared: bool) -> String {
        let mut out = String::new();
        if compared {
            out.push_str(
                "| figure | registryd | registry:2 | registryd / registry:2 | | target | |\n\
                 |---|---:|---:|---:|---|---|---|\n",
            );
        } else {
            out.push_str("| figure | registryd | target | |\n|---|---:|---|---|\n");
        }
        for f in &self.figures {
            if compared {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} |\n",
                    f.name,
                    f.cell(f.registryd),
                    f.cell(f.registry2),
                    f.ratio_text(),
                    f.better_text(),
                    f.goal_text(),
                    f.verdict()
                ));
            } else {
                let goal = match f.goal {
                    Some(Goal::AtMost(_)) => f.goal_text(),
                    _ => String::new(),
                };
                let verdict = if goal.is_empty() { "" } else { f.verdict() };
                out.push_str(&format!(
                    "| {} | {} | {goal} | {verdict} |\n",
                    f.name,
                    f.cell(f.registryd)
                ));
            }
        }
        if !self.bounds.is_empty() {
            out.push_str("\n| bound of this machine | MB/s | what it bounds |\n|---|---:|---|\n");
            for b in &self.bounds {
                out.push_str(&format!(
                    "| {} | {:.0} | {} |\n",
                    b.what,
                    b.rate.mb_per_s(),
                    b.bounds
                ));
            }
        }
        out
    }
}

pub(crate) fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if !n.is_multiple_of(2) {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

pub(crate) fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
    }

    #[test]
    fn verdicts_follow_the_goal() {
        let figure = |registryd, registry2, goal| Figure {
            name: "x".into(),
            unit: Unit::MBps,
            registryd: Some(registryd),
            registry2,
            goal: Some(goal),
        };
        assert_eq!(
            figure(800.0, Some(190.0), Goal::RatioAtLeast(4.0)).verdict(),
            "met"
        );
        assert_eq!(
            figure(700.0, Some(190.0), Goal::RatioAtLeast(4.0)).verdict(),
            "MISSED"
        );
        assert_eq!(
            figure(10.0, Some(200.0), Goal::RatioAtMost(0.1)).verdict(),
            "met"
        );
        assert_eq!(figure(10.0, None, Goal::AtMost(20.0)).verdict(), "met");
        assert_eq!(figure(10.0, None, Goal::RatioAtMost(0.1)).verdict(), "");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
