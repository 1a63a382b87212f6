"""Kubernetes manifests of a generated project (``deploy/k8s``).

Static tier (always runs; kubectl, kubernetes-validate and checkov are required, so a
missing tool skips loudly locally and fails in CI):
- ``kubectl kustomize`` builds the base and every overlay, with exactly the objects the
  answers call for;
- every built object validates with ``kubernetes-validate --strict`` against each
  supported minor (1.30 through 1.37). The Prometheus Operator objects are CRDs, which
  kubernetes-validate has no schema for: they are validated against the JSON schema of
  the operator's CRD models (``cloudcoil-models-prometheus-operator``, generated from the
  CRDs), made strict here by rejecting unknown keys. Each validator is shown to reject a
  broken object, so a pass means something;
- checkov reports no failed check on the built manifests nor on the Dockerfile, every
  skip is an inline annotation with a reason;
- consistency across files: selectors, ports, ``PORT``, the grace-period arithmetic
  against the rendered ``gunicorn.conf.py``, ``WEB_CONCURRENCY`` against the rendered
  ``server.py`` formula applied to each overlay's CPU limit, image name and tag, the
  PrometheusRule against ``monitoring/alert-rules.yml``.

Container tier (marker ``container``): the Deployment and ConfigMap of an overlay run
for real with ``podman kube play`` (security context, volumes, env, resources), and the
pod answers its probes and ``/metrics`` with several workers.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from svcforge.envs import CACHE_DIR

from .conftest import Render
from .support import free_port, require_tool, run, unavailable

SUPPORTED_MINORS = tuple(f"1.{minor}" for minor in range(30, 38))
OVERLAYS = ("base", "overlays/dev", "overlays/prod")
SIZED_OVERLAYS = ("overlays/dev", "overlays/prod")
CORE_KINDS = {
    "ServiceAccount",
    "ConfigMap",
    "Service",
    "Deployment",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
}
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
RECOMMENDED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
)
UID = GID = 10001
MULTIPROC_DIR = "/tmp/prometheus-multiproc"
# Required OTEL_* settings when tracing is on (the observability contract).
OTEL_SETTINGS = (
    "OTEL_SERVICE_NAME",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_METRICS_EXPORTER",
    "OTEL_LOGS_EXPORTER",
)
# Checks that must have run and passed: proof that checkov looked at our objects.
KEY_CHECKOV_CHECKS = {
    "CKV_K8S_8",  # liveness probe
    "CKV_K8S_9",  # readiness probe
    "CKV_K8S_20",  # allowPrivilegeEscalation
    "CKV_K8S_22",  # read-only root filesystem
    "CKV_K8S_28",  # NET_RAW dropped
    "CKV_K8S_38",  # no service account token
    "CKV_K8S_40",  # high UID
    "CKV2_K8S_6",  # a NetworkPolicy selects the pod
}

# Answer sets: metrics on/off x tracing on/off, both frameworks. The first two are the
# defaults, the same renders (and images) the other tiers use.
COMBOS: dict[str, dict[str, Any]] = {
    "fastapi": {"framework": "fastapi"},
    "flask": {"framework": "flask"},
    "flask-no-tracing": {"framework": "flask", "tracing": False},
    "fastapi-no-metrics": {"framework": "fastapi", "metrics": False},
    "flask-no-metrics-no-tracing": {"framework": "flask", "metrics": False, "tracing": False},
}


# --------------------------------------------------------------------------- #
# Building and reading the manifests
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class Manifests:
    """One rendered project and the output of ``kubectl kustomize`` for each overlay."""

    project: Path
    answers: dict[str, Any]
    files: dict[str, Path]
    docs: dict[str, list[dict[str, Any]]]

    @property
    def metrics(self) -> bool:
        return bool(self.answers.get("metrics", True))

    @property
    def tracing(self) -> bool:
        return bool(self.answers.get("tracing", True))

    @property
    def slug(self) -> str:
        return str(
            yaml.safe_load((self.project / ".copier-answers.yml").read_text())["project_slug"]
        )

    def all(self, overlay: str, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs[overlay] if doc["kind"] == kind]

    def one(self, overlay: str, kind: str) -> dict[str, Any]:
        found = self.all(overlay, kind)
        assert len(found) == 1, f"{overlay}: expected one {kind}, found {len(found)}"
        return found[0]

    def pod(self, overlay: str) -> dict[str, Any]:
        return dict(self.one(overlay, "Deployment")["spec"]["template"])

    def container(self, overlay: str) -> dict[str, Any]:
        containers = self.pod(overlay)["spec"]["containers"]
        assert len(containers) == 1, containers
        return dict(containers[0])

    def env(self, overlay: str) -> dict[str, str]:
        """The container's environment: its ConfigMaps first, then ``env`` (which wins)."""
        values: dict[str, str] = {}
        container = self.container(overlay)
        for source in container.get("envFrom", []):
            name = source["configMapRef"]["name"]
            (config,) = [c for c in self.all(overlay, "ConfigMap") if c["metadata"]["name"] == name]
            values.update(config["data"])
        for item in container.get("env", []):
            values[item["name"]] = item["value"]
        return values


