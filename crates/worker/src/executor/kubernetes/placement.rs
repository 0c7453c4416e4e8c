//! Where a build pod runs: the image builder it talks to (BinderHub's `imageBuilderType`),
//! the nodes that run one, and BinderHub's sticky builds over them.
//!
//! With `host` the node's own docker daemon builds, so any node will do: the pod prefers the
//! sticky node of a static `builder_nodes` list when there is one, and otherwise spreads.
//! With `dind` or `pink` a DaemonSet runs the daemon and its socket exists only on the nodes
//! it runs on, so the executor lists the DaemonSet's pods (by `builder_selector`) before each
//! new Job: the pod is *required* to land on one of their nodes (a node without a builder
//! would leave it waiting for a socket that never appears) and *prefers* the one that
//! rendezvous hashing of the repository picks, reusing its layer cache. When no builder pod
//! runs, a new build fails at once with a message naming the selector, rather than a pod
//! that cannot start (a build whose Job exists already is attached to as always). A static `builder_nodes` list overrides the discovery: the operator's word.

use k8s_openapi::api::core::v1::{
    Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodAffinityTerm, PodAntiAffinity, PreferredSchedulingTerm, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ListParams;

use super::Cluster;
use super::job::{COMPONENT, label_map};
use crate::executor::ExecutorError;

/// The daemon that builds images (BinderHub's `imageBuilderType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BuilderType {
    /// The node's own docker daemon (clusters that still run one).
    #[default]
    Host,
    /// A privileged docker-in-docker DaemonSet.
    Dind,
    /// A podman DaemonSet ("podman in kubernetes").
    Pink,
}

impl BuilderType {
    /// Every type, for parsing and messages.
    pub const ALL: [BuilderType; 3] = [BuilderType::Host, BuilderType::Dind, BuilderType::Pink];

    /// The name in configuration (`builder_type`) and in the chart (`imageBuilderType`).
    pub fn name(self) -> &'static str {
        match self {
            BuilderType::Host => "host",
            BuilderType::Dind => "dind",
            BuilderType::Pink => "pink",
        }
    }

    /// The type of that name.
    pub fn from_name(name: &str) -> Option<BuilderType> {
        BuilderType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The daemon's socket on the node, where the chart's DaemonSet puts it.
    pub fn default_socket(self) -> &'static str {
        match self {
            BuilderType::Host => super::job::DEFAULT_DOCKER_SOCKET,
            BuilderType::Dind => "/var/run/dind/docker.sock",
            BuilderType::Pink => "/var/run/pink/podman.sock",
        }
    }

    /// Whether the daemon runs as a DaemonSet whose pods say which nodes can build.
    pub fn is_daemonset(self) -> bool {
        self != BuilderType::Host
    }
}

/// BinderHub's label selector of its builder DaemonSet's pods.
pub const DEFAULT_BUILDER_SELECTOR: &str = "app=binder,component=image-builder";

/// Where one build pod may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement<'a> {
    /// Any node: sticky over the static `builder_nodes` when set, else spread.
    Anywhere,
    /// Only these nodes (those running an image builder), preferring the sticky one.
    Builders(&'a [String]),
}

/// The builder node that rendezvous hashing ranks highest for `key`, as BinderHub's
/// `rendezvous_rank`: the score of a node is blake2b with an 8-byte digest of
/// `"<key>-<node>"`, read big-endian.
pub fn sticky_node<'a>(key: &str, nodes: &'a [String]) -> Option<&'a str> {
    nodes
        .iter()
        .map(|node| (rendezvous_score(key, node), node))
        .max()
        .map(|(_, node)| node.as_str())
}

fn rendezvous_score(key: &str, node: &str) -> u64 {
    bindery_core::federation::rendezvous::hash(key, node)
}

