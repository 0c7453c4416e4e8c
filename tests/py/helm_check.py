"""Checks of the Helm chart in infra/helm/bindery, run by tests/helm.rs with the venv python.

    helm_check.py lint        helm lint --strict with every ci/*-values.yaml
    helm_check.py validate    render each, kubernetes-validate --strict every manifest (the
                              SpinApp against ci/spinapp-v1alpha1.schema.json), and check
                              the worker.toml keys and values, env names and edge
                              variables against the worker's config.rs and spin.toml;
                              every setting config.rs reads is offered or excluded on purpose;
                              the image builder (host, dind, pink) agrees with worker.toml
                              and the build NetworkPolicy fences build and builder pods
    helm_check.py bad-values  every ci/bad/*.yaml must fail to render with its `# expect:`
    helm_check.py snapshots   fresh renders equal ci/snapshots/<name>.yaml
                              (BINDERY_UPDATE_SNAPSHOTS=1 rewrites them)
    helm_check.py selftest    each check above fails on a broken input
    helm_check.py py-compile  the Python in infra/ (files and hub.extraConfig) compiles
    helm_check.py hub-spawner infra/jupyterhub's spawner, loaded on the real KubeSpawner,
                              takes image and token from BinderHub's user_options
    helm_check.py worker-toml DIR  writes each case's rendered worker.toml into DIR
    helm_check.py spin-config infra/spin/*.toml use only fields Spin reads, and only the
                              key-value stores spin.toml's components use

Exits 0 when everything holds; otherwise prints what failed and exits 1.
"""

import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import jsonschema
import yaml
from helm_python import chart as helm

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "infra/helm/bindery"
CI = CHART / "ci"
SNAPSHOTS = CI / "snapshots"
SPINAPP_SCHEMA = CI / "spinapp-v1alpha1.schema.json"
RELEASE = {"name": "bindery", "namespace": "binder"}
# The chart's kubeVersion floor and kubernetes-validate's newest schemas.
KUBE_VERSIONS = ["1.27.0", "1.37.0"]
UPDATE_ENV = "BINDERY_UPDATE_SNAPSHOTS"

failures = []


def fail(message):
    failures.append(message)
    print(f"FAIL: {message}", file=sys.stderr)


def values_files():
    files = sorted(CI.glob("*-values.yaml"))
    if not files:
        fail(f"no values files in {CI}")
    return files


def case_name(path):
    return path.name.removesuffix("-values.yaml")


def load_values(path):
    return yaml.safe_load(path.read_text()) or {}


def render(values):
    """The chart rendered with `values`: {template path: text}, NOTES.txt left out."""
    out = helm.Chart.load(str(CHART)).render(values=values, **RELEASE)
    return {k: v for k, v in sorted(out.items()) if not k.endswith("NOTES.txt")}


def documents(rendered):
    """Every non-empty YAML document of a render, with the template it came from."""
    docs = []
    for template, text in rendered.items():
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append((template, doc))
    return docs


def snapshot_text(rendered):
    """One stable text per render: each template under a `# Source:` line, as helm does."""
    parts = []
    for template, text in rendered.items():
        body = text.strip("\n")
        if body.strip():
            parts.append(f"---\n# Source: {template}\n{body}\n")
    return "".join(parts)


# --- lint -----------------------------------------------------------------------------

def cmd_lint():
    for path in values_files():
        report = helm.lint(str(CHART), values=load_values(path), strict=True, namespace="binder")
        problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
        problems += [{"error": e} for e in report.get("errors") or []]
        for problem in problems:
            fail(f"helm lint --strict with {path.name}: {problem}")
        if not problems:
            print(f"ok: helm lint --strict with {path.name}")


# --- validate -------------------------------------------------------------------------

def config_rs_keys():
    """The worker's file keys (FileConfig and KubeFile fields) and BINDERY_* variables."""
    source = (ROOT / "crates/worker/src/config/file.rs").read_text()

    def fields(struct):
        body = re.search(r"struct " + struct + r" \{(.*?)\n\}", source, re.S)
        if not body:
            raise SystemExit(f"config/file.rs has no struct {struct}: update helm_check.py")
        return set(re.findall(r"^\s+(?:pub(?:\([a-z]+\))? )?(\w+): Option<", body.group(1), re.M))

    env = set(re.findall(r'"(BINDERY_[A-Z0-9_]+)"', source))
    return fields("FileConfig"), fields("KubeFile"), env


def spin_variables():
    manifest = tomllib.loads((ROOT / "spin.toml").read_text())
    variables = manifest["variables"]
    secret = {name for name, spec in variables.items() if spec.get("secret")}
    return set(variables), secret