def cached_tool(name: str) -> str:
    """``name`` from its own virtual environment made by ci-tools.sh, else PATH."""
    beside = CACHE_DIR / "tools" / name / "bin" / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    unavailable(f"`{name}` is not installed (bash scripts/ci-tools.sh installs it in .cache/tools)")
    raise AssertionError("unreachable")


def kustomize(directory: Path) -> str:
    return run([cached_tool("kubectl"), "kustomize", str(directory)], cwd=directory).stdout


@pytest.fixture(scope="session")
def manifests(
    rendered: Render, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Manifests]:
    """``manifests(combo)``: the combination rendered once and every overlay built once."""
    cache: dict[str, Manifests] = {}

    def _build(combo: str) -> Manifests:
        if combo not in cache:
            answers = COMBOS[combo]
            project = rendered(**answers)
            out = tmp_path_factory.mktemp(f"k8s-{combo}")
            files, docs = {}, {}
            for overlay in OVERLAYS:
                text = kustomize(project / "deploy" / "k8s" / overlay)
                path = out / f"{overlay.replace('/', '-')}.yaml"
                path.write_text(text)
                files[overlay] = path
                docs[overlay] = [doc for doc in yaml.safe_load_all(text) if doc]
            cache[combo] = Manifests(project, answers, files, docs)
        return cache[combo]

    return _build


def cpu(quantity: str | int | float) -> float:
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def memory(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity)


def load_module(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gunicorn_default(project: Path, setting: str) -> tuple[str, int]:
    """``(environment variable, default)`` of ``setting = env_int(VAR, default, ...)``."""
    tree = ast.parse((project / "gunicorn.conf.py").read_text())
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == [setting]
            and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", None) == "env_int"
        ):
            variable, default = (ast.literal_eval(arg) for arg in node.value.args[:2])
            return str(variable), int(default)
    raise AssertionError(f"gunicorn.conf.py has no `{setting} = env_int(...)`")


def container_port(manifests: Manifests, overlay: str, port: int | str) -> int:
    """A port number or a named port of the container, resolved to its number."""
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in manifests.container(overlay)["ports"]}
    assert port in named, f"{port!r} is not a named port of the container: {named}"
    return int(named[port])


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"unexpected selector form: {selector}"
    wanted = selector["matchLabels"]
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


# --------------------------------------------------------------------------- #
# kubectl kustomize and the set of objects
# --------------------------------------------------------------------------- #
def test_no_manifests_without_kubernetes(rendered: Render) -> None:
    project = rendered(framework="fastapi", kubernetes=False)
    assert not (project / "deploy").exists()
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            text = path.read_text(errors="replace")
            for word in ("kustomiz", "kubectl", "Deploy to Kubernetes", "k8s"):
                assert word not in text, f"{path.relative_to(project)} mentions {word!r}"


@pytest.mark.parametrize("combo", COMBOS)
def test_overlays_build_with_the_expected_objects(
    manifests: Callable[[str], Manifests], combo: str
) -> None:
    m = manifests(combo)
    operator = OPERATOR_KINDS if m.metrics else set()
    expected = {
        "base": CORE_KINDS,
        "overlays/dev": CORE_KINDS,
        "overlays/prod": CORE_KINDS | operator,
    }
    for overlay, kinds in expected.items():
        found = [doc["kind"] for doc in m.docs[overlay]]
        assert sorted(found) == sorted(kinds), f"{overlay}: {found}"
    components = m.project / "deploy" / "k8s" / "components"
    assert components.exists() == m.metrics
    assert (components / "monitoring").is_dir() == m.metrics


# --------------------------------------------------------------------------- #
# Schemas
# --------------------------------------------------------------------------- #
def kubernetes_validate() -> str:
    """kubernetes-validate of the test environment (a test dependency), else PATH."""
    beside = Path(sys.executable).parent / "kubernetes-validate"
    return str(beside) if beside.exists() else require_tool("kubernetes-validate")


@pytest.fixture(scope="session")
def core_manifest_files(
    manifests: Callable[[str], Manifests], tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[Path], int]:
    """Every built overlay of every combination without the CRD objects; object count."""
    out = tmp_path_factory.mktemp("k8s-core")
    files, count = [], 0
    for combo in COMBOS:
        m = manifests(combo)
        for overlay in OVERLAYS:
            docs = [d for d in m.docs[overlay] if d["kind"] not in OPERATOR_KINDS]
            path = out / f"{combo}-{overlay.replace('/', '-')}.yaml"
            path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
            files.append(path)
            count += len(docs)
    return files, count