/// The node names of the builder pods that run now (phase `Running`, not being deleted,
/// scheduled), sorted and without repeats.
pub fn builder_nodes_of(pods: &[Pod]) -> Vec<String> {
    let mut nodes: Vec<String> = pods
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter(|pod| {
            pod.status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|phase| phase == "Running")
        })
        .filter_map(|pod| pod.spec.as_ref()?.node_name.clone())
        .filter(|node| !node.is_empty())
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

impl Cluster {
    /// The nodes a new build may run on: `None` for anywhere (`host`, or a static
    /// `builder_nodes` list), else the nodes of the running builder pods; none of those is
    /// an error, as a pod placed elsewhere would wait for a socket that is not there.
    pub(super) async fn builder_nodes(&self) -> Result<Option<Vec<String>>, ExecutorError> {
        let settings = &self.settings;
        if !settings.builder_type.is_daemonset() || !settings.job.builder_nodes.is_empty() {
            return Ok(None);
        }
        let selector = &settings.builder_selector;
        let pods = self
            .pods
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(ExecutorError::ListPods)?;
        let nodes = builder_nodes_of(&pods.items);
        if nodes.is_empty() {
            return Err(ExecutorError::NoBuilders {
                builder: settings.builder_type.name(),
                selector: selector.clone(),
                namespace: settings.job.namespace.clone(),
            });
        }
        Ok(Some(nodes))
    }
}

fn hostname_term(operator: &str, nodes: Vec<String>) -> NodeSelectorTerm {
    NodeSelectorTerm {
        match_expressions: Some(vec![NodeSelectorRequirement {
            key: "kubernetes.io/hostname".into(),
            operator: operator.into(),
            values: Some(nodes),
        }]),
        match_fields: None,
    }
}

/// A node's name as the scheduler reads it (`metadata.name`, which the hostname label
/// need not equal on every cloud).
fn node_name_term(nodes: Vec<String>) -> NodeSelectorTerm {
    NodeSelectorTerm {
        match_expressions: None,
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(nodes),
        }]),
    }
}

fn preferred(preference: NodeSelectorTerm) -> Vec<PreferredSchedulingTerm> {
    vec![PreferredSchedulingTerm {
        weight: 100,
        preference,
    }]
}

