"""The production server of a generated project: settings and graceful shutdown.

Runs the real ``gunicorn -c gunicorn.conf.py`` of each framework (no container):
- every server variable the README documents changes Gunicorn's effective setting,
  and the documented defaults are the effective defaults;
- SIGTERM under load lets every in-flight request finish, serves no new connection
  and exits 0 within ``graceful_timeout``.
"""

from __future__ import annotations

import re
import signal
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from svcforge.envs import Env

from .conftest import Render
from .support import FRAMEWORKS, free_port, wait_http

# Documented variable -> (Gunicorn setting, a non-default value, its --print-config form).
SERVER_VARIABLES: dict[str, tuple[str, str, str]] = {
    "PORT": ("bind", "8123", "['0.0.0.0:8123']"),
    "WEB_CONCURRENCY": ("workers", "3", "3"),
    "GUNICORN_THREADS": ("threads", "7", "7"),
    "GUNICORN_TIMEOUT": ("timeout", "61", "61"),
    "GUNICORN_GRACEFUL_TIMEOUT": ("graceful_timeout", "17", "17"),
    "GUNICORN_KEEPALIVE": ("keepalive", "95", "95"),
    "GUNICORN_MAX_REQUESTS": ("max_requests", "500", "500"),
    "GUNICORN_MAX_REQUESTS_JITTER": ("max_requests_jitter", "50", "50"),
    "FORWARDED_ALLOW_IPS": ("forwarded_allow_ips", "10.0.0.1,10.0.0.2", "['10.0.0.1', '10.0.0.2']"),
}
# Defaults the README states in words, not as a literal value.
DERIVED_DEFAULTS = {"WEB_CONCURRENCY"}


