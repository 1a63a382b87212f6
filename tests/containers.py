"""Container helpers shared by the container tiers (images built and run for real).

Settings (environment variables):

- ``SVCFORGE_CONTAINER_ENGINE``: ``podman`` or ``docker`` (a name on PATH or a path).
  Default: the first of podman, docker found on PATH.
- ``SVCFORGE_BASE_IMAGE``: the image every Dockerfile stage starts from, passed as
  ``--build-arg PYTHON_IMAGE=...``. Default: ``python:<python_version>-slim`` with the
  project's answer. ``.ci/run`` sets it to the local stand-in image built by
  ``../shared/containers/setup.sh``.

When no engine is found the calling test skips loudly on a developer machine and fails
in CI (``support.unavailable``).

Interface (stable; other test modules import it):

- ``engine() -> str``: the engine executable.
- ``base_image(python_version) -> str``.
- ``build_image(project, *, python_version=None, build_args=None) -> str``: builds the
  project's ``Dockerfile`` and returns the tag. Cached by the content of the build
  context, the base image and the build args: within a session each distinct project is
  built once, and an image already built from identical inputs (same tag) is reused.
- ``run_container(tag, *, args=(), env=None) -> ContextManager[Container]``: runs the
  image detached, publishing container port 8000 on a free ``127.0.0.1`` port, and
  removes it afterwards. ``Container.url``, ``.name``, ``.logs()``, ``.exec(...)``,
  ``.stop(timeout) -> exit code``, ``.wait_ready(path)``.
- ``engine_run(*args) -> CompletedProcess``: any other engine command (asserts exit 0).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx
import yaml

from .support import free_port, unavailable

ENGINE_ENV = "SVCFORGE_CONTAINER_ENGINE"
BASE_IMAGE_ENV = "SVCFORGE_BASE_IMAGE"
CONTAINER_PORT = 8000
BUILD_TIMEOUT = 1800

_built: dict[str, str] = {}


def engine() -> str:
    """The container engine executable (skips loudly / fails in CI when there is none)."""
    wanted = os.environ.get(ENGINE_ENV, "").strip()
    candidates = [wanted] if wanted else ["podman", "docker"]
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    unavailable(
        f"no container engine ({ENGINE_ENV}={wanted!r}; tried {', '.join(candidates)}); "
        "run `bash ../shared/containers/setup.sh` or install podman/docker"
    )
    raise AssertionError("unreachable")


def base_image(python_version: str) -> str:
    """The base image of every build: ``$SVCFORGE_BASE_IMAGE`` or ``python:<ver>-slim``."""
    return os.environ.get(BASE_IMAGE_ENV, "").strip() or f"python:{python_version}-slim"


def engine_run(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``<engine> args...``; with ``check`` show the whole output on failure."""
    command = [engine(), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert result.returncode == 0, (
            f"{' '.join(command)} failed ({result.returncode})\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
    return result


def _answers(project: Path) -> dict[str, object]:
    data = yaml.safe_load((project / ".copier-answers.yml").read_text())
    return dict(data or {})


def _context_digest(project: Path) -> str:
    """Hash of every file in the build context (paths and contents), sorted."""
    digest = hashlib.sha256()
    for path in sorted(p for p in project.rglob("*") if p.is_file()):
        relative = path.relative_to(project)
        if relative.parts[0] in {".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache"}:
            continue
        if "__pycache__" in relative.parts:
            continue
        digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _image_id(reference: str) -> str:
    result = engine_run("image", "inspect", "--format", "{{.Id}}", reference, check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def build_image(
    project: Path,
    *,
    python_version: str | None = None,
    build_args: Mapping[str, str] | None = None,
) -> str:
    """Build ``project``'s Dockerfile (once per distinct input) and return the image tag."""
    answers = _answers(project)
    version = python_version or str(answers.get("python_version", "3.11"))
    base = base_image(version)
    args = {"PYTHON_IMAGE": base, **dict(build_args or {})}
    key_source = "\n".join(
        [
            _context_digest(project),
            base,
            _image_id(base),  # a rebuilt or re-pulled base image means a new build
            *(f"{k}={v}" for k, v in sorted(args.items())),
        ]
    )
    key = hashlib.sha256(key_source.encode()).hexdigest()[:16]
    if key in _built:
        return _built[key]
    tag = f"localhost/{answers.get('project_slug', 'service')}:svcforge-test-{key}"
    if not _image_id(tag):
        command = ["build", "--tag", tag]
        for name, value in sorted(args.items()):
            command += ["--build-arg", f"{name}={value}"]
        engine_run(*command, str(project), timeout=BUILD_TIMEOUT)
    _built[key] = tag
    return tag


class Container:
    """A detached container publishing port 8000 on ``127.0.0.1:<port>``."""

    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def logs(self) -> str:
        result = engine_run("logs", self.name, check=False)
        return result.stdout + result.stderr

    def inspect(self, template: str) -> str:
        return engine_run("inspect", "--format", template, self.name).stdout.strip()

    def running(self) -> bool:
        return self.inspect("{{.State.Running}}").lower() == "true"

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return engine_run("exec", self.name, *command)

    def wait_ready(self, path: str = "/healthz", timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise AssertionError(f"container exited before {path} answered:\n{self.logs()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + path, timeout=2).status_code < 500:
                    return
            time.sleep(0.25)
        raise AssertionError(f"{self.url}{path} did not answer within {timeout} s:\n{self.logs()}")

    def stop(self, timeout: int = 40) -> int:
        """``<engine> stop`` (SIGTERM, SIGKILL after ``timeout`` s); the exit code."""
        engine_run("stop", "--time", str(timeout), self.name, timeout=timeout + 30)
        return int(self.inspect("{{.State.ExitCode}}"))


@contextlib.contextmanager
def run_container(
    tag: str, *, args: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> Iterator[Container]:
    """Run ``tag`` detached with extra ``args`` (e.g. ``--read-only``); remove it after."""
    name = f"svcforge-test-{uuid.uuid4().hex[:12]}"
    port = free_port()
    command = ["run", "--detach", "--name", name, "--publish", f"127.0.0.1:{port}:8000"]
    for key, value in sorted((env or {}).items()):
        command += ["--env", f"{key}={value}"]
    engine_run(*command, *args, tag)
    container = Container(name, port)
    try:
        yield container
    except BaseException:
        print(f"--- container logs ({name}) ---\n{container.logs()}")
        raise
    finally:
        engine_run("rm", "--force", name, check=False)
