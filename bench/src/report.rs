//! Figures and how they are printed: every benchmark prints its inputs, then
//! each figure with its unit and, where the product has one, its goal. The
//! run ends with a goal-versus-measured table in Markdown, ready for
//! BENCHMARKS.md.

use std::fmt::Write as _;

/// Percentiles by the nearest-rank method, plus mean, min and max.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// `None` for no samples.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(Summary {
        n: sorted.len(),
        min: sorted[0],
        p50: percentile(&sorted, 50.0),
        p99: percentile(&sorted, 99.0),
        max: sorted[sorted.len() - 1],
        mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
    })
}

/// The nearest-rank percentile of sorted, non-empty samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A goal: the figure must be at most (or at least) this.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    AtMost(f64),
    AtLeast(f64),
}

impl Goal {
    pub fn met(self, value: f64) -> bool {
        match self {
            Goal::AtMost(limit) => value <= limit,
            Goal::AtLeast(limit) => value >= limit,
        }
    }

    fn describe(self, unit: &str) -> String {
        match self {
            Goal::AtMost(limit) => format!("<= {} {unit}", number(limit)),
            Goal::AtLeast(limit) => format!(">= {} {unit}", number(limit)),
        }
    }
}

/// One printed figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub bench: String,
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub goal: Option<Goal>,
}

/// Collects what a run printed.
#[derive(Debug, Default)]
pub struct Report {
    bench: String,
    figures: Vec<Figure>,
    notes: Vec<(String, String)>,
}

impl Report {
    pub fn section(&mut self, bench: &str, title: &str) {
        self.bench = bench.to_owned();
        println!();
        println!(
            "== {title} {}",
            "=".repeat(70usize.saturating_sub(title.len()))
        );
    }

    pub fn input(&mut self, name: &str, value: impl std::fmt::Display) {
        println!("   {name:<28} {value}");
    }

    pub fn figure(&mut self, name: &str, value: f64, unit: &str, goal: Option<Goal>) {
        let verdict = goal.map_or(String::new(), |g| {
            let met = if g.met(value) { "met" } else { "MISSED" };
            format!("   goal {} {met}", g.describe(unit))
        });
        println!("   {name:<28} {:>12} {unit}{verdict}", number(value));
        self.figures.push(Figure {
            bench: self.bench.clone(),
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
            goal,
        });
    }

    /// Prints p50, p99 and max (and the sample count) of `samples`.
    pub fn distribution(
        &mut self,
        name: &str,
        samples: &[f64],
        unit: &str,
        p99_goal: Option<Goal>,
    ) {
        match summarize(samples) {
            Some(s) => {
                self.input(&format!("{name}: samples"), s.n);
                self.figure(&format!("{name} p50"), s.p50, unit, None);
                self.figure(&format!("{name} p99"), s.p99, unit, p99_goal);
                self.figure(&format!("{name} max"), s.max, unit, None);
            }
            None => self.note(&format!("{name}: no samples")),
        }
    }

    /// A line that is not a figure: a skipped size, a bound, a caveat.
    pub fn note(&mut self, text: &str) {
        println!("   note: {text}");
        self.notes.push((self.bench.clone(), text.to_owned()));
    }

    /// Every figure that has a goal, as a Markdown table.
    pub fn goals_table(&self) -> String {
        let mut out =
            String::from("| benchmark | figure | goal | measured | |\n|---|---|---|---|---|\n");
        for f in self.figures.iter().filter(|f| f.goal.is_some()) {
            let goal = f.goal.expect("filtered");
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} {} | {} |",
                f.bench,
                f.name,
                goal.describe(&f.unit),
                number(f.value),
                f.unit,
                if goal.met(f.value) { "met" } else { "missed" }
            );
        }
        for (bench, note) in &self.notes {
            let _ = writeln!(out, "| {bench} | note | | {note} | |");
        }
        out
    }
}

/// A number as printed: at most 3 significant decimals, no trailing zeros.
pub fn number(value: f64) -> String {
    if value.abs() >= 100.0 || value == value.trunc() {
        format!("{:.0}", value)
    } else if value.abs() >= 10.0 {
        format!("{:.1}", value)
    } else {
        format!("{:.3}", value)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = summarize(&samples).unwrap();
        assert_eq!((s.min, s.p50, s.p99, s.max), (1.0, 50.0, 99.0, 100.0));
        assert_eq!(s.mean, 50.5);
        // Order does not matter; a single sample is every percentile.
        let s = summarize(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.p50, s.p99), (2.0, 3.0));
        assert_eq!(summarize(&[7.0]).unwrap().p99, 7.0);
        assert_eq!(summarize(&[]), None);
    }

    #[test]
    fn goals_judge_both_ways() {
        assert!(Goal::AtMost(100.0).met(100.0));
        assert!(!Goal::AtMost(100.0).met(100.5));
        assert!(Goal::AtLeast(0.5).met(0.73));
        assert!(!Goal::AtLeast(0.5).met(0.49));
    }

    #[test]
    fn the_goals_table_lists_figures_with_goals_only() {
        let mut report = Report::default();
        report.section("fan-out", "SSE fan-out");
        report.figure("clients", 1000.0, "", None);
        report.figure("p99", 250.0, "ms", Some(Goal::AtMost(1000.0)));
        report.figure("rss/conn", 9.5, "KiB", Some(Goal::AtMost(8.0)));
        let table = report.goals_table();
        assert!(
            table.contains("| fan-out | p99 | <= 1000 ms | 250 ms | met |"),
            "{table}"
        );
        assert!(
            table.contains("| fan-out | rss/conn | <= 8 KiB | 9.5 KiB | missed |"),
            "{table}"
        );
        assert!(!table.contains("clients"));
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(number(1234.56), "1235");
        assert_eq!(number(12.34), "12.3");
        assert_eq!(number(1.2), "1.2");
        assert_eq!(number(0.0421), "0.042");
        assert_eq!(number(3.0), "3");
    }
}
