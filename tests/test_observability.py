"""Metrics and tracing of generated services, checked with real components.

- A real Prometheus server scrapes a service running under Gunicorn with 3 workers
  (multiprocess mode): the request count it stores equals the requests sent, on every
  scrape. ``promtool`` checks the exposition and the shipped alert rules.
- A test OTLP/HTTP receiver (``tests/otlp_receiver.py``) gets the spans: service name,
  route templates, one server span per request, client spans for outbound ``httpx``
  calls, and the same trace and span ids as the JSON log lines.
- With a feature off, the project holds no trace of it, and still passes its checks.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from svcforge.envs import Env

from .conftest import Render
from .otlp_receiver import ReceivedSpan, otlp_receiver
from .support import FRAMEWORKS, check_project, free_port, require_tool, run, serve, wait_http

SLUG = "my-service"
PACKAGE = "my_service"

#: What Prometheus should count for the items routes (metrics.py, the same for both frameworks).
ITEMS_COUNT = f'sum(http_requests_total{{job="{SLUG}", handler=~"/api/v1/items.*"}})'
ITEM_ROUTES = {
    "fastapi": {"/api/v1/items", "/api/v1/items/{item_id}"},
    "flask": {"/api/v1/items", "/api/v1/items/<int:item_id>"},
}


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #
def send_item_requests(url: str, rounds: int) -> int:
    """Requests over fresh connections (so they spread over the workers); returns the count."""
    sent = 0
    for index in range(rounds):
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.post("/api/v1/items", json={"name": f"item-{index}"}).status_code == 201
            assert client.get("/api/v1/items").status_code == 200
            assert client.get(f"/api/v1/items/{index + 1}").status_code in {200, 404}
            sent += 3
            # Probes and scrapes are not API requests: they must not be counted.
            assert client.get("/healthz").status_code == 200
            assert client.get("/readyz").status_code == 200
            assert client.get("/metrics").status_code == 200
    return sent


@contextlib.contextmanager
def prometheus(target_port: int, tmp: Path) -> Iterator[str]:
    """A real Prometheus server on loopback scraping ``127.0.0.1:target_port`` every second."""
    binary = require_tool("prometheus")
    config = tmp / "prometheus.yml"
    config.write_text(
        textwrap.dedent(
            f"""\
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: {SLUG}
                static_configs:
                  - targets: ["127.0.0.1:{target_port}"]
            """
        )
    )
    port = free_port()
    log = tmp / "prometheus.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/-/ready", process=process)
        yield url
    except BaseException:
        print(f"--- prometheus log ---\n{log.read_text()}")
        raise
    finally:
        process.terminate()
        process.wait(20)


def query(prometheus_url: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": expr}, timeout=5)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def scalar(prometheus_url: str, expr: str) -> float | None:
    result = query(prometheus_url, expr)
    return float(result[0]["value"][1]) if result else None


def last_scrape(prometheus_url: str) -> str:
    targets = httpx.get(f"{prometheus_url}/api/v1/targets", timeout=5).json()
    (target,) = targets["data"]["activeTargets"]
    assert target["health"] == "up", target
    return str(target["lastScrape"])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def json_lines(output: str) -> list[dict[str, Any]]:
    lines = []
    for line in output.splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            record = json.loads(line)
            if isinstance(record, dict):
                lines.append(record)
    return lines


def assert_no_errors_logged(output: str) -> None:
    """Nothing at WARNING or above from the workers, no traceback, no export failure."""
    records = json_lines(output)
    bad = [
        record
        for record in records
        if record.get("level") in {"ERROR", "CRITICAL"}
        or (record.get("level") == "WARNING" and record.get("logger") != "gunicorn.error")
    ]
    assert not bad, bad
    assert "Traceback" not in output
    assert not re.search(r"(?i)export", output), output


# --------------------------------------------------------------------------- #
# Metrics
# --------------------------------------------------------------------------- #
@pytest.mark.prometheus
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_prometheus_counts_every_request_of_three_workers(
    rendered: Render,
    project_env: Callable[[Path, str], Env],
    tmp_path: Path,
    framework: str,
) -> None:
    promtool = require_tool("promtool")
    project = rendered(framework=framework)
    env = project_env(project, "3.11")
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    (multiproc / "counter_1.db").write_bytes(b"stale samples of a previous run")

    # Tracing is on by default but no collector is configured: the service must serve
    # and log no exporter error.
    with serve(
        project, env, workers=3, extra_env={"PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    ) as server:
        assert not (multiproc / "counter_1.db").exists(), "on_starting must empty the dir"
        with prometheus(server.port, tmp_path) as prom:
            sent = send_item_requests(server.url, rounds=20)

            writers = {path.stem.rsplit("_", 1)[1] for path in multiproc.glob("*.db")}
            assert len(writers) >= 2, f"requests reached one worker only: {writers}"

            expr = ITEMS_COUNT
            wait_until(lambda: scalar(prom, expr) == sent, 30, f"{expr} == {sent}")
            # Every later scrape returns the same totals, whichever worker answers it.
            for _ in range(3):
                scraped = last_scrape(prom)
                wait_until(lambda s=scraped: last_scrape(prom) != s, 10, "the next scrape")
                assert scalar(prom, expr) == sent
            assert scalar(prom, f'up{{job="{SLUG}"}}') == 1

            # Route templates only, never raw paths; probes and /metrics not counted.
            series = query(prom, f'{{job="{SLUG}", handler!=""}}')
            routes = {item["metric"]["handler"] for item in series}
            assert routes == ITEM_ROUTES[framework], routes
            info = query(prom, f'service_info{{job="{SLUG}"}}')
            assert [item["metric"]["version"] for item in info] == ["0.0.0"]

            exposition = httpx.get(f"{server.url}/metrics", timeout=5).text
        server.stop()
        output = server.output()

    check = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, text=True
    )
    assert check.returncode == 0, f"{check.stdout}\n{check.stderr}\n{exposition}"
    assert_no_errors_logged(output)
    access = [r for r in json_lines(output) if r.get("logger") == f"{PACKAGE}.access"]
    assert len(access) == sent
    assert all(len(r["trace_id"]) == 32 and len(r["span_id"]) == 16 for r in access)


@pytest.mark.prometheus
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_shipped_alert_rules_are_valid_and_unit_tested(
    rendered: Render, fresh_copy: Callable[[Path], Path], framework: str
) -> None:
    promtool = require_tool("promtool")
    project = fresh_copy(rendered(framework=framework))
    monitoring = project / "monitoring"
    run([promtool, "check", "rules", "alert-rules.yml"], monitoring)
    result = run([promtool, "test", "rules", "alert-rules.test.yml"], monitoring)
    assert "SUCCESS" in result.stdout

    # The unit tests can fail: with a laxer error-ratio threshold they must.
    rules = monitoring / "alert-rules.yml"
    rules.write_text(rules.read_text().replace("> 0.05", "> 0.5"))
    broken = subprocess.run(
        [promtool, "test", "rules", "alert-rules.test.yml"],
        cwd=monitoring,
        capture_output=True,
        text=True,
    )
    assert broken.returncode != 0, broken.stdout


# --------------------------------------------------------------------------- #
# Tracing
# --------------------------------------------------------------------------- #
#: A module that adds one route calling another service with httpx: here the
#: service itself, so the trace crosses two requests and a client span.
UPSTREAM_APP = {
    "fastapi": """
        import os

        import httpx

        from {package}.app import create_app

        app = create_app()


        @app.get("/api/v1/upstream")
        async def upstream() -> dict[str, int]:
            async with httpx.AsyncClient() as client:
                response = await client.get(os.environ["UPSTREAM_URL"])
            return {{"status": response.status_code}}
        """,
    "flask": """
        import os

        import httpx

        from {package}.app import create_app

        app = create_app()


        @app.get("/api/v1/upstream")
        def upstream() -> dict[str, int]:
            return {{"status": httpx.get(os.environ["UPSTREAM_URL"]).status_code}}
        """,
}


def traces(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    grouped: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        grouped.setdefault(span.trace_id, []).append(span)
    return grouped


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_spans_reach_the_collector_and_match_the_log_lines(
    rendered: Render,
    project_env: Callable[[Path, str], Env],
    tmp_path: Path,
    framework: str,
) -> None:
    project = rendered(framework=framework)
    env = project_env(project, "3.11")
    (tmp_path / "upstream_app.py").write_text(
        textwrap.dedent(UPSTREAM_APP[framework].format(package=PACKAGE))
    )
    items = ITEM_ROUTES[framework]
    item_route = next(route for route in items if route != "/api/v1/items")
    port = free_port()

    with otlp_receiver() as receiver:
        extra = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_TRACES_SAMPLER": "parentbased_always_on",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
            "UPSTREAM_URL": f"http://127.0.0.1:{port}/api/v1/items/1",
        }
        with serve(
            project, env, 2, extra, app_uri="upstream_app:app", port=port, pythonpath=tmp_path
        ) as server:
            with httpx.Client(base_url=server.url, timeout=10) as client:
                for index in range(5):
                    assert client.post("/api/v1/items", json={"name": f"n{index}"}).is_success
                    client.get(f"/api/v1/items/{index + 1}")
                assert client.get("/api/v1/upstream").status_code == 200
                for path in ("/healthz", "/readyz", "/metrics"):
                    assert client.get(path).status_code == 200
            # Stop at once: the batch processor's 5 s delay has not passed, so the
            # spans arrive only because each worker exports what it holds as it stops.
            assert server.stop() == 0
            output = server.output()
        # 10 plain requests (1 span each) + the upstream call (server, client, server).
        spans = receiver.wait_for(13, timeout=15)

    assert_no_errors_logged(output)
    assert len(spans) == 13, [(span.kind, span.name) for span in spans]
    for span in spans:
        assert span.resource["service.name"] == SLUG
        assert span.resource["deployment.environment.name"] == "test"
    server_spans = [span for span in spans if span.kind == "server"]
    assert {span.attributes["http.route"] for span in server_spans} == {
        *items,
        "/api/v1/upstream",
    }

    by_trace = traces(spans)
    assert sorted(len(trace) for trace in by_trace.values()) == [1] * 10 + [3]
    (chain,) = (trace for trace in by_trace.values() if len(trace) == 3)
    outer, call, inner = (
        next(span for span in chain if span.kind == "server" and not span.parent_span_id),
        next(span for span in chain if span.kind == "client"),
        next(span for span in chain if span.kind == "server" and span.parent_span_id),
    )
    assert outer.attributes["http.route"] == "/api/v1/upstream"
    assert call.parent_span_id == outer.span_id
    assert inner.parent_span_id == call.span_id, "traceparent reached the upstream service"
    assert inner.attributes["http.route"] == item_route

    # Every request log line carries the ids of its server span.
    access = [r for r in json_lines(output) if r.get("logger") == f"{PACKAGE}.access"]
    assert len(access) == 12
    logged = {(record["trace_id"], record["span_id"]) for record in access}
    assert logged == {(span.trace_id, span.span_id) for span in server_spans}


# --------------------------------------------------------------------------- #
# Features off
# --------------------------------------------------------------------------- #
#: Words that must not appear anywhere in a project generated without the feature.
FORBIDDEN = {
    "metrics": re.compile(r"(?i)prometheus|promtool|/metrics|\bmetrics\b|service_info"),
    "tracing": re.compile(
        r"(?i)opentelemetry|\botel|tracing|\btraces?\b|trace_id|span_id|traceparent|\bhttpx\b"
    ),
}
OFF_COMBINATIONS = [
    pytest.param(framework, metrics, tracing, id=f"{framework}-metrics{metrics}-tracing{tracing}")
    for framework in FRAMEWORKS
    for metrics, tracing in ((False, True), (True, False), (False, False))
]


#: Unrelated uses of the words: the HorizontalPodAutoscaler's ``metrics:`` field and
#: the switch of FastAPI's OpenTelemetry meters in its ``telemetry`` settings.
UNRELATED = re.compile(r'^\s*(metrics:|"metrics": False,)\s*$', re.MULTILINE)


def project_text(project: Path) -> dict[str, str]:
    """Every text file of a generated project, by path, except the answers and the lock."""
    texts = {}
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project).as_posix()
        if path.is_dir() or relative in {".copier-answers.yml", "requirements.txt"}:
            continue
        text = path.read_text()
        texts[relative] = UNRELATED.sub("", text) if path.name in {"hpa.yaml", "app.py"} else text
    return texts


@pytest.mark.parametrize(("framework", "metrics", "tracing"), OFF_COMBINATIONS)
def test_a_feature_that_is_off_leaves_nothing_behind(
    rendered: Render,
    project_env: Callable[[Path, str], Env],
    framework: str,
    metrics: bool,
    tracing: bool,
) -> None:
    project = rendered(framework=framework, metrics=metrics, tracing=tracing)
    off = [name for name, on in (("metrics", metrics), ("tracing", tracing)) if not on]
    texts = project_text(project)
    found = [
        f"{path}: {match.group(0)!r}"
        for name in off
        for path, text in texts.items()
        for match in FORBIDDEN[name].finditer(text)
    ]
    assert not found, "\n".join(found)
    # The lock holds no observability package of a feature that is off (FastAPI itself
    # depends on opentelemetry-api, which is why the lock is not grepped above).
    lock = (project / "requirements.txt").read_text()
    if not metrics:
        assert "prometheus" not in lock
    if not tracing:
        assert not re.search(r"opentelemetry-(sdk|exporter|instrumentation)", lock)

    check_project(project, project_env(project, "3.11"))

    # The on feature still works on its own.
    texts_joined = "\n".join(texts.values())
    assert ("prometheus" in texts_joined) == metrics
    assert ("opentelemetry" in texts_joined) == tracing
