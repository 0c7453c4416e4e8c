//! A small fake Kubernetes API server that speaks the real wire protocol to kube-rs.
//!
//! Namespaced `batch/v1` Jobs and `v1` Pods with `uid`, a monotonic `resourceVersion` and
//! `creationTimestamp`; create (`201`, `409` Status on a duplicate name), get (`404` Status),
//! list with equality label selectors and `metadata.name` field selectors, `watch=true`
//! streams of newline-delimited events from a resourceVersion (honouring `timeoutSeconds`),
//! delete, and pod logs with `follow=true`, `timestamps=true` (RFC 3339 with nanoseconds,
//! as the kubelet writes them), `sinceTime` and `sinceSeconds`; a test can end the open
//! follow streams of a pod early, as an API server or kubelet restart does. A tiny Job controller creates each Job's pod,
//! turns the pod phases a test scripts into the Job's conditions, and fails a Job past its
//! `activeDeadlineSeconds` the way Kubernetes does. A test can also place pods of its own
//! (an image-builder DaemonSet's) on named nodes.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

type Body = BoxBody<Bytes, Infallible>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    Job,
    Pod,
}

impl Kind {
    fn plural(self) -> &'static str {
        match self {
            Kind::Job => "jobs",
            Kind::Pod => "pods",
        }
    }
    fn api_version(self) -> &'static str {
        match self {
            Kind::Job => "batch/v1",
            Kind::Pod => "v1",
        }
    }
    fn kind(self) -> &'static str {
        match self {
            Kind::Job => "Job",
            Kind::Pod => "Pod",
        }
    }
}

type Key = (Kind, String, String);

#[derive(Debug)]
struct Change {
    rv: u64,
    kind: Kind,
    namespace: String,
    type_: &'static str,
    object: Value,
}

#[derive(Debug, Default)]
struct PodLog {
    /// Each line with the time it was written (strictly increasing).
    lines: Vec<(Timestamp, String)>,
    closed: bool,
    /// Bumped to end the follow streams open now.
    generation: u64,
}

#[derive(Debug, Default)]
struct Store {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: Vec<Change>,
    logs: HashMap<(String, String), PodLog>,
    job_creates: usize,
    job_conflicts: usize,
    /// The query of every pod log request, in order.
    log_requests: Vec<HashMap<String, String>>,
}

#[derive(Debug)]
struct Inner {
    store: Mutex<Store>,
    changed: watch::Sender<u64>,
}

/// The fake API server; it stops accepting connections when dropped.
#[derive(Debug)]
pub struct FakeKube {
    inner: Arc<Inner>,
    addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn status(code: StatusCode, reason: &str, message: String) -> Response<Body> {
    json_response(
        code,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code.as_u16(),
        }),
    )
}

fn json_response(code: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())).boxed());
    *response.status_mut() = code;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn stream_response(rx: mpsc::Receiver<Bytes>, content_type: &'static str) -> Response<Body> {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), rx))
    });
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

/// `a=b,c==d,e!=f` against an object's labels.
fn labels_match(selector: &str, object: &Value) -> bool {
    let labels = &object["metadata"]["labels"];
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            labels[k.trim()].as_str() != Some(v.trim())
        } else if let Some((k, v)) = term.split_once('=') {
            let v = v.strip_prefix('=').unwrap_or(v);
            labels[k.trim()].as_str() == Some(v.trim())
        } else {
            !labels[term.trim()].is_null()
        }
    })
}

fn fields_match(selector: &str, object: &Value) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let Some((k, v)) = term.split_once('=') else {
            return false;
        };
        let v = v.strip_prefix('=').unwrap_or(v);
        let mut node = object;
        for part in k.split('.') {
            node = &node[part];
        }
        node.as_str() == Some(v)
    })
}

fn matches(q: &HashMap<String, String>, object: &Value) -> bool {
    q.get("labelSelector")
        .is_none_or(|s| labels_match(s, object))
        && q.get("fieldSelector")
            .is_none_or(|s| fields_match(s, object))
}