EXPECTED_RULES = [
    {"apiGroups": ["batch"], "resources": ["jobs"],
     "verbs": ["create", "get", "list", "watch", "delete"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
]


# What a build NetworkPolicy must keep build pods from: private ranges, the metadata
# service's link-local range, loopback (IPv4 and IPv6).
MUST_BLOCK = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
              "127.0.0.0/8", "fc00::/7", "fe80::/10", "::1/128"}
def build_pod_labels():
    """The labels the worker puts on every build pod (job.rs), which the policy selects."""
    source = (ROOT / "crates/worker/src/executor/kubernetes/job.rs").read_text()

    def const(name):
        match = re.search(r"pub const " + name + r': &str = "([^"]+)";', source)
        if not match:
            raise SystemExit(f"job.rs has no {name}: update helm_check.py")
        return match.group(1)

    return {"component": const("COMPONENT"), const("MANAGED_BY_LABEL"): const("MANAGED_BY")}


BUILD_POD_LABELS = build_pod_labels()


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def fence_problems(where, policy):
    """Why `policy` does not fence build pods: no egress policy type, any ingress, or an
    ipBlock that lets a private, link-local or loopback range through."""
    spec = policy["spec"]
    problems = []
    if sorted(spec.get("policyTypes", [])) != ["Egress", "Ingress"]:
        problems.append(f"{where}: build NetworkPolicy policyTypes are {spec.get('policyTypes')}")
    if spec.get("ingress"):
        problems.append(f"{where}: the build NetworkPolicy lets ingress in")
    blocked = set()
    for rule in spec.get("egress", []):
        for peer in rule.get("to", []):
            block = peer.get("ipBlock")
            if block and block["cidr"] in ("0.0.0.0/0", "::/0"):
                blocked |= set(block.get("except", []))
    if MUST_BLOCK - blocked:
        problems.append(f"{where}: the build NetworkPolicy lets build pods reach {sorted(MUST_BLOCK - blocked)}")
    dns = [r for r in spec.get("egress", []) if {p.get("port") for p in r.get("ports", [])} == {53}]
    if not dns or not all("podSelector" in p for r in dns for p in r.get("to", [{}])):
        problems.append(f"{where}: the build NetworkPolicy has no DNS rule limited to kube-dns")
    return problems


def check_builders(name, docs, toml, values):
    """The image builder the values ask for: worker.toml's builder_type, socket and selector
    match the DaemonSet (its socket's directory is a hostPath it mounts, its pods carry the
    selector's labels), and the build NetworkPolicy fences build and builder pods."""
    problems = []
    fail = problems.append
    builder = (values or {}).get("imageBuilderType", "host")
    kube = toml.get("kubernetes", {})
    if kube.get("builder_type") != builder:
        fail(f"{name}: worker.toml builder_type is {kube.get('builder_type')!r}, not {builder!r}")
    daemonsets = [d for _, d in docs if d.get("kind") == "DaemonSet"]
    builder_labels = {}
    if builder == "host":
        if daemonsets or "builder_selector" in kube:
            fail(f"{name}: imageBuilderType host renders a builder DaemonSet or selector")
    elif len(daemonsets) != 1:
        fail(f"{name}: imageBuilderType {builder} renders {len(daemonsets)} DaemonSets, not 1")
    else:
        ds = daemonsets[0]
        pod = ds["spec"]["template"]
        builder_labels = pod["metadata"]["labels"]
        selector = dict(t.split("=", 1) for t in kube.get("builder_selector", "").split(",") if t)
        if not selector or any(builder_labels.get(k) != v for k, v in selector.items()):
            fail(f"{name}: builder_selector {kube.get('builder_selector')!r} does not select the DaemonSet's pods {builder_labels}")
        socket_dir = kube.get("docker_socket", "").rsplit("/", 1)[0]
        host_dirs = {v["hostPath"]["path"] for v in pod["spec"].get("volumes", []) if "hostPath" in v}
        override = ((values or {}).get("config", {}).get("kubernetes") or {}).get("docker_socket")
        if socket_dir not in host_dirs and not override:
            fail(f"{name}: worker.toml docker_socket {kube.get('docker_socket')!r} is in none of the DaemonSet's hostPaths {sorted(host_dirs)}")
        if ds["metadata"].get("namespace") != kube.get("namespace"):
            fail(f"{name}: the builder DaemonSet is not in the build namespace {kube.get('namespace')!r}")
    # On unless the values switch it off: the chart's default must fence builds.
    if ((values or {}).get("buildNetworkPolicy") or {}).get("enabled", True) is False:
        return problems
    policies = [d for _, d in docs if d.get("kind") == "NetworkPolicy"
                and d["metadata"].get("namespace") == kube.get("namespace")]
    for what, labels in [("build pods", BUILD_POD_LABELS), ("builder pods", builder_labels)]:
        if not labels:
            continue
        fencing = [p for p in policies if selects(p["spec"]["podSelector"], labels)]
        if not fencing:
            fail(f"{name}: no NetworkPolicy selects the {what} ({labels})")
        for policy in fencing:
            problems.extend(fence_problems(f"{name}: {policy['metadata']['name']}", policy))
    return problems


def check_semantics(name, docs, keys=None, values=None):
    """What kubernetes-validate cannot see: the rendered worker.toml reads as the worker's
    config (every key one config.rs knows), env names the worker reads, least-privilege
    RBAC, and SpinApp variables that spin.toml declares (secret ones from Secrets only).
    Returns the problems found."""
    problems = []
    fail = problems.append
    file_keys, kube_keys, env_names = keys or config_rs_keys()
    variables, secret_variables = spin_variables()
    for template, doc in docs:
        kind = doc.get("kind")
        where = f"{name}: {template} ({kind})"
        if kind == "ConfigMap" and "worker.toml" in doc.get("data", {}):
            try:
                toml = tomllib.loads(doc["data"]["worker.toml"])
            except tomllib.TOMLDecodeError as e:
                fail(f"{where}: worker.toml is not TOML: {e}")
                continue
            unknown = set(toml) - file_keys
            unknown |= {f"kubernetes.{k}" for k in set(toml.get("kubernetes", {})) - kube_keys}
            if unknown:
                fail(f"{where}: worker.toml keys config.rs does not read: {sorted(unknown)}")
            if toml.get("executor") != "kubernetes":
                fail(f"{where}: worker.toml must select the kubernetes executor")
            problems.extend(check_builders(name, docs, toml, values))
            # Every value set in `config` reads back from worker.toml as written.
            config = (values or {}).get("config", {})
            for key, value in config.items():
                if key == "kubernetes":
                    for sub, v in value.items():
                        got = toml.get("kubernetes", {}).get(sub)
                        if v not in (None, "", [], {}) and got != v:
                            fail(f"{where}: config.kubernetes.{sub} is {v!r} but worker.toml says {got!r}")
                elif value not in (None, "") and toml.get(key) != value:
                    fail(f"{where}: config.{key} is {value!r} but worker.toml says {toml.get(key)!r}")
        if kind == "Deployment":
            probes = (values or {}).get("probes", {})
            for container in doc["spec"]["template"]["spec"]["containers"]:
                for env in container.get("env", []):
                    n = env["name"]
                    if n.startswith("BINDERY_") and n not in env_names:
                        fail(f"{where}: {n} is not a variable config.rs reads")
                # Unless the values choose otherwise, neither probe may depend on a peer:
                # /health fails with the hub, the registry or the Kubernetes API, and the
                # worker would be restarted or taken out of the Service for their outage.
                for probe in ("liveness", "readiness"):
                    if "path" in probes.get(probe, {}):
                        continue
                    path = container.get(f"{probe}Probe", {}).get("httpGet", {}).get("path")
                    if path != "/metrics":
                        fail(f"{where}: the {probe} probe asks {path!r}, not /metrics (no I/O)")
        if kind == "Role" and doc.get("rules") != EXPECTED_RULES:
            fail(f"{where}: rules are not exactly the least-privilege set: {doc.get('rules')}")
        if kind == "SpinApp":
            # Spin knows only `default` by itself and refuses an app naming another store
            # its runtime configuration lacks.
            defined = {s["name"] for s in doc["spec"].get("runtimeConfig", {}).get("keyValueStores", [])}
            for store in sorted(spin_stores() - {"default"} - defined):
                fail(f"{where}: runtimeConfig defines no key-value store {store!r}, which spin.toml names")
            for var in doc["spec"].get("variables", []):
                if var["name"] not in variables:
                    fail(f"{where}: variable {var['name']} is not in spin.toml")
                if var["name"] in secret_variables and "value" in var:
                    fail(f"{where}: secret variable {var['name']} given as a plain value")
    return problems


def kubernetes_validate(docs, label):
    """kubernetes-validate --strict on each document, for every version in KUBE_VERSIONS.
    Returns the failure text ("" when all pass)."""
    tool = Path(sys.executable).parent / "kubernetes-validate"
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, (template, doc) in enumerate(docs):
            f = Path(tmp) / f"{i:02}-{Path(template).stem}-{doc['kind']}.yaml"
            f.write_text(yaml.safe_dump(doc))
            files.append(str(f))
        if not files:
            return ""
        for version in KUBE_VERSIONS:
            run = subprocess.run([str(tool), "--strict", "--quiet", "-k", version, *files],
                                 capture_output=True, text=True)
            if run.returncode != 0:
                problems.append(f"{label} (Kubernetes {version}):\n{run.stdout}{run.stderr}")
    return "\n".join(problems)


def spinapp_errors(doc):
    # kubernetes-validate has no schema for the SpinKube CRD, so the SpinApp is checked
    # against ci/spinapp-v1alpha1.schema.json: the fields of core.spinkube.dev/v1alpha1
    # SpinApp this chart uses, with their types and required keys, and no others.
    schema = json.loads(SPINAPP_SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def split_kinds(docs):
    spin = [(t, d) for t, d in docs if d.get("kind") == "SpinApp"]
    core = [(t, d) for t, d in docs if d.get("kind") != "SpinApp"]
    return core, spin


# worker.toml keys the chart does not take from values: the ones it sets itself, the
# secrets (environment from Secrets) and the local executor's.
CHART_SETS = {"listen", "executor", "build_log_path", "kubernetes.push_secret",
              "kubernetes.api_url", "kubernetes.builder_type", "kubernetes.builder_selector"}
FROM_SECRETS = {"token", "hub_api_token", "registry_username", "registry_password"}
LOCAL_ONLY = {"repo2docker", "build_engine", "repo2docker_config", "build_env"}


def check_config_coverage(keys):
    """Every key config.rs reads is in values.schema.json's `config` or deliberately not."""
    file_keys, kube_keys, _ = keys
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["config"]
    exposed = set(schema["properties"]) - {"kubernetes"}
    exposed_kube = set(schema["properties"]["kubernetes"]["properties"])
    known = file_keys | {f"kubernetes.{k}" for k in kube_keys}
    offered = exposed | {f"kubernetes.{k}" for k in exposed_kube}
    missing = known - offered - CHART_SETS - FROM_SECRETS - LOCAL_ONLY - {"kubernetes"}
    stale = offered - known
    if missing:
        fail(f"crates/worker/src/config/file.rs reads keys the chart does not offer: {sorted(missing)}; "
             "add them to values.yaml, values.schema.json and bindery.workerToml, or to the "
             "deliberate exclusions in tests/py/helm_check.py")
    if stale:
        fail(f"values.schema.json offers keys config.rs no longer reads: {sorted(stale)}")
    # ci/everything-values.yaml sets each of them, so each one's rendering is read back.
    config = load_values(CI / "everything-values.yaml").get("config", {})
    set_keys = {k for k, v in config.items() if k != "kubernetes" and v not in (None, "")}
    set_keys |= {f"kubernetes.{k}" for k, v in config.get("kubernetes", {}).items()
                 if v not in (None, "", [], {})}
    if offered - set_keys:
        fail(f"ci/everything-values.yaml leaves worker settings unset: {sorted(offered - set_keys)}")
    if not missing and not stale:
        print(f"ok: the chart offers every worker setting ({len(offered)} keys) but the "
              "ones it sets, the secrets and the local executor's")


def cmd_validate():
    keys = config_rs_keys()
    check_config_coverage(keys)
    for path in values_files():
        name = case_name(path)
        values = load_values(path)
        docs = documents(render(values))
        core, spin = split_kinds(docs)
        problems = kubernetes_validate(core, name)
        if problems:
            fail(f"kubernetes-validate --strict: {problems}")
        for template, doc in spin:
            for error in spinapp_errors(doc):
                fail(f"{name}: {template}: SpinApp schema: {error}")
        for problem in check_semantics(name, docs, keys, values):
            fail(problem)
        kinds = sorted(d["kind"] for _, d in docs)
        print(f"ok: {name}: {len(docs)} manifests validated: {', '.join(kinds)}")


def cmd_worker_toml(out_dir):
    """Writes each case's rendered worker.toml to <out_dir>/<case>.toml, for tests/helm.rs
    to start the real `bindery worker` with."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for path in values_files():
        docs = documents(render(load_values(path)))
        tomls = [d["data"]["worker.toml"] for _, d in docs
                 if d.get("kind") == "ConfigMap" and "worker.toml" in d.get("data", {})]
        if len(tomls) != 1:
            fail(f"{path.name}: {len(tomls)} ConfigMaps with worker.toml, not 1")
            continue
        target = out / f"{case_name(path)}.toml"
        target.write_text(tomls[0])
        print(target)


# --- bad values -----------------------------------------------------------------------

def expectation(path):
    match = re.search(r"^# expect: (.+)$", path.read_text(), re.M)
    if not match:
        raise SystemExit(f"{path} has no `# expect: <text of the error>` line")
    return match.group(1).strip()


def cmd_bad_values():
    bad = sorted((CI / "bad").glob("*.yaml"))
    if not bad:
        fail("no bad values files in ci/bad/")
    for path in bad:
        expected = expectation(path)
        try:
            render(load_values(path))
        except Exception as e:  # the SDK raises HelmValuesError or HelmRenderError
            if expected in str(e):
                print(f"ok: {path.name} refused: {type(e).__name__}: {expected}")
            else:
                fail(f"{path.name} failed, but not with {expected!r}: {e}")
            continue
        fail(f"{path.name} rendered, but wrong values must fail the render ({expected})")


# --- snapshots ------------------------------------------------------------------------

def snapshot_drift(name, fresh, committed):
    if committed is None:
        return f"{name}: no snapshot"
    if fresh == committed:
        return ""
    import difflib
    diff = "".join(difflib.unified_diff(committed.splitlines(True), fresh.splitlines(True),
                                        f"committed/{name}.yaml", f"fresh/{name}.yaml", n=2))
    return f"{name}: the render differs from the snapshot:\n{diff[:6000]}"


def cmd_snapshots():
    update = os.environ.get(UPDATE_ENV) == "1"
    SNAPSHOTS.mkdir(parents=True, exist_ok=True)
    names = set()
    for path in values_files():
        name = case_name(path)
        names.add(name)
        fresh = snapshot_text(render(load_values(path)))
        snap = SNAPSHOTS / f"{name}.yaml"
        if update:
            snap.write_text(fresh)
            print(f"updated: {snap.relative_to(ROOT)}")
            continue
        drift = snapshot_drift(name, fresh, snap.read_text() if snap.exists() else None)
        if drift:
            fail(f"{drift}\nIf the change is intended, refresh the snapshots with "
                 f"`{UPDATE_ENV}=1 cargo test -p bindery-system-tests --test helm` and commit them.")
        else:
            print(f"ok: {name} matches {snap.relative_to(ROOT)}")
    for stale in SNAPSHOTS.glob("*.yaml"):
        if stale.stem not in names:
            fail(f"{stale.relative_to(ROOT)} has no ci/{stale.stem}-values.yaml: delete it")


# --- selftest -------------------------------------------------------------------------

def cmd_selftest():
    """Proves each check can fail: broken inputs made from a good render must be caught."""
    path = CI / "everything-values.yaml"
    docs = documents(render(load_values(path)))
    core, spin = split_kinds(docs)

    deployment = [(t, d) for t, d in core if d["kind"] == "Deployment"]
    for mutate, what in [
        (lambda d: d["spec"]["template"]["spec"]["containers"][0].__setitem__("imagePullPolicyy", "Always"),
         "an unknown field"),
        (lambda d: d["spec"].__setitem__("replicas", "one"), "a wrong type"),
    ]:
        broken = copy.deepcopy(deployment)
        mutate(broken[0][1])
        if kubernetes_validate(broken, "selftest"):
            print(f"ok: kubernetes-validate --strict refuses {what}")
        else:
            fail(f"selftest: kubernetes-validate --strict accepted {what}")

    if not spin:
        fail("selftest: everything-values.yaml renders no SpinApp")
    for mutate, what in [
        (lambda d: d["spec"].pop("image"), "a SpinApp without image"),
        (lambda d: d["spec"].__setitem__("replica", 2), "an unknown SpinApp field"),
        (lambda d: d["spec"]["variables"][0].__setitem__("value", 3), "a non-string variable"),
    ]:
        for _, doc in spin:
            bad = copy.deepcopy(doc)
            mutate(bad)
            if spinapp_errors(bad):
                print(f"ok: the SpinApp schema refuses {what}")
            else:
                fail(f"selftest: the SpinApp schema accepted {what}")

    broken = copy.deepcopy(docs)
    for _, doc in broken:
        if doc["kind"] == "ConfigMap":
            toml = doc["data"]["worker.toml"].replace("total_quota = 500", "total_quota = 50")
            doc["data"]["worker.toml"] = "launch_timeout = 5\n" + toml
        if doc["kind"] == "Role":
            doc["rules"][1]["verbs"].append("delete")
        if doc["kind"] == "Deployment":
            doc["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] = "/health"
        if doc["kind"] == "SpinApp":
            doc["spec"]["variables"].append({"name": "github_token", "value": "plain"})
    caught = check_semantics("selftest", broken, values=load_values(path))
    for needle, what in [("launch_timeout", "an unknown worker.toml key"),
                         ("config.total_quota", "a worker.toml value that differs from values"),
                         ("least-privilege", "a widened Role"),
                         ("readiness probe asks '/health'", "a readiness probe that depends on peers"),
                         ("secret variable github_token", "a secret edge variable in plain text")]:
        if any(needle in f for f in caught):
            print(f"ok: the semantic check refuses {what}")
        else:
            fail(f"selftest: the semantic check accepted {what}")

    # The builder and the build NetworkPolicy checks catch a policy that lets the metadata
    # service through, a socket outside the DaemonSet's hostPaths, a selector that misses
    # its pods, and a missing policy.
    values = load_values(path)
    for mutate, needle, what in [
        (lambda d: d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("-builds") and d["spec"]["egress"][1]["to"][0]["ipBlock"]["except"].remove("169.254.0.0/16"),
         "169.254.0.0/16", "a build NetworkPolicy open to the metadata service"),
        (lambda d: d["kind"] == "ConfigMap" and d["data"].__setitem__(
            "worker.toml", d["data"]["worker.toml"].replace("component=image-builder", "component=builder")),
         "does not select the DaemonSet", "a builder_selector that misses the DaemonSet"),
        (lambda d: d["kind"] == "DaemonSet" and d["spec"]["template"]["spec"]["volumes"][1]["hostPath"].__setitem__("path", "/elsewhere"),
         "none of the DaemonSet's hostPaths", "a socket the DaemonSet does not make"),
    ]:
        broken = copy.deepcopy(docs)
        for _, doc in broken:
            mutate(doc)
        no_override = copy.deepcopy(values)
        no_override["config"]["kubernetes"].pop("docker_socket", None)
        caught = check_semantics("selftest", broken, values=no_override)
        if any(needle in f for f in caught):
            print(f"ok: the builder check refuses {what}")
        else:
            fail(f"selftest: the builder check accepted {what}: {caught}")
    unfenced = [(t, d) for t, d in docs if d["kind"] != "NetworkPolicy" or "builds" not in d["metadata"]["name"]]
    if any("no NetworkPolicy selects the build pods" in f for f in check_semantics("selftest", unfenced, values=values)):
        print("ok: the builder check refuses build pods without a NetworkPolicy")
    else:
        fail("selftest: the builder check accepted build pods without a NetworkPolicy")

    fresh = snapshot_text(render(load_values(path)))
    if snapshot_drift("selftest", fresh, fresh.replace("replicas: 1", "replicas: 2")):
        print("ok: the snapshot comparison notices drift")
    else:
        fail("selftest: the snapshot comparison missed a changed line")


# --- py-compile -----------------------------------------------------------------------

def cmd_py_compile():
    import py_compile
    count = 0
    for path in sorted((ROOT / "infra").rglob("*.py")):
        try:
            py_compile.compile(str(path), doraise=True)
            count += 1
        except py_compile.PyCompileError as e:
            fail(f"{path.relative_to(ROOT)} does not compile: {e.msg}")
    # z2jh values files: the chart's templates and renders are not values files.
    for path in sorted((ROOT / "infra").rglob("*.yaml")):
        if CHART in path.parents:
            continue
        doc = yaml.safe_load(path.read_text()) or {}
        extra = (doc.get("hub") or {}).get("extraConfig") if isinstance(doc, dict) else None
        for key, code in (extra or {}).items():
            try:
                compile(code, f"{path.relative_to(ROOT)}:hub.extraConfig.{key}", "exec")
                count += 1
            except SyntaxError as e:
                fail(f"{path.relative_to(ROOT)} hub.extraConfig.{key} does not compile: {e}")
    if count == 0:
        fail("no Python found under infra/ (files or hub.extraConfig)")
    else:
        print(f"ok: {count} Python sources under infra/ compile")


# --- spin runtime config ------------------------------------------------------------

# The runtime-config fields Spin 3 reads for what these files use (its option structs
# deny unknown fields): store type -> (required, optional) fields, the same for
# variable providers.
SPIN_STORES = {"spin": (set(), {"path"}), "redis": ({"url"}, set())}
SPIN_PROVIDERS = {"env": (set(), {"prefix", "dotenv_path"}),
                  "vault": ({"url", "token", "mount"}, {"prefix"})}
SPIN_TOP_LEVEL = {"key_value_store", "variables_provider", "config_provider",
                  "sqlite_database", "llm_compute", "state_dir", "log_dir"}


def spin_config_errors(name, config, stores_used):
    errors = []

    def fields(where, table, kinds):
        kind = table.get("type")
        if kind not in kinds:
            errors.append(f"{name}: {where}: type {kind!r} is none of {sorted(kinds)}")
            return
        required, optional = kinds[kind]
        keys = set(table) - {"type"}
        if required - keys:
            errors.append(f"{name}: {where}: missing {sorted(required - keys)}")
        if keys - required - optional:
            errors.append(f"{name}: {where}: unknown fields {sorted(keys - required - optional)}")

    for key in set(config) - SPIN_TOP_LEVEL:
        errors.append(f"{name}: unknown top-level key {key!r}")
    for store in sorted(stores_used - {"default"} - set(config.get("key_value_store", {}))):
        errors.append(f"{name}: no key_value_store.{store}, which spin.toml names (Spin refuses the app)")
    for store, table in config.get("key_value_store", {}).items():
        if store not in stores_used:
            errors.append(f"{name}: key_value_store.{store} is a store no component of spin.toml uses")
        fields(f"key_value_store.{store}", table, SPIN_STORES)
    for i, table in enumerate(config.get("variables_provider", [])):
        fields(f"variables_provider[{i}]", table, SPIN_PROVIDERS)
    return errors


def spin_stores():
    """Every key-value store label a component of spin.toml names."""
    manifest = tomllib.loads((ROOT / "spin.toml").read_text())
    return {s for c in manifest["component"].values() for s in c.get("key_value_stores", [])}


def cmd_spin_config():
    stores = spin_stores()
    files = sorted((ROOT / "infra/spin").glob("*.toml"))
    if not files:
        fail("no runtime configuration in infra/spin/")
    for path in files:
        try:
            config = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            fail(f"{path.name} is not TOML: {e}")
            continue
        errors = spin_config_errors(path.name, config, stores)
        for error in errors:
            fail(error)
        if not errors:
            print(f"ok: {path.name} uses only fields Spin reads and stores spin.toml names")
    # The check itself must catch a misspelt field and a store nobody uses.
    broken = {"key_value_store": {"cache": {"type": "redis", "uri": "redis://x"}},
              "variables_provider": [{"type": "vault", "url": "https://v", "token": "t"}]}
    if len(spin_config_errors("selftest", broken, stores)) < 4:
        fail("the runtime-config check missed a broken file")
    if not spin_config_errors("selftest", {"key_value_store": {}}, stores | {"extra"}):
        fail("the runtime-config check missed a store spin.toml names and the file lacks")


# --- hub spawner ----------------------------------------------------------------------

HUB_VALUES = ROOT / "infra/jupyterhub/values.yaml"
# A kubeconfig naming an unreachable server: KubeSpawner loads one when it is made, and
# nothing here talks to Kubernetes.
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none, namespace: jhub}}]
current-context: none
"""


class FakeUser:
    """The part of JupyterHub's User the spawner touches; records minted tokens."""

    def __init__(self, name):
        self.name = name
        self.id = 1
        self.url = f"/user/{name}/"
        self.tokens = []

    def new_api_token(self, **kwargs):
        self.tokens.append(kwargs)


def cmd_hub_spawner():
    """Loads hub.extraConfig of infra/jupyterhub/values.yaml as z2jh does (with `c` and
    the hub.config values) on the real KubeSpawner, and drives the spawner with the
    user_options the worker sends (crates/worker/src/launcher.rs)."""
    import asyncio

    # kubernetes_asyncio reads KUBECONFIG when kubespawner imports it.
    tmp = tempfile.mkdtemp(prefix="bindery-kubeconfig-")
    kubeconfig = Path(tmp) / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    os.environ["KUBECONFIG"] = str(kubeconfig)
    from traitlets.config import Config
    from tornado import web

    values = yaml.safe_load(HUB_VALUES.read_text())
    c = Config(values["hub"].get("config", {}))
    namespace = {"c": c, "get_config": lambda: c}
    for key, code in sorted(values["hub"]["extraConfig"].items()):
        exec(compile(code, f"hub.extraConfig.{key}", "exec"), namespace)
    spawner_class = c.JupyterHub.spawner_class
    if not isinstance(spawner_class, type) or spawner_class.__name__ != "BinderySpawner":
        fail(f"hub.extraConfig does not set c.JupyterHub.spawner_class to BinderySpawner: {spawner_class!r}")
        return
    prefix = c.BinderySpawner.image_prefix
    if not prefix:
        fail("hub.config.BinderySpawner.image_prefix is not set")
        return
    scopes = values["hub"]["loadRoles"]["binder"]["scopes"]
    if sorted(scopes) != ["admin:users", "servers"]:
        fail(f"the binder role's scopes changed: {scopes}")
    options = {
        "image": f"{prefix}gh-org-repo:0123abc",
        "token": "launch-token-0123456789",
        "repo_url": "https://github.com/org/repo",
        "binder_ref_url": "https://github.com/org/repo/tree/0123abc",
        "binder_launch_host": "https://binder.example.org/",
        "binder_request": "v2/gh/org/repo/main",
        "binder_persistent_request": "v2/gh/org/repo/0123abc",
        "binder_client_ip": "192.0.2.1",
    }

    async def drive():
        user = FakeUser("binder-u1")
        spawner = spawner_class(_mock=True, user=user, config=c)
        spawner.user_options = dict(options)
        # JupyterHub calls `apply_user_options(spawner, user_options)` when it is set; a
        # method of that name on the class breaks every spawn with 400.
        if "apply_user_options" in vars(spawner_class):
            fail("the spawner overrides JupyterHub's apply_user_options hook")
        spawner.take_binder_options()
        if spawner.image != options["image"]:
            fail(f"the spawner runs {spawner.image!r}, not user_options' image")
        want = [{"token": options["token"], "note": "binder launch token",
                 "scopes": ["access:servers!user=binder-u1"]}]
        if user.tokens != want:
            fail(f"the launch token was not registered for this user's server only: {user.tokens}")
        env = spawner.get_env()
        for key, name in [("repo_url", "BINDER_REPO_URL"), ("binder_ref_url", "BINDER_REF_URL"),
                          ("binder_launch_host", "BINDER_LAUNCH_HOST"),
                          ("binder_request", "BINDER_REQUEST"),
                          ("binder_persistent_request", "BINDER_PERSISTENT_REQUEST")]:
            if env.get(name) != options[key]:
                fail(f"the server's {name} is {env.get(name)!r}, not user_options' {key}")
        if env.get("JUPYTER_IMAGE") != options["image"]:
            fail("KubeSpawner's JUPYTER_IMAGE is not the launched image")
        # cors_allow_origin reaches the server as its allow_origin (issue 14).
        for setting, want in [
            ("", []),
            ("*", ["--ServerApp.allow_origin=*", "--ServerApp.allow_origin_pat=.*"]),
            ("https://book.example.org", ["--ServerApp.allow_origin=https://book.example.org"]),
            ("https://a.org http://127.0.0.1:8080",
             ["--ServerApp.allow_origin_pat=^(https://a\\.org|http://127\\.0\\.0\\.1:8080)$"]),
        ]:
            c.BinderySpawner.cors_allow_origin = setting
            with_cors = spawner_class(_mock=True, user=FakeUser("binder-u3"), config=c)
            got = [a for a in with_cors.get_args() if "allow_origin" in a]
            if got != want:
                fail(f"cors_allow_origin {setting!r} gave the server {got}, not {want}")
        c.BinderySpawner.cors_allow_origin = ""
        for bad, what in [({**options, "image": "docker.io/evil/miner:1"}, "an image outside the prefix"),
                          ({k: v for k, v in options.items() if k != "token"}, "options without a token"),
                          ({k: v for k, v in options.items() if k != "image"}, "options without an image")]:
            refused = spawner_class(_mock=True, user=FakeUser("binder-u2"), config=c)
            refused.user_options = bad
            try:
                refused.take_binder_options()
                fail(f"the spawner accepted {what}")
            except web.HTTPError as e:
                if e.status_code != 400:
                    fail(f"the spawner refused {what} with {e.status_code}, not 400")

    before = len(failures)
    try:
        asyncio.run(drive())
    finally:
        kubeconfig.unlink()
        os.rmdir(tmp)
    if len(failures) == before:
        print("ok: BinderySpawner runs user_options' image, registers the launch token, "
              "passes the provenance and refuses bad options")


COMMANDS = {
    "lint": cmd_lint,
    "validate": cmd_validate,
    "bad-values": cmd_bad_values,
    "snapshots": cmd_snapshots,
    "selftest": cmd_selftest,
    "py-compile": cmd_py_compile,
    "hub-spawner": cmd_hub_spawner,
    "spin-config": cmd_spin_config,
}

if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "worker-toml":
        cmd_worker_toml(sys.argv[2])
    elif len(sys.argv) == 2 and sys.argv[1] in COMMANDS:
        COMMANDS[sys.argv[1]]()
    else:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(COMMANDS)}}} | worker-toml <dir>")
    sys.exit(1 if failures else 0)