def print_config(project: Path, env: Env, **extra: str) -> dict[str, str]:
    """Gunicorn's effective settings (``gunicorn --print-config``) under ``extra`` env."""
    result = subprocess.run(
        [env.exe("gunicorn"), "-c", "gunicorn.conf.py", "--print-config"],
        cwd=project,
        env=env.environ(project, **extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    settings = {}
    for line in result.stdout.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            settings[name.strip()] = value.strip()
    return settings


def documented_server_variables(project: Path) -> dict[str, str]:
    """``{variable: default}`` from the README's server settings table."""
    readme = (project / "README.md").read_text()
    section = readme.split("Server settings", 1)[1].split("\n\n", 2)[1]
    rows = re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", section, flags=re.MULTILINE)
    assert rows, f"no server settings table in the README:\n{section}"
    return {name: default.strip().strip("`") for name, default in rows}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_documented_server_variables_drive_gunicorn(
    rendered: Render, project_env: Callable[[Path, str], Env], framework: str
) -> None:
    project = rendered(framework=framework)
    env = project_env(project, "3.11")
    documented = documented_server_variables(project)
    expected = {name for name in SERVER_VARIABLES if framework == "flask" or "THREADS" not in name}
    assert set(documented) == expected, "README server table and gunicorn.conf.py disagree"

    defaults = print_config(project, env)
    overridden = print_config(
        project, env, **{name: SERVER_VARIABLES[name][1] for name in documented}
    )
    for name, documented_default in documented.items():
        setting, _, shown = SERVER_VARIABLES[name]
        if name not in DERIVED_DEFAULTS:
            effective = defaults[setting]
            assert documented_default in effective.replace("'", "").replace(" ", ""), (
                f"{name}: README says {documented_default}, Gunicorn uses {effective}"
            )
        assert overridden[setting] == shown, f"{name} does not set {setting}"

    # Fixed settings the issue asks for.
    assert defaults["worker_tmp_dir"] == "/dev/shm"
    assert defaults["accesslog"] == "None"  # the app logs each request as JSON
    assert int(defaults["keepalive"]) > 60  # above common load balancers' idle timeout
    assert int(defaults["max_requests_jitter"]) > 0
    worker = "uvicorn_worker.UvicornWorker" if framework == "fastapi" else "gthread"
    assert defaults["worker_class"] == worker
    # FastAPI workers are not recycled: a Uvicorn worker that reaches max_requests resets
    # connections it has accepted but not answered. Flask's gthread workers lose none.
    assert defaults["max_requests"] == ("0" if framework == "fastapi" else "10000")
    # One listening socket held by the master: a restarting worker refuses nothing.
    assert defaults["reuse_port"] == "False"
    # A value that is not an integer stops the server with a one-line message.
    bad = subprocess.run(
        [env.exe("gunicorn"), "-c", "gunicorn.conf.py", "--print-config"],
        cwd=project,
        env=env.environ(project, GUNICORN_TIMEOUT="soon"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode != 0
    assert "GUNICORN_TIMEOUT must be an integer" in bad.stdout + bad.stderr


# A test-only wrapper: the generated app plus one slow route that reports when a
# request has started. Nothing is added to the generated code itself.
SLOW_APP = {
    "fastapi": """
        import asyncio
        import os
        import uuid
        from pathlib import Path

        from fastapi import FastAPI

        from {package}.app import create_app as create_service


        def create_app() -> FastAPI:
            app = create_service()

            @app.get("/slow")
            async def slow(seconds: float) -> dict[str, float]:
                (Path(os.environ["SLOW_STARTED_DIR"]) / uuid.uuid4().hex).touch()
                await asyncio.sleep(seconds)
                return {{"slept": seconds}}

            return app
    """,
    "flask": """
        import os
        import time
        import uuid
        from pathlib import Path

        from flask import Flask, request

        from {package}.app import create_app as create_service


        def create_app() -> Flask:
            app = create_service()

            @app.get("/slow")
            def slow() -> dict[str, float]:
                seconds = float(request.args["seconds"])
                (Path(os.environ["SLOW_STARTED_DIR"]) / uuid.uuid4().hex).touch()
                time.sleep(seconds)
                return {{"slept": seconds}}

            return app
    """,
}

WORKERS = 2
IN_FLIGHT = 8  # Flask: 2 workers x 4 threads, all busy
SLOW_SECONDS = 3.0
GRACEFUL_TIMEOUT = 10


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_sigterm_finishes_in_flight_requests_and_exits_0(
    rendered: Render,
    fresh_copy: Callable[[Path], Path],
    project_env: Callable[[Path, str], Env],
    framework: str,
) -> None:
    project = fresh_copy(rendered(framework=framework))
    env = project_env(project, "3.11")
    package = next(p.name for p in (project / "src").iterdir() if (p / "app.py").exists())
    (project / "src" / "slow_app.py").write_text(
        textwrap.dedent(SLOW_APP[framework]).lstrip().format(package=package)
    )
    started_dir = project.parent / "slow-started"
    started_dir.mkdir()
    port = free_port()
    environ = env.environ(
        project,
        PORT=str(port),
        WEB_CONCURRENCY=str(WORKERS),
        GUNICORN_THREADS="4",
        GUNICORN_GRACEFUL_TIMEOUT=str(GRACEFUL_TIMEOUT),
        SLOW_STARTED_DIR=str(started_dir),
    )
    log = project.parent / "gunicorn.log"
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        server = subprocess.Popen(
            [env.exe("gunicorn"), "-c", "gunicorn.conf.py", "slow_app:create_app()"],
            cwd=project,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"{url}/healthz", process=server)

        def slow_request() -> httpx.Response:
            with httpx.Client(timeout=GRACEFUL_TIMEOUT + 20) as client:
                return client.get(f"{url}/slow", params={"seconds": SLOW_SECONDS})

        with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
            in_flight: list[Future[httpx.Response]] = [
                pool.submit(slow_request) for _ in range(IN_FLIGHT)
            ]
            deadline = time.monotonic() + 20
            while len(list(started_dir.iterdir())) < IN_FLIGHT:
                assert time.monotonic() < deadline, "the slow requests never all started"
                assert server.poll() is None, log.read_text()
                time.sleep(0.05)

            signalled = time.monotonic()
            server.send_signal(signal.SIGTERM)
            refused = threading.Event()

            def probe_new_connections() -> None:
                # New connections are no longer served while the in-flight requests
                # still run: Uvicorn closes its listener (connection refused); gthread
                # stops accepting (the connection is never answered, then reset).
                while time.monotonic() < signalled + SLOW_SECONDS - 1:
                    try:
                        httpx.get(f"{url}/healthz", timeout=1)
                    except httpx.TransportError:
                        refused.set()
                        return
                    time.sleep(0.05)

            probe = threading.Thread(target=probe_new_connections)
            probe.start()
            exit_code = server.wait(timeout=GRACEFUL_TIMEOUT + 15)
            stopped_after = time.monotonic() - signalled
            probe.join()
            outcomes = [future.exception() or future.result() for future in in_flight]
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        print(f"--- gunicorn log ---\n{log.read_text()}")

    failed = [o for o in outcomes if not (isinstance(o, httpx.Response) and o.status_code == 200)]
    assert not failed, f"{len(failed)} of {IN_FLIGHT} in-flight requests failed: {failed}"
    assert all(
        o.json() == {"slept": SLOW_SECONDS} for o in outcomes if isinstance(o, httpx.Response)
    )
    assert exit_code == 0, f"gunicorn exited with {exit_code}"
    assert stopped_after < GRACEFUL_TIMEOUT, f"took {stopped_after:.1f} s to stop"
    assert refused.is_set(), "new connections were still served after SIGTERM"