@pytest.mark.parametrize("minor", SUPPORTED_MINORS)
def test_objects_validate_strictly_against_each_supported_minor(
    core_manifest_files: tuple[list[Path], int], minor: str
) -> None:
    files, count = core_manifest_files
    result = run(
        [kubernetes_validate(), "--strict", "-k", minor, *map(str, files)], cwd=files[0].parent
    )
    passed = re.findall(
        rf"passed for resource \S+ against version {re.escape(minor)}", result.stdout
    )
    assert len(passed) == count, f"{len(passed)} of {count} objects validated:\n{result.stdout}"


def test_strict_validation_rejects_unknown_and_newer_fields(
    manifests: Callable[[str], Manifests], tmp_path: Path
) -> None:
    """The validator is not vacuous: an unknown field and a field newer than 1.30 fail."""
    m = manifests("fastapi")
    unknown = copy.deepcopy(m.one("overlays/prod", "Deployment"))
    unknown["spec"]["template"]["spec"]["containers"][0]["bogusField"] = True
    newer = copy.deepcopy(m.one("overlays/prod", "Deployment"))
    newer["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["stopSignal"] = "SIGTERM"
    # lifecycle.stopSignal appeared in Kubernetes 1.33.
    for doc, minor in ((unknown, "1.37"), (newer, "1.30"), (newer, "1.32")):
        path = tmp_path / "broken.yaml"
        path.write_text(yaml.safe_dump(doc))
        result = subprocess.run(
            [kubernetes_validate(), "--strict", "-k", minor, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode != 0, f"accepted:\n{result.stdout}{result.stderr}"


def operator_schema(kind: str) -> dict[str, Any]:
    """JSON schema of a Prometheus Operator CRD, strict: unknown keys are rejected."""
    from cloudcoil.models.prometheus_operator import v1 as models

    schema: dict[str, Any] = getattr(models, kind).model_json_schema(by_alias=True)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                node.setdefault("additionalProperties", False)
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    return schema


def crd_errors(doc: dict[str, Any]) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(operator_schema(doc["kind"]))
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


@pytest.mark.parametrize("combo", [c for c in COMBOS if COMBOS[c].get("metrics", True)])
def test_operator_objects_match_the_crd_schemas(
    manifests: Callable[[str], Manifests], combo: str
) -> None:
    m = manifests(combo)
    for kind in sorted(OPERATOR_KINDS):
        doc = m.one("overlays/prod", kind)
        assert crd_errors(doc) == [], f"{kind} does not match the CRD schema"
        broken = copy.deepcopy(doc)
        broken["spec"]["bogusField"] = 1
        assert crd_errors(broken), f"the {kind} schema accepted an unknown field"


# --------------------------------------------------------------------------- #
# checkov
# --------------------------------------------------------------------------- #


def checkov(framework: str, files: list[Path]) -> list[dict[str, Any]]:
    """Run checkov offline; its JSON report(s), asserting it exited cleanly."""
    command = [cached_tool("checkov"), "--framework", framework, "--skip-download", "--compact"]
    command += ["--output", "json"]  # not --quiet: the report lists passed checks too
    for path in files:
        command += ["--file", str(path)]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        cwd=files[0].parent,
    )
    assert result.stdout.strip(), (
        f"checkov printed nothing (exit {result.returncode}):\n{result.stderr}"
    )
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        f"{c['check_id']} {c['check_name']} ({c['resource']} in {c['file_path']})"
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    assert failed == [], "checkov failed checks:\n" + "\n".join(failed)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    return reports


def assert_skips_have_reasons(reports: list[dict[str, Any]]) -> None:
    for report in reports:
        for check in report["results"]["skipped_checks"]:
            reason = (check.get("check_result") or {}).get("suppress_comment", "")
            assert len(reason.split()) >= 4, (
                f"{check['check_id']} skipped without a reason: {reason!r}"
            )


def test_checkov_kubernetes_finds_nothing(manifests: Callable[[str], Manifests]) -> None:
    files = [manifests(combo).files[overlay] for combo in COMBOS for overlay in OVERLAYS]
    reports = checkov("kubernetes", files)
    assert_skips_have_reasons(reports)
    passed = {c["check_id"] for r in reports for c in r["results"]["passed_checks"]}
    assert passed >= KEY_CHECKOV_CHECKS, f"not run: {sorted(KEY_CHECKOV_CHECKS - passed)}"
    resources = {
        c["resource"].split(".")[0] for r in reports for c in r["results"]["passed_checks"]
    }
    assert {"Deployment", "Service", "ServiceAccount"} <= resources, resources


@pytest.mark.parametrize("framework", ["fastapi", "flask"])
def test_checkov_dockerfile_finds_nothing(rendered: Render, framework: str) -> None:
    project = rendered(framework=framework)
    dockerfile = project / "Dockerfile"
    assert dockerfile.is_file(), "the generated project has no Dockerfile"
    reports = checkov("dockerfile", [dockerfile])
    assert_skips_have_reasons(reports)
    assert sum(r["summary"]["passed"] for r in reports) > 0, reports


# --------------------------------------------------------------------------- #
# Consistency across files
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("combo", COMBOS)
def test_selectors_and_labels_agree(manifests: Callable[[str], Manifests], combo: str) -> None:
    m = manifests(combo)
    for overlay in OVERLAYS:
        deployment = m.one(overlay, "Deployment")
        pod_labels = m.pod(overlay)["metadata"]["labels"]
        assert selector_matches(deployment["spec"]["selector"], pod_labels)
        assert selector_matches(
            {"matchLabels": m.one(overlay, "Service")["spec"]["selector"]}, pod_labels
        )
        assert selector_matches(
            m.one(overlay, "PodDisruptionBudget")["spec"]["selector"], pod_labels
        )
        assert selector_matches(m.one(overlay, "NetworkPolicy")["spec"]["podSelector"], pod_labels)
        for spread in m.pod(overlay)["spec"]["topologySpreadConstraints"]:
            assert selector_matches(spread["labelSelector"], pod_labels)
        assert pod_labels["app.kubernetes.io/name"] == m.slug
        for doc in m.docs[overlay]:
            labels = doc["metadata"].get("labels", {})
            missing = [key for key in RECOMMENDED_LABELS if key not in labels]
            assert not missing, f"{overlay} {doc['kind']} lacks {missing}"
            assert labels["app.kubernetes.io/name"] == m.slug
        hpa = m.one(overlay, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
        assert (hpa["kind"], hpa["name"]) == ("Deployment", deployment["metadata"]["name"])
        account = m.one(overlay, "ServiceAccount")
        assert m.pod(overlay)["spec"]["serviceAccountName"] == account["metadata"]["name"]
        if overlay == "overlays/prod" and m.metrics:
            service = m.one(overlay, "Service")
            monitor = m.one(overlay, "ServiceMonitor")["spec"]
            assert selector_matches(monitor["selector"], service["metadata"]["labels"])
            port_names = {p["name"] for p in service["spec"]["ports"]}
            assert {e["port"] for e in monitor["endpoints"]} <= port_names
            assert [e["path"] for e in monitor["endpoints"]] == ["/metrics"]


@pytest.mark.parametrize("combo", COMBOS)
def test_ports_agree(manifests: Callable[[str], Manifests], combo: str) -> None:
    m = manifests(combo)
    _, default_port = gunicorn_default_port(m.project)
    for overlay in OVERLAYS:
        container = m.container(overlay)
        assert container["ports"] == [{"containerPort": 8000, "name": "http", "protocol": "TCP"}]
        port = container_port(m, overlay, "http")
        assert int(m.env(overlay)["PORT"]) == port == default_port
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container_port(m, overlay, container[probe]["httpGet"]["port"]) == port
        service_ports = m.one(overlay, "Service")["spec"]["ports"]
        assert [container_port(m, overlay, p["targetPort"]) for p in service_ports] == [port]
        (rule,) = m.one(overlay, "NetworkPolicy")["spec"]["ingress"]
        assert "from" not in rule or rule["from"], "an empty `from` would admit nothing"
        assert [container_port(m, overlay, p["port"]) for p in rule["ports"]] == [port]


def gunicorn_default_port(project: Path) -> tuple[str, int]:
    """``bind = f"0.0.0.0:{env_int('PORT', 8000, ...)}"`` in the rendered gunicorn.conf.py."""
    match = re.search(
        r"""^bind = f"0\.0\.0\.0:\{env_int\(["'](\w+)["'], (\d+)""",
        (project / "gunicorn.conf.py").read_text(),
        flags=re.MULTILINE,
    )
    assert match, "gunicorn.conf.py does not bind 0.0.0.0:<env_int(PORT, default)>"
    return match[1], int(match[2])


@pytest.mark.parametrize("combo", COMBOS)
def test_grace_period_covers_prestop_and_gunicorn_drain(
    manifests: Callable[[str], Manifests], combo: str
) -> None:
    m = manifests(combo)
    variable, graceful_default = gunicorn_default(m.project, "graceful_timeout")
    assert variable == "GUNICORN_GRACEFUL_TIMEOUT"
    for overlay in OVERLAYS:
        graceful = int(m.env(overlay).get(variable, graceful_default))
        command = m.container(overlay)["lifecycle"]["preStop"]["exec"]["command"]
        assert command[:1] == ["sleep"], command
        assert len(command) == 2, command
        pre_stop = int(command[1])
        assert pre_stop >= 5, "endpoint removal needs a few seconds to reach load balancers"
        grace = m.pod(overlay)["spec"]["terminationGracePeriodSeconds"]
        margin = grace - pre_stop - graceful
        assert margin >= 5, f"{overlay}: {grace} s < preStop {pre_stop} + drain {graceful} + 5"


@pytest.mark.parametrize("combo", COMBOS)
def test_workers_follow_the_cpu_limit(
    manifests: Callable[[str], Manifests],
    combo: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """WEB_CONCURRENCY equals the generated server.py's own default for the CPU limit."""
    m = manifests(combo)
    package = yaml.safe_load((m.project / ".copier-answers.yml").read_text())["package_name"]
    server = load_module(m.project / "src" / package / "server.py", f"k8s_server_{combo}")
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(256)))
    sizes = {}
    for overlay in OVERLAYS:
        resources = m.container(overlay)["resources"]
        limit = cpu(resources["limits"]["cpu"])
        cgroup = tmp_path / overlay.replace("/", "-")
        cgroup.mkdir()
        (cgroup / "cpu.max").write_text(f"{round(limit * 100_000)} 100000\n")
        expected = server.worker_count(environ={}, root=cgroup)
        assert expected == max(1, 2 * math.ceil(limit))  # the formula the README states
        assert int(m.env(overlay)["WEB_CONCURRENCY"]) == expected, overlay
        for kind in ("cpu", "memory"):
            assert resources["requests"][kind], overlay
            assert resources["limits"][kind], overlay
        assert cpu(resources["requests"]["cpu"]) <= limit
        assert memory(resources["requests"]["memory"]) <= memory(resources["limits"]["memory"])
        sizes[overlay] = resources
    dev, prod = sizes["overlays/dev"], sizes["overlays/prod"]
    for bound in ("requests", "limits"):
        assert cpu(prod[bound]["cpu"]) > cpu(dev[bound]["cpu"]), bound
        assert memory(prod[bound]["memory"]) > memory(dev[bound]["memory"]), bound
    for overlay in SIZED_OVERLAYS:
        patch = (m.project / "deploy" / "k8s" / overlay / "deployment.yaml").read_text()
        # Sizing and workers change together, in the same patch.
        assert "WEB_CONCURRENCY" in patch, overlay
        assert "limits" in patch, overlay


@pytest.mark.parametrize("combo", COMBOS)
def test_image_is_the_slug_with_the_version_tag(
    manifests: Callable[[str], Manifests], combo: str
) -> None:
    m = manifests(combo)
    version = re.search(r'^version = "([^"]+)"', (m.project / "pyproject.toml").read_text(), re.M)
    assert version
    for overlay in OVERLAYS:
        image = m.container(overlay)["image"]
        assert image == f"{m.slug}:{version[1]}", image
        assert not re.search(r"\d{8}|\d{4}-\d{2}-\d{2}|latest", image)
        labels = m.one(overlay, "Deployment")["metadata"]["labels"]
        assert labels["app.kubernetes.io/version"] == version[1]


@pytest.mark.parametrize("combo", COMBOS)
def test_pod_security(manifests: Callable[[str], Manifests], combo: str) -> None:
    m = manifests(combo)
    for overlay in OVERLAYS:
        pod = m.pod(overlay)["spec"]
        assert pod["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": GID,
            "fsGroup": GID,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        assert pod["automountServiceAccountToken"] is False
        assert m.one(overlay, "ServiceAccount")["automountServiceAccountToken"] is False
        context = m.container(overlay)["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert (context["runAsUser"], context["runAsGroup"], context["runAsNonRoot"]) == (
            UID,
            GID,
            True,
        )
        assert not any(key.startswith("host") for key in pod), "no host namespaces"


@pytest.mark.parametrize("combo", COMBOS)
def test_probes_have_distinct_roles(manifests: Callable[[str], Manifests], combo: str) -> None:
    m = manifests(combo)
    for overlay in OVERLAYS:
        c = m.container(overlay)
        startup, liveness, readiness = c["startupProbe"], c["livenessProbe"], c["readinessProbe"]
        assert startup["httpGet"]["path"] == liveness["httpGet"]["path"] == "/healthz"
        assert readiness["httpGet"]["path"] == "/readyz"

        def budget(probe: dict[str, Any]) -> int:
            return int(probe["periodSeconds"]) * int(probe["failureThreshold"])

        # Booting may take a while without being killed; once up, readiness reacts
        # faster than liveness, so a pod leaves the Service before it is restarted.
        assert budget(startup) >= 30
        assert budget(readiness) < budget(liveness)
        assert "initialDelaySeconds" not in liveness, "the startup probe gates liveness"


@pytest.mark.parametrize("combo", COMBOS)
def test_writable_volumes(manifests: Callable[[str], Manifests], combo: str) -> None:
    m = manifests(combo)
    for overlay in OVERLAYS:
        volumes = {v["name"]: v for v in m.pod(overlay)["spec"]["volumes"]}
        mounts = {v["mountPath"]: v["name"] for v in m.container(overlay)["volumeMounts"]}
        expected = {"/tmp", MULTIPROC_DIR} if m.metrics else {"/tmp"}
        assert set(mounts) == expected
        for path, name in mounts.items():
            assert set(volumes[name]) == {"name", "emptyDir"}, path
            assert memory(volumes[name]["emptyDir"]["sizeLimit"]) <= 2**27, path
        env = m.env(overlay)
        if m.metrics:
            assert volumes[mounts[MULTIPROC_DIR]]["emptyDir"]["medium"] == "Memory"
            assert env["PROMETHEUS_MULTIPROC_DIR"] == MULTIPROC_DIR
            dockerfile = (m.project / "Dockerfile").read_text()
            assert f"PROMETHEUS_MULTIPROC_DIR={MULTIPROC_DIR}" in dockerfile
        else:
            assert "PROMETHEUS_MULTIPROC_DIR" not in env


@pytest.mark.parametrize("combo", COMBOS)
def test_otel_settings_come_from_the_config_map(
    manifests: Callable[[str], Manifests], combo: str
) -> None:
    m = manifests(combo)
    for overlay in OVERLAYS:
        (config,) = m.all(overlay, "ConfigMap")
        otel = {k: v for k, v in config["data"].items() if k.startswith("OTEL_")}
        direct = [
            e["name"] for e in m.container(overlay).get("env", []) if e["name"].startswith("OTEL_")
        ]
        assert direct == [], "OTEL_* belong in the ConfigMap"
        if not m.tracing:
            assert otel == {}
            continue
        assert set(otel) == set(OTEL_SETTINGS)
        assert otel["OTEL_SERVICE_NAME"] == m.slug
        assert otel["OTEL_METRICS_EXPORTER"] == otel["OTEL_LOGS_EXPORTER"] == "none"
        assert otel["OTEL_EXPORTER_OTLP_PROTOCOL"] in {"http/protobuf", "grpc"}
        assert 0 < float(otel["OTEL_TRACES_SAMPLER_ARG"]) <= 1
    if m.tracing:
        ratios = {o: float(m.env(o)["OTEL_TRACES_SAMPLER_ARG"]) for o in SIZED_OVERLAYS}
        assert ratios["overlays/prod"] < ratios["overlays/dev"]
    if not m.tracing:
        for path in (m.project / "deploy" / "k8s").rglob("*.yaml"):
            assert "OTEL_" not in path.read_text(), path


@pytest.mark.parametrize("combo", COMBOS)
def test_rollout_scaling_and_disruption(manifests: Callable[[str], Manifests], combo: str) -> None:
    m = manifests(combo)
    for overlay in OVERLAYS:
        deployment = m.one(overlay, "Deployment")["spec"]
        assert "replicas" not in deployment, "the HorizontalPodAutoscaler owns the replica count"
        assert deployment["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        keys = {s["topologyKey"] for s in m.pod(overlay)["spec"]["topologySpreadConstraints"]}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        hpa = m.one(overlay, "HorizontalPodAutoscaler")
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        pdb = m.one(overlay, "PodDisruptionBudget")["spec"]
        assert pdb.get("maxUnavailable") == 1, "a drain must be possible even with one replica"
    replicas = {
        o: m.one(o, "HorizontalPodAutoscaler")["spec"]["minReplicas"] for o in SIZED_OVERLAYS
    }
    assert replicas["overlays/prod"] >= 2
    assert replicas["overlays/prod"] > replicas["overlays/dev"]


@pytest.mark.parametrize("combo", [c for c in COMBOS if COMBOS[c].get("metrics", True)])
def test_prometheus_rule_carries_the_alert_rules(
    manifests: Callable[[str], Manifests], combo: str, tmp_path: Path
) -> None:
    """Same groups as monitoring/alert-rules.yml, scoped to the ServiceMonitor's job."""
    m = manifests(combo)
    rule = m.one("overlays/prod", "PrometheusRule")
    alert_rules = yaml.safe_load((m.project / "monitoring" / "alert-rules.yml").read_text())
    assert rule["spec"] == alert_rules
    assert rule["spec"]["groups"]
    assert all(g["rules"] for g in rule["spec"]["groups"])
    # The operator names the scrape job after the Service (no jobLabel): the rules' job.
    service = m.one("overlays/prod", "Service")["metadata"]["name"]
    assert "jobLabel" not in m.one("overlays/prod", "ServiceMonitor")["spec"]
    jobs = set(re.findall(r'job="([^"]+)"', json.dumps(rule["spec"]).replace('\\"', '"')))
    assert jobs == {service}, jobs
    promtool = require_tool("promtool")
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    run([promtool, "check", "rules", str(path)], cwd=tmp_path)


@pytest.mark.parametrize("combo", COMBOS)
def test_operator_objects_stay_out_of_the_base(
    manifests: Callable[[str], Manifests], combo: str
) -> None:
    m = manifests(combo)
    k8s = m.project / "deploy" / "k8s"
    base = yaml.safe_load((k8s / "base" / "kustomization.yaml").read_text())
    assert "components" not in base
    for overlay in OVERLAYS:
        text = (k8s / overlay / "kustomization.yaml").read_text()
        assert ("monitoring" in text) == (m.metrics and overlay != "base"), overlay
    if m.metrics:
        component = yaml.safe_load(
            (k8s / "components" / "monitoring" / "kustomization.yaml").read_text()
        )
        assert component["kind"] == "Component"


@pytest.mark.parametrize("combo", ["fastapi", "flask-no-metrics-no-tracing"])
def test_readme_states_versions_and_numbers(
    manifests: Callable[[str], Manifests], combo: str
) -> None:
    m = manifests(combo)
    readme = (m.project / "README.md").read_text()
    section = readme.split("## Deploy to Kubernetes", 1)[1].split("\n## ", 1)[0]
    assert f"{SUPPORTED_MINORS[0]} through {SUPPORTED_MINORS[-1]}" in section
    kustomization = (m.project / "deploy" / "k8s" / "base" / "kustomization.yaml").read_text()
    assert f"Kubernetes {SUPPORTED_MINORS[0]} through {SUPPORTED_MINORS[-1]}" in " ".join(
        kustomization.split()
    )
    grace = m.pod("overlays/prod")["spec"]["terminationGracePeriodSeconds"]
    assert f"`terminationGracePeriodSeconds` is {grace}" in section
    text = " ".join(section.split())
    for name in ("dev", "prod"):
        overlay = f"overlays/{name}"
        stated = re.search(rf"{name}: (\S+) CPUs?, (\S+), (\d+) workers", text)
        assert stated, f"the README does not size {name}"
        limits = m.container(overlay)["resources"]["limits"]
        assert cpu(stated[1]) == cpu(limits["cpu"]), name
        assert stated[2] == limits["memory"], name
        assert stated[3] == m.env(overlay)["WEB_CONCURRENCY"], name
        hpa = m.one(overlay, "HorizontalPodAutoscaler")["spec"]
        assert f"{hpa['minReplicas']}-{hpa['maxReplicas']} replicas" in text, name
    assert ("prometheus-multiproc" in section) == m.metrics
    assert ("OTEL_" in section) == m.tracing


# --------------------------------------------------------------------------- #
# Container tier: the pod spec runs for real under `podman kube play`
# --------------------------------------------------------------------------- #
def podman() -> str:
    from . import containers

    engine = containers.engine()
    if Path(engine).name != "podman":
        unavailable(f"`kube play` needs podman, the container engine is {engine}")
    return engine


def playable(
    m: Manifests, overlay: str, image: str, name: str, host_port: int
) -> list[dict[str, Any]]:
    """The overlay's Deployment and its ConfigMap, adapted to a single machine.

    Changed, and only these: the image (the locally built tag, never pulled), a
    unique name, a hostPort on 127.0.0.1 for the HTTP port (podman 4.3 has no
    ``--publish`` for ``kube play``), and no probes: podman runs httpGet probes as a
    ``curl`` inside the container (the image has none) against an unresolved named
    port and restarts the container when they fail. The test sends the probes' requests
    itself, from outside the container as the kubelet does.
    """
    deployment = copy.deepcopy(m.one(overlay, "Deployment"))
    deployment["metadata"]["name"] = name
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["image"] = image
    container["imagePullPolicy"] = "Never"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        container.pop(probe)
    (http,) = [p for p in container["ports"] if p["name"] == "http"]
    http.update(hostPort=host_port, hostIP="127.0.0.1")
    return [*m.all(overlay, "ConfigMap"), deployment]


@dataclass(frozen=True)
class Pod:
    container: str
    url: str

    def engine(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        from . import containers

        return containers.engine_run(*args, check=check)

    def logs(self) -> str:
        result = self.engine("logs", self.container, check=False)
        return result.stdout + result.stderr


@contextlib.contextmanager
def kube_play(docs: list[dict[str, Any]], directory: Path) -> Iterator[Pod]:
    from . import containers

    podman()
    path = directory / "kube-play.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    played = containers.engine_run("kube", "play", "--replace", str(path), timeout=300)
    try:
        ids = re.findall(r"^Container:\s*\n([0-9a-f]{64})", played.stdout, flags=re.MULTILINE)
        assert len(ids) == 1, played.stdout
        port = next(
            p["hostPort"]
            for d in docs
            if d["kind"] == "Deployment"
            for p in d["spec"]["template"]["spec"]["containers"][0]["ports"]
        )
        pod = Pod(ids[0], f"http://127.0.0.1:{port}")
        try:
            yield pod
        except BaseException:
            print(f"--- pod logs ---\n{pod.logs()}")
            raise
    finally:
        containers.engine_run("kube", "down", str(path), timeout=120, check=False)


def wait_until_started(pod: Pod, path: str, budget: float) -> None:
    """What the startup probe does: poll until a 2xx/3xx answer, within its budget."""
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        state = pod.engine(
            "inspect", "--format", "{{.State.Status}} {{.RestartCount}}", pod.container
        )
        status, restarts = state.stdout.split()
        assert (status, restarts) == ("running", "0"), "the container stopped or restarted"
        with contextlib.suppress(httpx.HTTPError):
            if 200 <= httpx.get(pod.url + path, timeout=2).status_code < 400:
                return
        time.sleep(0.5)
    raise AssertionError(f"{path} did not answer within the startup probe's {budget} s")


@pytest.mark.container
@pytest.mark.parametrize(
    ("combo", "overlay"), [("fastapi", "overlays/dev"), ("flask", "overlays/prod")]
)
def test_pod_runs_under_podman_kube_play(
    manifests: Callable[[str], Manifests], combo: str, overlay: str, tmp_path: Path
) -> None:
    from . import containers

    podman()
    m = manifests(combo)
    assert m.metrics, "this tier checks /metrics"
    image = containers.build_image(m.project)
    docs = playable(m, overlay, image, f"svcforge-k8s-{uuid.uuid4().hex[:10]}", free_port())
    spec = m.container(overlay)
    workers = int(m.env(overlay)["WEB_CONCURRENCY"])
    assert workers > 1

    with kube_play(docs, tmp_path) as pod:
        startup = spec["startupProbe"]
        wait_until_started(
            pod, startup["httpGet"]["path"], startup["periodSeconds"] * startup["failureThreshold"]
        )
        for probe in ("livenessProbe", "readinessProbe"):
            answer = httpx.get(
                pod.url + spec[probe]["httpGet"]["path"], timeout=spec[probe]["timeoutSeconds"]
            )
            assert answer.status_code == 200, (probe, answer.text)

        # The security context was applied: every process runs as 10001:10001, the root
        # filesystem is read-only, /tmp and the metrics directory are writable emptyDirs.
        top = pod.engine("top", pod.container, "huser", "hgroup", "args").stdout.splitlines()[1:]
        processes = [line.split(None, 2) for line in top if line.strip()]
        assert {(user, group) for user, group, _ in processes} == {(str(UID), str(GID))}, top
        gunicorn = [args for _, _, args in processes if "gunicorn" in args]
        assert len(gunicorn) == 1 + workers, f"expected a master and {workers} workers:\n{top}"
        readonly = pod.engine("exec", pod.container, "touch", "/app/written", check=False)
        assert readonly.returncode != 0
        assert "Read-only file system" in readonly.stderr
        pod.engine("exec", pod.container, "touch", "/tmp/written")
        mounts = pod.engine("exec", pod.container, "cat", "/proc/mounts").stdout
        # Its own mount (podman 4.3 backs every emptyDir with a disk volume, whatever
        # its medium: the Memory medium is checked on the manifest, not here).
        assert re.search(rf"^\S+ {MULTIPROC_DIR} \S+ rw,", mounts, re.M), mounts

        # Requests on fresh connections reach several workers; /metrics adds them all up.
        # They are the only POSTs, so the request counter's POST samples count them alone.
        requests = 60

        def create_item(number: int) -> int:
            with httpx.Client(timeout=10) as client:
                item = {"name": f"item-{number}"}
                return client.post(pod.url + "/api/v1/items", json=item).status_code

        with ThreadPoolExecutor(max_workers=12) as pool:
            assert set(pool.map(create_item, range(requests))) == {201}
        files = pod.engine("exec", pod.container, "ls", MULTIPROC_DIR).stdout.split()
        pids = {match[1] for f in files if (match := re.search(r"_(\d+)\.db$", f))}
        assert len(pids) >= 2, f"metric files of one worker only: {files}"
        exposition = httpx.get(pod.url + "/metrics", timeout=10)
        assert exposition.status_code == 200
        expr = m.one("overlays/prod", "PrometheusRule")["spec"]["groups"][0]["rules"][0]["expr"]
        counter = re.search(r"rate\((\w+)\{", expr)
        assert counter, expr
        counted = sum(
            float(line.rsplit(" ", 1)[1])
            for line in exposition.text.splitlines()
            if line.startswith(counter[1] + "{") and 'method="POST"' in line
        )
        assert counted == requests, (
            f"{counter[1]} counts {counted} of {requests} requests:\n{exposition.text}"
        )
