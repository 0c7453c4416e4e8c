//! BinderHub's Prometheus metrics, kept in memory and written with the core's text-format
//! writer (`bindery_core::metrics::text`).
//!
//! Names, label values and buckets follow BinderHub (BINDERHUB.md §1.11) so existing
//! dashboards keep working; per-repo labels are left off, as BinderHub moved them off the
//! histograms to keep cardinality down.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use bindery_core::metrics::{Exposition, Kind};

/// `binderhub_launch_time_seconds` buckets.
pub const LAUNCH_BUCKETS: [f64; 9] = [2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0];
/// `binderhub_build_time_seconds` buckets (BinderHub's).
pub const BUILD_BUCKETS: [f64; 9] = [
    60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Per bucket (not cumulative); the last slot is `+Inf`.
    counts: [u64; LAUNCH_BUCKETS.len() + 1],
    sum: f64,
}

#[derive(Debug, Default)]
struct Inner {
    launch_count: BTreeMap<&'static str, u64>,
    launch_time: BTreeMap<&'static str, Histogram>,
    inprogress_launches: i64,
    build_count: BTreeMap<&'static str, u64>,
    build_time: BTreeMap<&'static str, Histogram>,
    inprogress_builds: i64,
    build_queue_length: i64,
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
                observe(
                    m.launch_time.entry(status).or_default(),
                    &LAUNCH_BUCKETS,
                    elapsed,
                );
            }
        });
    }

    /// A launch attempt failed and the launch tries again: timed under `retry`, as
    /// BinderHub does, without ending the launch.
    pub fn launch_retried(&self, elapsed: Duration) {
        self.with(|m| {
            observe(
                m.launch_time.entry("retry").or_default(),
                &LAUNCH_BUCKETS,
                elapsed,
            );
        });
    }

    /// A build started.
    pub fn build_started(&self) {
        self.with(|m| m.inprogress_builds += 1);
    }

    /// A build ended with `status` (`success`, `failure`) after `elapsed`.
    pub fn build_finished(&self, status: &'static str, elapsed: Duration) {
        self.with(|m| {
            m.inprogress_builds -= 1;
            *m.build_count.entry(status).or_default() += 1;
            observe(
                m.build_time.entry(status).or_default(),
                &BUILD_BUCKETS,
                elapsed,
            );
        });
    }

    /// How many builds wait in the queue now.
    pub fn set_build_queue_length(&self, length: usize) {
        self.with(|m| m.build_queue_length = i64::try_from(length).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition (format 0.0.4), written with the core's writer.
    pub fn render(&self) -> String {
        self.with(|m| {
            let mut out = Exposition::new();
            counter(
                &mut out,
                "binderhub_launch_count",
                "Counter of launches by status",
                &m.launch_count,
            );
            histogram(
                &mut out,
                "binderhub_launch_time_seconds",
                "Histogram of launch times",
                &LAUNCH_BUCKETS,
                &m.launch_time,
            );
            gauge(
                &mut out,
                "binderhub_inprogress_launches",
                "Launches in progress",
                m.inprogress_launches,
            );
            counter(
                &mut out,
                "binderhub_build_count",
                "Counter of builds by status",
                &m.build_count,
            );
            histogram(
                &mut out,
                "binderhub_build_time_seconds",
                "Histogram of build times",
                &BUILD_BUCKETS,
                &m.build_time,
            );
            gauge(
                &mut out,
                "binderhub_inprogress_builds",
                "Builds in progress",
                m.inprogress_builds,
            );
            gauge(
                &mut out,
                "bindery_build_queue_length",
                "Builds waiting for a build slot",
                m.build_queue_length,
            );
            out.finish()
        })
    }
}

fn observe(h: &mut Histogram, buckets: &[f64; 9], elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    let slot = buckets
        .iter()
        .position(|&b| seconds <= b)
        .unwrap_or(buckets.len());
    h.counts[slot] += 1;
    h.sum += seconds;
}

fn histogram(
    out: &mut Exposition,
    name: &str,
    help: &str,
    buckets: &[f64; 9],
    values: &BTreeMap<&'static str, Histogram>,
) {
    out.family(name, help, Kind::Histogram);
    for (status, h) in values {
        out.histogram(name, &[("status", status)], buckets, &h.counts, h.sum);
    }
}

fn counter(out: &mut Exposition, name: &str, help: &str, values: &BTreeMap<&'static str, u64>) {
    out.family(name, help, Kind::Counter);
    for (status, n) in values {
        out.sample(name, &[("status", status)], n);
    }
}

fn gauge(out: &mut Exposition, name: &str, help: &str, value: i64) {
    out.family(name, help, Kind::Gauge);
    out.sample(name, &[], value);
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