/// The build pod's affinity for `repo` under `placement`, with the static `builder_nodes`.
pub fn affinity(placement: Placement<'_>, static_nodes: &[String], repo: &str) -> Affinity {
    match placement {
        Placement::Builders(nodes) => Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![node_name_term(nodes.to_vec())],
                }),
                preferred_during_scheduling_ignored_during_execution: sticky_node(repo, nodes)
                    .map(|node| preferred(node_name_term(vec![node.to_owned()]))),
            }),
            ..Affinity::default()
        },
        Placement::Anywhere => match sticky_node(repo, static_nodes) {
            Some(node) => Affinity {
                node_affinity: Some(NodeAffinity {
                    preferred_during_scheduling_ignored_during_execution: Some(preferred(
                        hostname_term("In", vec![node.to_owned()]),
                    )),
                    required_during_scheduling_ignored_during_execution: None,
                }),
                ..Affinity::default()
            },
            // BinderHub's default: spread builds over nodes.
            None => Affinity {
                pod_anti_affinity: Some(PodAntiAffinity {
                    preferred_during_scheduling_ignored_during_execution: Some(vec![
                        WeightedPodAffinityTerm {
                            weight: 100,
                            pod_affinity_term: PodAffinityTerm {
                                label_selector: Some(LabelSelector {
                                    match_labels: Some(label_map(&[("component", COMPONENT)])),
                                    match_expressions: None,
                                }),
                                topology_key: "kubernetes.io/hostname".into(),
                                ..PodAffinityTerm::default()
                            },
                        },
                    ]),
                    required_during_scheduling_ignored_during_execution: None,
                }),
                ..Affinity::default()
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    #[test]
    fn rendezvous_hashing_matches_binderhubs_blake2b_64() {
        // Scores from Python: hashlib.blake2b(f"{key}-{node}".encode(), digest_size=8).
        let table = [
            ("crazy frog is a crazy key", "b1", 0xb9da914aff2a7a49_u64),
            ("crazy frog is a crazy key", "b2", 0xd8bcab05b34320fc),
            ("crazy frog is a crazy key", "b3", 0xace2855212739287),
            (
                "https://github.com/binder-examples/requirements",
                "node-a",
                0xf3caf17d1f5cba2c,
            ),
        ];
        for (key, node, score) in table {
            assert_eq!(rendezvous_score(key, node), score, "{key} {node}");
        }
        let nodes: Vec<String> = ["b1", "b2", "b3"].map(String::from).into();
        assert_eq!(sticky_node("crazy frog is a crazy key", &nodes), Some("b2"));
        // The winner stays when the other nodes go away.
        let fewer: Vec<String> = ["b2", "b3"].map(String::from).into();
        assert_eq!(sticky_node("crazy frog is a crazy key", &fewer), Some("b2"));
        assert_eq!(sticky_node("k", &[]), None);
    }

    fn pod(node: Option<&str>, phase: &str, deleting: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                deletion_timestamp: deleting
                    .then_some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(str::to_owned),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn only_running_scheduled_builder_pods_count_as_builder_nodes() {
        let table = [
            (
                vec![
                    pod(Some("b"), "Running", false),
                    pod(Some("a"), "Running", false),
                ],
                vec!["a", "b"],
            ),
            (
                vec![
                    pod(Some("a"), "Running", false),
                    pod(Some("a"), "Running", false),
                ],
                vec!["a"],
            ),
            (vec![pod(Some("a"), "Pending", false)], vec![]),
            (vec![pod(None, "Running", false)], vec![]),
            (vec![pod(Some("a"), "Running", true)], vec![]),
            (
                vec![
                    pod(Some("a"), "Failed", false),
                    pod(Some("c"), "Running", false),
                ],
                vec!["c"],
            ),
        ];
        for (pods, want) in table {
            assert_eq!(builder_nodes_of(&pods), want, "{pods:?}");
        }
    }

    #[test]
    fn builder_types_parse_and_name_their_sockets() {
        let table = [
            ("host", BuilderType::Host, "/var/run/docker.sock", false),
            ("dind", BuilderType::Dind, "/var/run/dind/docker.sock", true),
            ("pink", BuilderType::Pink, "/var/run/pink/podman.sock", true),
        ];
        for (name, kind, socket, daemonset) in table {
            assert_eq!(BuilderType::from_name(name), Some(kind));
            assert_eq!(kind.name(), name);
            assert_eq!(kind.default_socket(), socket);
            assert_eq!(kind.is_daemonset(), daemonset);
        }
        assert_eq!(BuilderType::from_name("docker"), None);
    }

    #[test]
    fn on_builders_the_pod_must_run_on_one_and_prefers_the_sticky_node() {
        let nodes: Vec<String> = ["node-a", "node-b", "node-c"].map(String::from).into();
        let repo = "https://github.com/binder-examples/requirements";
        let affinity = affinity(Placement::Builders(&nodes), &[], repo);
        let node = affinity.node_affinity.expect("node affinity");
        let required = node
            .required_during_scheduling_ignored_during_execution
            .expect("required");
        let fields = required.node_selector_terms[0]
            .match_fields
            .clone()
            .expect("fields");
        assert_eq!(fields[0].key, "metadata.name");
        assert_eq!(fields[0].values.as_deref(), Some(nodes.as_slice()));
        let preferred = node
            .preferred_during_scheduling_ignored_during_execution
            .expect("preferred");
        let sticky = preferred[0]
            .preference
            .match_fields
            .clone()
            .expect("fields");
        assert_eq!(
            sticky[0].values,
            Some(vec![sticky_node(repo, &nodes).expect("node").to_owned()])
        );
        assert!(affinity.pod_anti_affinity.is_none());
    }
}
