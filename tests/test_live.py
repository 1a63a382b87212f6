"""Each framework's generated service under its production server, over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from svcforge.envs import Env

from .conftest import Render
from .support import FRAMEWORKS, serve

ITEM_ROUTE = {"fastapi": "/api/v1/items/{item_id}", "flask": "/api/v1/items/<int:item_id>"}
PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert body["title"]
    return body


@pytest.fixture(scope="module", params=FRAMEWORKS)
def service(
    request: pytest.FixtureRequest, rendered: Render, project_env: Callable[[Path, str], Env]
) -> tuple[str, Path, Env]:
    project = rendered(framework=request.param)
    return request.param, project, project_env(project, "3.11")


def test_endpoints_and_errors_over_http(service: tuple[str, Path, Env]) -> None:
    framework, project, env = service
    with serve(project, env, workers=2) as server, httpx.Client(base_url=server.url) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"

        document = http.get("/openapi.json").json()
        assert {"/healthz", "/readyz", "/api/v1/items", "/api/v1/items/{item_id}"} <= set(
            document["paths"]
        )
        docs = http.get("/docs")
        assert docs.status_code == 200
        assert docs.headers["content-type"].startswith("text/html")

        # One keep-alive connection: the same worker holds the in-memory items.
        created = http.post("/api/v1/items", json={"name": "widget", "quantity": 2})
        assert created.status_code == 201
        item = created.json()
        assert http.get(f"/api/v1/items/{item['id']}").json() == item
        page = http.get("/api/v1/items", params={"limit": 5}).json()
        assert page["limit"] == 5
        assert item in page["items"]

        assert_problem(http.get("/api/v1/items/987654"), 404)
        assert_problem(http.get("/no/such/path"), 404)
        not_allowed = assert_problem(http.delete("/api/v1/items"), 405)
        assert not_allowed["instance"] == "/api/v1/items"
        assert "POST" in http.delete("/api/v1/items").headers["allow"]
        invalid = assert_problem(http.post("/api/v1/items", json={"name": ""}), 422)
        assert invalid["errors"]
        assert_problem(http.get("/api/v1/items", params={"limit": 1000}), 422)
        assert_problem(
            http.post(
                "/api/v1/items", content=b"{oops", headers={"content-type": "application/json"}
            ),
            422,
        )
        too_big = b'{"name": "' + b"x" * 2_000_000 + b'"}'
        assert_problem(
            http.post(
                "/api/v1/items", content=too_big, headers={"content-type": "application/json"}
            ),
            413,
        )

    # Every line on stdout is JSON; requests are logged once with their route template.
    records = [json.loads(line) for line in server.output().splitlines() if line.strip()]
    assert all(record.get("level") != "ERROR" for record in records), records
    requests = [r for r in records if r.get("message") == "request"]
    assert any(
        r["method"] == "GET" and r["route"] == ITEM_ROUTE[framework] and r["status"] == 200
        for r in requests
    ), requests
    for record in requests:
        assert {"method", "route", "status", "duration_ms", "time", "level"} <= set(record)
        assert "987654" not in record["route"], "raw path logged instead of the route template"
    assert not any(r["route"] in ("/healthz", "/readyz") for r in requests), "probes are logged"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("APP_LOG_LEVEL", "LOUD", "configuration error: APP_LOG_LEVEL: Input should be"),
        ("APP_MAX_BODY_BYTES", "a lot", "configuration error: APP_MAX_BODY_BYTES"),
        ("PORT", "http", "configuration error: PORT must be an integer"),
        ("WEB_CONCURRENCY", "0", "configuration error: WEB_CONCURRENCY must be between 1 and"),
        # Checked by the master too: a worker failing on them would be replaced forever.
        ("OTEL_TRACES_SAMPLER_ARG", "2", "configuration error: OTEL_TRACES_SAMPLER_ARG must be"),
        ("OTEL_TRACES_SAMPLER", "bogus", "configuration error: OTEL_TRACES_SAMPLER must be"),
        ("OTEL_TRACES_EXPORTER", "zipkin", "configuration error: OTEL_TRACES_EXPORTER must be"),
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "thrift",
            "configuration error: OTEL_EXPORTER_OTLP_PROTOCOL must be",
        ),
        # Read by the OpenTelemetry SDK as it is imported.
        ("OTEL_PROPAGATORS", "bogus", "configuration error: Propagator bogus not found"),
        (
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
            "abc",
            "configuration error: OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT must be",
        ),
    ],
)
def test_bad_setting_stops_start_up_with_one_line(
    service: tuple[str, Path, Env], variable: str, value: str, message: str
) -> None:
    _, project, env = service
    result = subprocess.run(
        [env.exe("gunicorn"), "-c", "gunicorn.conf.py"],
        cwd=project,
        env=env.environ(project, **{variable: value}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    output = (result.stdout + result.stderr).strip()
    assert output.startswith(message), output
    assert len(output.splitlines()) == 1, output
    assert "Traceback" not in output


def test_otel_value_only_the_sdk_checks_stops_the_server_once(
    service: tuple[str, Path, Env],
) -> None:
    """A batching value the SDK rejects in the worker: one line, exit 3, no restart loop.

    One worker: when several fail to boot at once, Gunicorn 27 itself can raise its
    HaltServer a second time while halting (a traceback and exit 1; upstream race).
    """
    _, project, env = service
    bad = {
        "OTEL_BSP_MAX_QUEUE_SIZE": "0",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        "WEB_CONCURRENCY": "1",
    }
    result = subprocess.run(
        [env.exe("gunicorn"), "-c", "gunicorn.conf.py"],
        cwd=project,
        env=env.environ(project, **bad),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    assert "configuration error: max_queue_size must be a positive integer" in output
    assert "Traceback" not in output
    assert output.count("Booting worker with pid") == 1, output


def test_fuzzed_requests_match_the_openapi_document(service: tuple[str, Path, Env]) -> None:
    """schemathesis: every documented operation, all checks, against the real server."""
    _, project, env = service
    schemathesis = str(Path(sys.executable).parent / "schemathesis")
    with serve(project, env, workers=2) as server:
        result = subprocess.run(
            [
                schemathesis, "run", f"{server.url}/openapi.json", "--checks", "all",
                "--max-examples", "40", "--seed", "20261122", "--generation-database", "none",
                "--request-timeout", "10",
            ],
            cwd=project.parent,  # schemathesis keeps its state in the working directory
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
        assert "Tested: 5" in result.stdout or "Tested: 6" in result.stdout, result.stdout[-3000:]
        assert server.process.poll() is None, "the server died under fuzzing"
    assert "Traceback" not in server.output()


def test_flask_worker_restarts_lose_no_request(
    rendered: Render, project_env: Callable[[Path, str], Env]
) -> None:
    """The only Flask worker recycled every 10 requests, under concurrent requests: none lost.

    The master holds the one listening socket, so a connection that arrives while the
    worker restarts waits in the backlog for the next one. With Gunicorn's
    ``reuse_port`` (a socket per worker) about one request in five was refused here.
    """
    project = rendered(framework="flask")
    env = project_env(project, "3.11")
    recycle = {"GUNICORN_MAX_REQUESTS": "10", "GUNICORN_MAX_REQUESTS_JITTER": "0"}
    failures: list[str] = []

    def client(url: str) -> None:
        for _ in range(15):  # a fresh connection each
            try:
                response = httpx.get(f"{url}/api/v1/items", timeout=30)
            except httpx.TransportError as error:
                failures.append(repr(error))
            else:
                if response.status_code != 200:
                    failures.append(f"status {response.status_code}")

    with serve(project, env, workers=1, extra_env=recycle) as server:
        clients = [threading.Thread(target=client, args=(server.url,)) for _ in range(4)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        output = server.output()
    assert not failures, failures
    assert output.count("Booting worker with pid") >= 4, output
