//! The Prometheus text exposition format (0.0.4), written by hand: one writer for the
//! worker's metrics and the edge's.
//!
//! Label values are escaped as the format asks (`\\`, `\"`, `\n`), so a value can never
//! end a sample line or open another label.

use std::fmt::{Display, Write};

/// A metric's type, as `# TYPE` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (reset when the process restarts).
    Counter,
    /// Set to the latest value.
    Gauge,
    /// Observations counted into buckets, with their sum and count.
    Histogram,
}

impl Kind {
    /// The word `# TYPE` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A text exposition being written: families (`# HELP`, `# TYPE`) and their samples.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a metric family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample: `name{label="value",...} value`; no braces without labels.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        write_labels(&mut self.out, labels);
        let _ = writeln!(self.out, " {value}");
    }

    /// A line written as it is: a series already in the format (`name{...}`) and its value.
    /// The caller has checked that `series` is one (see [`super::parse_series`]).
    pub(crate) fn raw_sample(&mut self, series: &str, value: impl Display) {
        let _ = writeln!(self.out, "{series} {value}");
    }

    /// A histogram's samples for one label set: cumulative `_bucket`s (`le` with one
    /// decimal, then `+Inf`), `_sum` and `_count`. `per_bucket` holds each bucket's own
    /// count (not cumulative), with one more slot for observations above every bound.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
        per_bucket: &[u64],
        sum: f64,
    ) {
        let mut cumulative = 0u64;
        let bucket = format!("{name}_bucket");
        for (i, bound) in bounds.iter().enumerate() {
            cumulative += per_bucket.get(i).copied().unwrap_or(0);
            let le = format!("{bound:.1}");
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, cumulative);
        }
        cumulative += per_bucket.get(bounds.len()).copied().unwrap_or(0);
        let mut with_le = labels.to_vec();
        with_le.push(("le", "+Inf"));
        self.sample(&bucket, &with_le, cumulative);
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, cumulative);
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Writes `{a="x",b="y"}` (nothing for no labels), escaping the values.
pub fn write_labels(out: &mut String, labels: &[(&str, &str)]) {
    if labels.is_empty() {
        return;
    }
    out.push('{');
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        escape_label_value(out, value);
        out.push('"');
    }
    out.push('}');
}

/// Appends `value` escaped for a label value: backslash, double quote and line feed.
pub fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_escape_their_label_values() {
        let mut text = Exposition::new();
        text.family("m_total", "Things", Kind::Counter);
        text.sample("m_total", &[("a", "x\"y"), ("b", "back\\slash\nnext")], 3);
        text.sample("m_total", &[], 4);
        assert_eq!(
            text.finish(),
            "# HELP m_total Things\n# TYPE m_total counter\n\
             m_total{a=\"x\\\"y\",b=\"back\\\\slash\\nnext\"} 3\nm_total 4\n"
        );
    }

    #[test]
    fn histograms_are_cumulative_and_end_with_inf_sum_and_count() {
        let mut text = Exposition::new();
        text.histogram("h", &[("status", "ok")], &[1.0, 5.0], &[2, 0, 1], 12.5);
        assert_eq!(
            text.finish(),
            "h_bucket{status=\"ok\",le=\"1.0\"} 2\nh_bucket{status=\"ok\",le=\"5.0\"} 2\n\
             h_bucket{status=\"ok\",le=\"+Inf\"} 3\nh_sum{status=\"ok\"} 12.5\n\
             h_count{status=\"ok\"} 3\n"
        );
    }
}
