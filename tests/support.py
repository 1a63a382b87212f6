"""Helpers shared by the template's tests: tools, rendering, running servers."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from svcforge.envs import Env, find_python

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
FRAMEWORKS = ("fastapi", "flask")
PYTHON_VERSIONS = ("3.11", "3.12", "3.13")


def unavailable(reason: str) -> None:
    """Skip loudly on a developer machine; fail in CI, where every tool is installed."""
    if IN_CI:
        pytest.fail(f"CI must not skip: {reason}")
    pytest.skip(f"SKIPPED FOR LACK OF A TOOL: {reason}")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"`{name}` is not installed (bash scripts/ci-tools.sh installs it)")
    assert path is not None
    return path


def require_python(version: str) -> str:
    python = find_python(version)
    if python is None:
        unavailable(f"no Python {version} interpreter (install it or put python{version} on PATH)")
    assert python is not None
    return python


def run(
    args: list[str], cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure show its whole output in the assertion."""
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, (
        f"{' '.join(args)} failed ({result.returncode}) in {cwd}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
    return result


def check_project(project: Path, env: Env) -> None:
    """The generated project's own checks: ruff, ruff format --check, strict mypy, pytest."""
    environ = env.environ(project)
    run([env.exe("ruff"), "check", "--no-cache", "."], project, environ)
    run([env.exe("ruff"), "format", "--check", "--no-cache", "."], project, environ)
    run([env.exe("mypy"), "--no-incremental", "--cache-dir=/dev/null"], project, environ)
    result = run(
        [env.exe("python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"], project, environ
    )
    assert " passed" in result.stdout
    assert "failed" not in result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30, process: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode} before answering {url}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s")


class Server:
    """A generated service running under ``gunicorn -c gunicorn.conf.py``."""

    def __init__(self, process: subprocess.Popen[str], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log

    def output(self) -> str:
        return self.log.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@contextlib.contextmanager
def serve(
    project: Path,
    env: Env,
    workers: int = 2,
    extra_env: Mapping[str, str] | None = None,
    *,
    app_uri: str | None = None,
    port: int | None = None,
    pythonpath: Path | None = None,
) -> Iterator[Server]:
    """Start the project's production server on a free loopback port; stop it after.

    ``app_uri`` serves another app under the project's gunicorn.conf.py (e.g. a test
    wrapper module found on ``pythonpath``).
    """
    port = port or free_port()
    environ = env.environ(
        project, PORT=str(port), WEB_CONCURRENCY=str(workers), **dict(extra_env or {})
    )
    if pythonpath is not None:
        environ["PYTHONPATH"] = f"{pythonpath}:{environ['PYTHONPATH']}"
    log = (pythonpath or project.parent) / f"{project.name}-gunicorn-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [env.exe("gunicorn"), "-c", "gunicorn.conf.py", *([app_uri] if app_uri else [])],
            cwd=project,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    server = Server(process, port, log)
    try:
        wait_http(f"{server.url}/healthz", process=process)
        yield server
    except BaseException:
        print(f"--- server log ({log}) ---\n{server.output()}")
        raise
    finally:
        server.stop()