impl Inner {
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// Stores `object` under a new resourceVersion and records the change.
    fn put(store: &mut Store, key: &Key, mut object: Value, type_: &'static str) -> Value {
        store.rv += 1;
        object["metadata"]["resourceVersion"] = json!(store.rv.to_string());
        store.history.push(Change {
            rv: store.rv,
            kind: key.0,
            namespace: key.1.clone(),
            type_,
            object: object.clone(),
        });
        if type_ == "DELETED" {
            store.objects.remove(key);
        } else {
            store.objects.insert(key.clone(), object.clone());
        }
        object
    }

    fn create(self: &Arc<Self>, kind: Kind, namespace: &str, mut object: Value) -> Response<Body> {
        let Some(name) = object["metadata"]["name"].as_str().map(str::to_owned) else {
            return status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                "name is required".into(),
            );
        };
        let key = (kind, namespace.to_owned(), name.clone());
        let mut store = self.store();
        if store.objects.contains_key(&key) {
            if kind == Kind::Job {
                store.job_conflicts += 1;
            }
            let group = if kind == Kind::Job { ".batch" } else { "" };
            return status(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{}{group} \"{name}\" already exists", kind.plural()),
            );
        }
        let uid = format!("00000000-0000-4000-8000-{:012x}", store.rv + 1);
        object["apiVersion"] = json!(kind.api_version());
        object["kind"] = json!(kind.kind());
        object["metadata"]["namespace"] = json!(namespace);
        object["metadata"]["uid"] = json!(uid);
        object["metadata"]["creationTimestamp"] = json!(now_rfc3339());
        let deadline = object["spec"]["activeDeadlineSeconds"].as_u64();
        let created = match kind {
            Kind::Job => {
                store.job_creates += 1;
                object["status"] = json!({"startTime": now_rfc3339(), "active": 1});
                let created = Self::put(&mut store, &key, object, "ADDED");
                Self::create_job_pod(&mut store, namespace, &name, &created);
                created
            }
            Kind::Pod => {
                object["status"] = json!({"phase": "Pending"});
                Self::put(&mut store, &key, object, "ADDED")
            }
        };
        drop(store);
        self.bump();
        if let (Kind::Job, Some(seconds)) = (kind, deadline) {
            let this = self.clone();
            let namespace = namespace.to_owned();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(seconds)).await;
                this.fail_job_past_deadline(&namespace, &name);
            });
        }
        json_response(StatusCode::CREATED, &created)
    }

    /// The Job controller's part: one pod per Job, labelled the way Kubernetes labels it.
    fn create_job_pod(store: &mut Store, namespace: &str, job_name: &str, job: &Value) {
        let uid = job["metadata"]["uid"].clone();
        let template = &job["spec"]["template"];
        let mut labels = template["metadata"]["labels"].clone();
        if !labels.is_object() {
            labels = json!({});
        }
        for key in ["job-name", "batch.kubernetes.io/job-name"] {
            labels[key] = json!(job_name);
        }
        for key in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
            labels[key] = uid.clone();
        }
        let pod_name = format!("{job_name}-{:05x}", store.rv % 0xfffff);
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": pod_name, "namespace": namespace, "labels": labels,
                "annotations": template["metadata"]["annotations"].clone(),
                "uid": format!("00000000-0000-4000-9000-{:012x}", store.rv + 1),
                "creationTimestamp": now_rfc3339(),
                "ownerReferences": [{
                    "apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": uid,
                    "controller": true, "blockOwnerDeletion": true,
                }],
            },
            "spec": template["spec"].clone(),
            "status": {"phase": "Pending"},
        });
        let key = (Kind::Pod, namespace.to_owned(), pod_name.clone());
        Self::put(store, &key, pod, "ADDED");
        store
            .logs
            .insert((namespace.to_owned(), pod_name), PodLog::default());
    }

    fn fail_job_past_deadline(&self, namespace: &str, job: &str) {
        let pods: Vec<String> = {
            let store = self.store();
            let key = (Kind::Job, namespace.to_owned(), job.to_owned());
            match store.objects.get(&key) {
                Some(j) if j["status"]["conditions"].is_null() => {}
                _ => return,
            }
            Self::pods_of(&store, namespace, job)
        };
        for pod in pods {
            self.set_pod(namespace, &pod, "Failed", None);
        }
        self.finish_job(
            namespace,
            job,
            "Failed",
            Some((
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            )),
        );
    }

    fn pods_of(store: &Store, namespace: &str, job: &str) -> Vec<String> {
        store
            .objects
            .iter()
            .filter(|((kind, ns, _), pod)| {
                *kind == Kind::Pod
                    && ns == namespace
                    && pod["metadata"]["labels"]["job-name"].as_str() == Some(job)
            })
            .map(|((_, _, name), _)| name.clone())
            .collect()
    }

    /// Sets a pod's phase; an ended pod's log closes and, with `job`, its Job ends too.
    fn set_pod(&self, namespace: &str, pod: &str, phase: &str, job: Option<&str>) {
        {
            let mut store = self.store();
            let key = (Kind::Pod, namespace.to_owned(), pod.to_owned());
            let Some(mut object) = store.objects.get(&key).cloned() else {
                return;
            };
            object["status"]["phase"] = json!(phase);
            Self::put(&mut store, &key, object, "MODIFIED");
            if matches!(phase, "Succeeded" | "Failed")
                && let Some(log) = store.logs.get_mut(&(namespace.to_owned(), pod.to_owned()))
            {
                log.closed = true;
            }
        }
        self.bump();
        if let Some(job) = job {
            match phase {
                "Succeeded" => self.finish_job(namespace, job, "Complete", None),
                "Failed" => self.finish_job(
                    namespace,
                    job,
                    "Failed",
                    Some((
                        "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit",
                    )),
                ),
                _ => {}
            }
        }
    }

    fn finish_job(&self, namespace: &str, job: &str, type_: &str, why: Option<(&str, &str)>) {
        {
            let mut store = self.store();
            let key = (Kind::Job, namespace.to_owned(), job.to_owned());
            let Some(mut object) = store.objects.get(&key).cloned() else {
                return;
            };
            let now = now_rfc3339();
            let mut condition = json!({
                "type": type_, "status": "True",
                "lastProbeTime": now, "lastTransitionTime": now,
            });
            if let Some((reason, message)) = why {
                condition["reason"] = json!(reason);
                condition["message"] = json!(message);
            }
            let status = &mut object["status"];
            status["conditions"] = json!([condition]);
            status["active"] = json!(0);
            if type_ == "Complete" {
                status["succeeded"] = json!(1);
                status["completionTime"] = json!(now);
            } else {
                status["failed"] = json!(1);
            }
            Self::put(&mut store, &key, object, "MODIFIED");
        }
        self.bump();
    }

    fn list(&self, kind: Kind, namespace: &str, q: &HashMap<String, String>) -> Response<Body> {
        let store = self.store();
        let items: Vec<Value> = store
            .objects
            .iter()
            .filter(|((k, ns, _), obj)| *k == kind && ns == namespace && matches(q, obj))
            .map(|(_, obj)| obj.clone())
            .collect();
        json_response(
            StatusCode::OK,
            &json!({
                "apiVersion": kind.api_version(), "kind": format!("{}List", kind.kind()),
                "metadata": {"resourceVersion": store.rv.to_string()},
                "items": items,
            }),
        )
    }

    fn watch(
        self: &Arc<Self>,
        kind: Kind,
        namespace: &str,
        q: HashMap<String, String>,
    ) -> Response<Body> {
        let since: u64 = q
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let timeout = q
            .get("timeoutSeconds")
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_secs(290), Duration::from_secs);
        let (tx, rx) = mpsc::channel(64);
        let this = self.clone();
        let namespace = namespace.to_owned();
        tokio::spawn(async move {
            let mut changed = this.changed.subscribe();
            let stop = tokio::time::sleep(timeout);
            tokio::pin!(stop);
            let mut cursor = since;
            loop {
                changed.borrow_and_update();
                let lines: Vec<Bytes> = {
                    let store = this.store();
                    let fresh = store.history.partition_point(|c| c.rv <= cursor);
                    let lines = store.history[fresh..]
                        .iter()
                        .filter(|c| c.kind == kind && c.namespace == namespace)
                        .filter(|c| matches(&q, &c.object))
                        .map(|c| {
                            let line = json!({"type": c.type_, "object": c.object});
                            Bytes::from(format!("{line}\n"))
                        })
                        .collect();
                    cursor = store.rv;
                    lines
                };
                for line in lines {
                    if tx.send(line).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    () = &mut stop => return,
                    () = tx.closed() => return,
                    result = changed.changed() => if result.is_err() { return },
                }
            }
        });
        stream_response(rx, "application/json")
    }

    fn log(
        self: &Arc<Self>,
        namespace: &str,
        pod: &str,
        q: HashMap<String, String>,
    ) -> Response<Body> {
        let key = (namespace.to_owned(), pod.to_owned());
        let follow = q.get("follow").is_some_and(|f| f == "true" || f == "1");
        let timestamps = q.get("timestamps").is_some_and(|f| f == "true" || f == "1");
        let since = if let Some(seconds) = q.get("sinceSeconds") {
            let Ok(seconds) = seconds.parse::<i64>() else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "sinceSeconds".into());
            };
            Timestamp::now()
                .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(seconds))
                .ok()
        } else if let Some(time) = q.get("sinceTime") {
            // The API server takes whole seconds (metav1.Time).
            match time.parse::<Timestamp>() {
                Ok(t) if t.subsec_nanosecond() == 0 => Some(t),
                _ => {
                    return status(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        format!("sinceTime {time:?} is not an RFC 3339 time in whole seconds"),
                    );
                }
            }
        } else {
            None
        };
        let generation = {
            let mut store = self.store();
            store.log_requests.push(q);
            match store.logs.get(&key) {
                Some(log) => log.generation,
                None => {
                    return status(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        format!("pods \"{pod}\" not found"),
                    );
                }
            }
        };
        let (tx, rx) = mpsc::channel(64);
        let this = self.clone();
        tokio::spawn(async move {
            let mut changed = this.changed.subscribe();
            let mut cursor = 0;
            loop {
                changed.borrow_and_update();
                let (lines, closed) = {
                    let store = this.store();
                    let Some(log) = store.logs.get(&key) else {
                        return;
                    };
                    if log.generation != generation {
                        return;
                    }
                    let lines: Vec<Bytes> = log.lines[cursor..]
                        .iter()
                        .filter(|(at, _)| since.is_none_or(|since| *at >= since))
                        .map(|(at, line)| match timestamps {
                            true => Bytes::from(format!("{at} {line}\n")),
                            false => Bytes::from(format!("{line}\n")),
                        })
                        .collect();
                    cursor = log.lines.len();
                    (lines, log.closed)
                };
                for line in lines {
                    if tx.send(line).await.is_err() {
                        return;
                    }
                }
                if closed || !follow {
                    return;
                }
                tokio::select! {
                    () = tx.closed() => return,
                    result = changed.changed() => if result.is_err() { return },
                }
            }
        });
        stream_response(rx, "text/plain")
    }

    fn get(&self, key: &Key) -> Response<Body> {
        match self.store().objects.get(key) {
            Some(object) => json_response(StatusCode::OK, object),
            None => not_found(key),
        }
    }

    fn delete(&self, key: &Key) -> Response<Body> {
        let response = {
            let mut store = self.store();
            let Some(object) = store.objects.get(key).cloned() else {
                return not_found(key);
            };
            let deleted = Self::put(&mut store, key, object, "DELETED");
            if key.0 == Kind::Job {
                for pod in Self::pods_of(&store, &key.1, &key.2) {
                    let pod_key = (Kind::Pod, key.1.clone(), pod.clone());
                    if let Some(object) = store.objects.get(&pod_key).cloned() {
                        Self::put(&mut store, &pod_key, object, "DELETED");
                    }
                    if let Some(log) = store.logs.get_mut(&(key.1.clone(), pod)) {
                        log.closed = true;
                    }
                }
            }
            json_response(StatusCode::OK, &deleted)
        };
        self.bump();
        response
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let q = query(&req);
        let path = req.uri().path().to_owned();
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (kind, rest) = match parts.as_slice() {
            ["api", "v1", "namespaces", rest @ ..] => (Kind::Pod, rest),
            ["apis", "batch", "v1", "namespaces", rest @ ..] => (Kind::Job, rest),
            _ => {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("no route {path}"),
                );
            }
        };
        let method = req.method().clone();
        match (rest, kind) {
            ([ns, plural], _) if *plural == kind.plural() => match method {
                Method::GET if q.get("watch").is_some_and(|w| w == "true" || w == "1") => {
                    self.watch(kind, ns, q)
                }
                Method::GET => self.list(kind, ns, &q),
                Method::POST => {
                    let Ok(body) = req.into_body().collect().await else {
                        return status(StatusCode::BAD_REQUEST, "BadRequest", "body".into());
                    };
                    match serde_json::from_slice::<Value>(&body.to_bytes()) {
                        Ok(object) => self.create(kind, ns, object),
                        Err(e) => status(StatusCode::BAD_REQUEST, "BadRequest", e.to_string()),
                    }
                }
                _ => status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", path),
            },
            ([ns, plural, name], _) if *plural == kind.plural() => {
                let key = (kind, (*ns).to_owned(), (*name).to_owned());
                match method {
                    Method::GET => self.get(&key),
                    Method::DELETE => self.delete(&key),
                    _ => status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", path),
                }
            }
            ([ns, "pods", name, "log"], Kind::Pod) if method == Method::GET => {
                self.log(ns, name, q)
            }
            _ => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("no route {path}"),
            ),
        }
    }
}

