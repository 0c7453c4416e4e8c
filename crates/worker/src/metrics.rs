//! BinderHub's Prometheus metrics, kept in memory and written in the text format by hand.
//!
//! Names, label values and buckets follow BinderHub (BINDERHUB.md §1.11) so existing
//! dashboards keep working; per-repo labels are left off, as BinderHub moved them off the
//! histograms to keep cardinality down.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// `binderhub_launch_time_seconds` buckets.
pub const LAUNCH_BUCKETS: [f64; 9] = [2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Per bucket (not cumulative); the last slot is `+Inf`.
    counts: [u64; LAUNCH_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct Inner {
    launch_count: BTreeMap<&'static str, u64>,
    launch_time: BTreeMap<&'static str, Histogram>,
    inprogress_launches: i64,
    build_count: BTreeMap<&'static str, u64>,
    inprogress_builds: i64,
}

/// The worker's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// A launch started (`binderhub_inprogress_launches` + 1).
    pub fn launch_started(&self) {
        self.with(|m| m.inprogress_launches += 1);
    }

    /// A launch ended with `status` (`success`, `failure`, `pod_quota`, `repo_quota`) after
    /// `elapsed`; quota refusals are counted but not timed, as in BinderHub.
    pub fn launch_finished(&self, status: &'static str, elapsed: Option<Duration>) {
        self.with(|m| {
            m.inprogress_launches -= 1;
            *m.launch_count.entry(status).or_default() += 1;
            if let Some(elapsed) = elapsed {
                let seconds = elapsed.as_secs_f64();
                let h = m.launch_time.entry(status).or_default();
                let slot = LAUNCH_BUCKETS
                    .iter()
                    .position(|&b| seconds <= b)
                    .unwrap_or(LAUNCH_BUCKETS.len());
                h.counts[slot] += 1;
                h.sum += seconds;
                h.count += 1;
            }
        });
    }

    /// A build started.
    pub fn build_started(&self) {
        self.with(|m| m.inprogress_builds += 1);
    }

    /// A build ended with `status` (`success`, `failure`).
    pub fn build_finished(&self, status: &'static str) {
        self.with(|m| {
            m.inprogress_builds -= 1;
            *m.build_count.entry(status).or_default() += 1;
        });
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        self.with(|m| {
            let mut out = String::new();
            counter(&mut out, "binderhub_launch_count", "Counter of launches by status", &m.launch_count);
            let _ = writeln!(out, "# HELP binderhub_launch_time_seconds Histogram of launch times");
            let _ = writeln!(out, "# TYPE binderhub_launch_time_seconds histogram");
            for (status, h) in &m.launch_time {
                let mut cumulative = 0;
                for (i, bound) in LAUNCH_BUCKETS.iter().enumerate() {
                    cumulative += h.counts[i];
                    let _ = writeln!(
                        out,
                        "binderhub_launch_time_seconds_bucket{{status=\"{status}\",le=\"{bound:.1}\"}} {cumulative}"
                    );
                }
                cumulative += h.counts[LAUNCH_BUCKETS.len()];
                let _ = writeln!(out, "binderhub_launch_time_seconds_bucket{{status=\"{status}\",le=\"+Inf\"}} {cumulative}");
                let _ = writeln!(out, "binderhub_launch_time_seconds_sum{{status=\"{status}\"}} {}", h.sum);
                let _ = writeln!(out, "binderhub_launch_time_seconds_count{{status=\"{status}\"}} {}", h.count);
            }
            gauge(&mut out, "binderhub_inprogress_launches", "Launches in progress", m.inprogress_launches);
            counter(&mut out, "binderhub_build_count", "Counter of builds by status", &m.build_count);
            gauge(&mut out, "binderhub_inprogress_builds", "Builds in progress", m.inprogress_builds);
            out
        })
    }
}

fn counter(out: &mut String, name: &str, help: &str, values: &BTreeMap<&'static str, u64>) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (status, n) in values {
        let _ = writeln!(out, "{name}{{status=\"{status}\"}} {n}");
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: i64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_binderhub_names_buckets_and_cumulative_counts() {
        let metrics = Metrics::default();
        metrics.launch_started();
        metrics.launch_finished("success", Some(Duration::from_secs(7)));
        metrics.launch_started();
        metrics.launch_finished("pod_quota", None);
        metrics.launch_started();
        let text = metrics.render();
        for line in [
            "binderhub_launch_count{status=\"success\"} 1",
            "binderhub_launch_count{status=\"pod_quota\"} 1",
            "binderhub_launch_time_seconds_bucket{status=\"success\",le=\"5.0\"} 0",
            "binderhub_launch_time_seconds_bucket{status=\"success\",le=\"10.0\"} 1",
            "binderhub_launch_time_seconds_bucket{status=\"success\",le=\"+Inf\"} 1",
            "binderhub_launch_time_seconds_count{status=\"success\"} 1",
            "binderhub_inprogress_launches 1",
            "binderhub_inprogress_builds 0",
            "# TYPE binderhub_build_count counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
