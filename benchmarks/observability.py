"""Cost of metrics and tracing: requests/s and p99 latency under wrk, as ratios to a bare app.

For each framework, these servers run side by side in one run, all under the generated
``gunicorn.conf.py`` with the same worker class and worker count, answering the same
route (``GET /api/v1/items``, an empty page):

- ``bare``: the smallest app of the framework serving that route: the same paging
  parameters (``limit``, ``offset``, range-checked) and the same JSON page, written
  the same way as the service's handler (``async def`` for FastAPI), and nothing
  else: no logging, validation library, error handlers, metrics or tracing;
- ``bare+access log``: ``bare`` plus the smallest JSON access-log line per request
  (stdlib logging, one ``json.dumps``): the floor every service pays, because the
  foundation requires one JSON log line per request;
- ``service``: the generated service with metrics and tracing off (what the rest of
  the service costs: access log, error handlers, validation);
- ``metrics``: the generated service with metrics only (multiprocess directory in
  ``/dev/shm``, as in the container's memory-backed volume);
- ``metrics+tracing``: metrics and tracing at the default sampler
  (``parentbased_traceidratio``, 10 %), exporting to a local OTLP receiver;
- ``metrics+tracing 100%``: every request sampled and exported to the receiver.

wrk runs round by round over all servers (interleaved, so a noisy neighbour hits every
configuration alike); the table reports the median of the rounds and each ratio to
``bare``. Targets on a 2-core machine: >= 0.85 metrics only, >= 0.75 with default
sampling, >= 0.5 fully sampled (requests/s).

    .venv/bin/python benchmarks/observability.py                 # 3 rounds of 10 s
    .venv/bin/python benchmarks/observability.py --rounds 5 --duration 15 --workers 2

The markdown table goes to ``docs/benchmarks/observability.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from svcforge.envs import Env, shared_env  # noqa: E402
from svcforge.render import isolated_copier_settings, render  # noqa: E402
from tests.otlp_receiver import Receiver, otlp_receiver  # noqa: E402

OUTPUT = ROOT / "docs" / "benchmarks" / "observability.md"
ROUTE = "/api/v1/items"
PYTHON = "3.11"
#: Heading of the hand-written analysis that follows the generated table in OUTPUT.
ANALYSIS = "## What the numbers say"
TARGETS = {"metrics": 0.85, "metrics+tracing": 0.75, "metrics+tracing 100%": 0.5}

BARE_APPS = {
    "fastapi": """
        from typing import Annotated

        from fastapi import FastAPI, Query

        app = FastAPI()


        @app.get("/healthz")
        async def healthz() -> dict[str, str]:
            return {"status": "ok"}


        @app.get("/api/v1/items")
        async def list_items(
            limit: Annotated[int, Query(ge=1, le=100)] = 20,
            offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
        ) -> dict[str, object]:
            return {"items": [], "total": 0, "limit": limit, "offset": offset}
        """,
    "flask": """
        from flask import Flask, abort, request

        app = Flask(__name__)


        @app.get("/healthz")
        def healthz() -> dict[str, str]:
            return {"status": "ok"}


        @app.get("/api/v1/items")
        def list_items() -> dict[str, object]:
            limit = request.args.get("limit", 20, type=int)
            offset = request.args.get("offset", 0, type=int)
            if not (1 <= limit <= 100 and 0 <= offset <= 1_000_000):
                abort(422)
            return {"items": [], "total": 0, "limit": limit, "offset": offset}
        """,
}


#: What one JSON access-log line per request costs on its own: the bare app plus the
#: smallest stdlib-logging JSON line (method, route, status, duration) per request, which
#: the foundation requires of every service. Appended to the bare app's module.
ACCESS_LOG = {
    "fastapi": """

        import json
        import logging
        import sys
        import time


        class JsonLine(logging.Formatter):
            def format(self, record: logging.LogRecord) -> str:
                return json.dumps({"level": record.levelname, "message": record.getMessage(),
                                   **record.fields, "time": record.created})


        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonLine())
        access = logging.getLogger("access")
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False


        class AccessLog:
            def __init__(self, app):
                self.app = app

            async def __call__(self, scope, receive, send):
                if scope["type"] != "http":
                    await self.app(scope, receive, send)
                    return
                start = time.perf_counter()
                status = 500

                async def send_with_status(message):
                    nonlocal status
                    if message["type"] == "http.response.start":
                        status = message["status"]
                    await send(message)

                try:
                    await self.app(scope, receive, send_with_status)
                finally:
                    fields = {"method": scope["method"], "route": scope["path"], "status": status,
                              "duration_ms": (time.perf_counter() - start) * 1000}
                    access.info("request", extra={"fields": fields})


        app.add_middleware(AccessLog)
        """,
    "flask": """

        import json
        import logging
        import sys
        import time

        from flask import g


        class JsonLine(logging.Formatter):
            def format(self, record: logging.LogRecord) -> str:
                return json.dumps({"level": record.levelname, "message": record.getMessage(),
                                   **record.fields, "time": record.created})


        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonLine())
        access = logging.getLogger("access")
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False


        @app.before_request
        def start_timer():
            g.start = time.perf_counter()


        @app.after_request
        def log_request(response):
            fields = {"method": request.method, "route": request.path,
                      "status": response.status_code,
                      "duration_ms": (time.perf_counter() - g.start) * 1000}
            access.info("request", extra={"fields": fields})
            return response
        """,
}


@dataclass
class Config:
    name: str
    metrics: bool
    tracing: bool
    bare: bool = False
    access_log: bool = False
    env: dict[str, str] = field(default_factory=dict)


def configs(receiver: Receiver, shm: Path) -> list[Config]:
    otlp = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
    return [
        Config("bare", metrics=False, tracing=False, bare=True),
        Config("bare+access log", metrics=False, tracing=False, bare=True, access_log=True),
        Config("service", metrics=False, tracing=False),
        Config("metrics", metrics=True, tracing=False),
        Config("metrics+tracing", metrics=True, tracing=True, env=otlp),
        Config(
            "metrics+tracing 100%",
            metrics=True,
            tracing=True,
            env={**otlp, "OTEL_TRACES_SAMPLER": "parentbased_always_on"},
        ),
    ]


@dataclass
class Running:
    config: Config
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    rps: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not start within {timeout} s")


@contextlib.contextmanager
def start(
    config: Config, project: Path, env: Env, workers: int, work: Path, shm: Path
) -> Iterator[Running]:
    port = free_port()
    extra = {
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        # No worker recycling mid-run: a restarting worker drops wrk's connections.
        "GUNICORN_MAX_REQUESTS": "0",
        **config.env,
    }
    if config.metrics:
        directory = shm / config.name.replace(" ", "-").replace("%", "pct")
        directory.mkdir(parents=True)
        extra["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    environ = env.environ(project, **extra)
    # A socket per worker (SO_REUSEPORT) for every configuration alike: wrk opens all its
    # connections at once, and on one shared socket the worker that wakes first can take
    # them all while the other idles. The generated config shares one socket on purpose
    # (a restarting worker then refuses nothing; docs/operations.md).
    args = [env.exe("gunicorn"), "-c", "gunicorn.conf.py", "--reuse-port"]
    if config.bare:
        environ["PYTHONPATH"] = f"{work}:{environ['PYTHONPATH']}"
        args.append("bare_log_app:app" if config.access_log else "bare_app:app")
    log = work / f"{config.name.replace(' ', '_').replace('%', 'pct')}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=project, env=environ, stdout=out, stderr=out)
    running = Running(config, f"http://127.0.0.1:{port}", process, log)
    try:
        wait_ready(running.url, process)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def wrk(url: str, duration: int, connections: int, threads: int) -> tuple[float, float]:
    """Requests/s and p99 latency (ms) of one wrk run."""
    result = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            f"{url}{ROUTE}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = result.stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors against {url}{ROUTE}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\b", out, re.M).groups()  # type: ignore[union-attr]
    p99_ms = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return rps, p99_ms


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}"


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}" if base else "n/a"


def report(results: dict[str, list[Running]], args: argparse.Namespace, spans: int) -> str:
    command = "python benchmarks/observability.py " + " ".join(
        f"--{name.replace('_', '-')} {value}" for name, value in sorted(vars(args).items())
    )
    lines = [
        "# Benchmark: cost of metrics and tracing",
        "",
        f"- Command: `{command}`",
        f"- Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {machine()}; Python {PYTHON} for the services",
        f"- Load: wrk -t{args.threads} -c{args.connections} -d{args.duration}s "
        f"`GET {ROUTE}`, {args.rounds} interleaved rounds, median shown",
        f"- Servers: the generated `gunicorn.conf.py`, {args.workers} workers each, plus "
        "`--reuse-port` so that wrk's connections reach every worker; "
        "the metrics directory in /dev/shm",
        f"- OTLP export requests received by the local receiver during the run: {spans}",
        "",
        "Ratios are requests/s (and p99 latency) relative to `bare`, the framework's "
        "smallest app serving the same route (same paging parameters, same JSON page, "
        "an `async def` handler for FastAPI) under the same server. `service` is the "
        "generated service with metrics and tracing off: the gap between `bare` and "
        "`service` is the rest of the service (access log, error handlers, "
        "validation), not observability. `bare+access log` is `bare` plus the smallest "
        "JSON access-log line per request (stdlib logging, one `json.dumps`): the floor "
        "for any service that logs one JSON line per request, as the foundation requires.",
        "",
        "| Framework | Configuration | Requests/s | p99 (ms) | Requests/s vs bare "
        "| p99 vs bare | Requests/s vs service | Target (vs bare) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for framework, runs in results.items():
        base = {r.config.name: r for r in runs}
        bare_rps = statistics.median(base["bare"].rps)
        bare_p99 = statistics.median(base["bare"].p99_ms)
        service_rps = statistics.median(base["service"].rps)
        for run in runs:
            rps = statistics.median(run.rps)
            p99 = statistics.median(run.p99_ms)
            target = TARGETS.get(run.config.name)
            verdict = ""
            if target is not None:
                verdict = f">= {target}: {'met' if rps / bare_rps >= target else 'MISSED'}"
            lines.append(
                f"| {framework} | {run.config.name} | {rps:,.0f} | {p99:.1f} "
                f"| {ratio(rps, bare_rps)} | {ratio(p99, bare_p99)} "
                f"| {ratio(rps, service_rps)} | {verdict} |"
            )
    lines += [
        "",
        "Each round's raw numbers (requests/s / p99 ms):",
        "",
    ]
    for framework, runs in results.items():
        for run in runs:
            raw = ", ".join(f"{r:,.0f}/{p:.1f}" for r, p in zip(run.rps, run.p99_ms, strict=True))
            lines.append(f"- {framework} {run.config.name}: {raw}")
    load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    lines += [
        "",
        f"Load average (1/5/15 min) when the run ended: {load}. Rounds are interleaved, so "
        "a noisy neighbour hits every configuration alike; compare the ratios, not the "
        "absolute numbers.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="Gunicorn workers")
    parser.add_argument("--frameworks", default="fastapi,flask")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: bash scripts/ci-tools.sh", file=sys.stderr)
        return 2

    results: dict[str, list[Running]] = {}
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="svcforge-obs-")))
        shm_root = Path("/dev/shm") if Path("/dev/shm").is_dir() else work
        shm = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=shm_root)))
        isolated_copier_settings(work / "copier-settings")
        receiver = stack.enter_context(otlp_receiver(decode_spans=False))
        for framework in args.frameworks.split(","):
            (work / framework).mkdir()
            bare = textwrap.dedent(BARE_APPS[framework]).lstrip()
            (work / framework / "bare_app.py").write_text(bare)
            (work / framework / "bare_log_app.py").write_text(
                bare + textwrap.dedent(ACCESS_LOG[framework])
            )
            runs = []
            for config in configs(receiver, shm):
                answers = {
                    "framework": framework,
                    "python_version": PYTHON,
                    "metrics": config.metrics,
                    "tracing": config.tracing,
                    "kubernetes": False,
                    "ci": "none",
                }
                key = f"{framework}-{int(config.metrics)}{int(config.tracing)}"
                project = work / framework / key / "service"
                if not project.exists():
                    render(project, answers)
                env = shared_env(project, PYTHON)
                running = stack.enter_context(
                    start(config, project, env, args.workers, work / framework, shm / framework)
                )
                runs.append(running)
            results[framework] = runs
            print(f"{framework}: {len(runs)} servers up", flush=True)

        everything = [run for runs in results.values() for run in runs]
        for run in everything:  # warm-up: imports, first requests, JIT-free but cached
            wrk(run.url, 2, args.connections, args.threads)
        for round_ in range(1, args.rounds + 1):
            for run in everything:
                rps, p99 = wrk(run.url, args.duration, args.connections, args.threads)
                run.rps.append(rps)
                run.p99_ms.append(p99)
                print(
                    f"round {round_} {run.url} {run.config.name:22} {rps:10,.0f} req/s"
                    f"  p99 {p99:7.1f} ms",
                    flush=True,
                )
        spans = receiver.requests

    text = report(results, args, spans)
    # The hand-written analysis below the table survives a re-run; update it by hand.
    if OUTPUT.exists() and ANALYSIS in (previous := OUTPUT.read_text()):
        text += "\n" + previous[previous.index(ANALYSIS) :]
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