fn not_found(key: &Key) -> Response<Body> {
    let group = if key.0 == Kind::Job { ".batch" } else { "" };
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{}{group} \"{}\" not found", key.0.plural(), key.2),
    )
}

impl FakeKube {
    /// Starts the fake on a free local port.
    pub async fn start() -> FakeKube {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let inner = Arc::new(Inner {
            store: Mutex::new(Store::default()),
            changed: watch::channel(0).0,
        });
        let server = inner.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let server = server.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let server = server.clone();
                        async move { Ok::<_, Infallible>(server.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeKube {
            inner,
            addr,
            accept,
        }
    }

    /// The server's URL (plain http, no auth).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube-rs client for the fake, defaulting to `namespace`.
    pub fn client(&self, namespace: &str) -> kube::Client {
        let mut config = kube::Config::new(self.url().parse().expect("url"));
        config.default_namespace = namespace.to_owned();
        kube::Client::try_from(config).expect("kube client")
    }

    /// Jobs created (201 answers).
    pub fn job_creates(&self) -> usize {
        self.inner.store().job_creates
    }

    /// Job creates refused with 409.
    pub fn job_conflicts(&self) -> usize {
        self.inner.store().job_conflicts
    }

    /// The stored Job, if any.
    pub fn job(&self, namespace: &str, name: &str) -> Option<Value> {
        let key = (Kind::Job, namespace.to_owned(), name.to_owned());
        self.inner.store().objects.get(&key).cloned()
    }

    /// Waits for the pod of Job `job` and returns its name.
    pub async fn pod_of(&self, namespace: &str, job: &str) -> String {
        for _ in 0..500 {
            if let Some(pod) = Inner::pods_of(&self.inner.store(), namespace, job).pop() {
                return pod;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("job {job} has no pod");
    }

    /// Places a pod that no Job owns (a DaemonSet's, such as an image builder's) on `node`
    /// in `phase`, with `labels`.
    pub fn add_pod(
        &self,
        namespace: &str,
        name: &str,
        labels: &[(&str, &str)],
        node: &str,
        phase: &str,
    ) {
        {
            let mut store = self.inner.store();
            let labels: serde_json::Map<String, Value> = labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), json!(v)))
                .collect();
            let pod = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {
                    "name": name, "namespace": namespace, "labels": labels,
                    "uid": format!("00000000-0000-4000-a000-{:012x}", store.rv + 1),
                    "creationTimestamp": now_rfc3339(),
                },
                "spec": {"nodeName": node, "containers": [{"name": "builder", "image": "docker:dind"}]},
                "status": {"phase": phase},
            });
            let key = (Kind::Pod, namespace.to_owned(), name.to_owned());
            Inner::put(&mut store, &key, pod, "ADDED");
        }
        self.inner.bump();
    }

    /// Sets a build pod's phase (`Pending`, `Running`, `Succeeded`, `Failed`); an ended
    /// pod ends its Job with `Complete` or `Failed` (`BackoffLimitExceeded`).
    pub fn set_phase(&self, namespace: &str, job: &str, pod: &str, phase: &str) {
        self.inner.set_pod(namespace, pod, phase, Some(job));
    }

    /// Makes a pending pod's build container wait for `reason` (`ErrImagePull`,
    /// `CreateContainerConfigError`, ...) with `message`, as the kubelet reports it.
    #[allow(dead_code)]
    pub fn set_waiting(&self, namespace: &str, pod: &str, reason: &str, message: &str) {
        {
            let mut store = self.inner.store();
            let key = (Kind::Pod, namespace.to_owned(), pod.to_owned());
            let Some(mut object) = store.objects.get(&key).cloned() else {
                return;
            };
            object["status"]["containerStatuses"] = json!([{
                "name": "build",
                "image": "",
                "imageID": "",
                "ready": false,
                "restartCount": 0,
                "state": {"waiting": {"reason": reason, "message": message}},
            }]);
            Inner::put(&mut store, &key, object, "MODIFIED");
        }
        self.inner.bump();
    }

    /// Appends a line to a pod's log, stamped with the time (1 ns after the previous
    /// line's stamp when the clock has not moved on).
    pub fn log(&self, namespace: &str, pod: &str, line: &str) {
        if let Some(log) = self
            .inner
            .store()
            .logs
            .get_mut(&(namespace.to_owned(), pod.to_owned()))
        {
            let mut at = Timestamp::now();
            if let Some((last, _)) = log.lines.last()
                && at <= *last
            {
                at = last
                    .checked_add(k8s_openapi::jiff::SignedDuration::from_nanos(1))
                    .expect("time");
            }
            log.lines.push((at, line.to_owned()));
        }
        self.inner.bump();
    }

    /// Makes every follow stream of the pod's log end as soon as it has sent what is
    /// there, whatever the pod's phase (a kubelet that keeps dropping the stream).
    #[allow(dead_code)]
    pub fn close_log(&self, namespace: &str, pod: &str) {
        self.change_log(namespace, pod, |log| log.closed = true);
    }

    /// Ends the pod's open log streams as if the connection broke; the log goes on.
    pub fn end_log_streams(&self, namespace: &str, pod: &str) {
        self.change_log(namespace, pod, |log| log.generation += 1);
    }

    /// Applies `change` to the pod's log, if it has one, and wakes the streams.
    fn change_log(&self, namespace: &str, pod: &str, change: impl FnOnce(&mut PodLog)) {
        if let Some(log) = self
            .inner
            .store()
            .logs
            .get_mut(&(namespace.to_owned(), pod.to_owned()))
        {
            change(log);
        }
        self.inner.bump();
    }

    /// The query of every pod log request so far.
    pub fn log_requests(&self) -> Vec<HashMap<String, String>> {
        self.inner.store().log_requests.clone()
    }
}
