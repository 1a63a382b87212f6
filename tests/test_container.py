"""The generated Dockerfile: lint-clean, and the image really builds and serves.

- Every rendered Dockerfile passes hadolint (no engine needed).
- Container tier (marker ``container``; engine and base image from
  ``SVCFORGE_CONTAINER_ENGINE`` / ``SVCFORGE_BASE_IMAGE``, see tests/containers.py):
  each framework's image is built once, run with ``--read-only --tmpfs /tmp``, and must
  run as UID/GID 10001, answer ``/healthz`` and ``/readyz``, size its workers from the
  container's CPU limit, and stop with exit code 0 on SIGTERM (``<engine> stop``).
  A build with pip config and CA bundle build secrets uses them and leaves no trace
  of them in any layer.
"""

from __future__ import annotations

import gzip
import json
import re
import tarfile
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from .conftest import Render
from .containers import base_image, build_image, engine_run, run_container
from .support import FRAMEWORKS, PYTHON_VERSIONS, require_tool, run

UID = "10001"
CMD = ["gunicorn", "-c", "gunicorn.conf.py"]


def hadolint() -> str:
    venv_bin = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "hadolint"
    return str(venv_bin) if venv_bin.exists() else require_tool("hadolint")


@pytest.mark.parametrize("metrics", [True, False])
@pytest.mark.parametrize("python_version", PYTHON_VERSIONS)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_dockerfile_is_lint_clean_and_parametrised(
    rendered: Render, framework: str, python_version: str, metrics: bool
) -> None:
    project = rendered(framework=framework, python_version=python_version, metrics=metrics)
    dockerfile = (project / "Dockerfile").read_text()
    # --failure-threshold style: any finding at all (even "info") is a failure.
    result = run([hadolint(), "--no-color", "Dockerfile"], project)
    assert result.stdout.strip() == "", result.stdout
    # Any ignore must be inline and say why, on the same line.
    for line in dockerfile.splitlines():
        if "hadolint ignore" in line:
            assert re.search(r"hadolint ignore=\S+\s+\S", line), f"unjustified ignore: {line}"

    assert f"ARG PYTHON_IMAGE=python:{python_version}-slim\n" in dockerfile
    froms = re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE)
    assert len(froms) >= 2, froms
    assert set(froms) == {"${PYTHON_IMAGE}"}, froms
    assert ("PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus-multiproc" in dockerfile) is metrics
    assert "--require-hashes" in dockerfile
    # Secrets are mounted for one RUN, never copied or set as ARG/ENV.
    assert "--mount=type=secret,id=pip-conf" in dockerfile
    assert "--mount=type=secret,id=ca-bundle" in dockerfile
    assert not re.search(r"^(ARG|ENV).*(PIP_CONFIG_FILE|PIP_CERT|PIP_INDEX_URL)", dockerfile, re.M)
    patterns = [
        line
        for line in (project / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "the build context must be an allowlist"


# --------------------------------------------------------------------------- #
# Container tier
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="session")
def service_image(rendered: Render) -> dict[str, tuple[Path, str]]:
    """``{framework: (project, tag)}``; each image is built on first use, then reused."""
    cache: dict[str, tuple[Path, str]] = {}

    class Images(dict[str, tuple[Path, str]]):
        def __missing__(self, framework: str) -> tuple[Path, str]:
            project = rendered(framework=framework, python_version="3.11")
            cache[framework] = (project, build_image(project))
            return cache[framework]

    return Images()


def image_config(tag: str) -> dict[str, object]:
    inspected = json.loads(engine_run("image", "inspect", tag).stdout)[0]
    return dict(inspected["Config"])


@pytest.mark.container
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_image_runs_read_only_as_10001_and_stops_cleanly(
    service_image: dict[str, tuple[Path, str]], framework: str
) -> None:
    project, tag = service_image[framework]
    config = image_config(tag)
    assert config["User"] == f"{UID}:{UID}"
    assert config["Cmd"] == CMD
    assert "8000/tcp" in dict(config["ExposedPorts"])  # type: ignore[call-overload]
    env = dict(item.split("=", 1) for item in config["Env"])  # type: ignore[attr-defined]
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/prometheus-multiproc"  # metrics default on
    labels = dict(config["Labels"])  # type: ignore[call-overload]
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert labels["org.opencontainers.image.title"] == answers["project_slug"]
    assert labels["org.opencontainers.image.description"] == answers["description"]
    assert labels["org.opencontainers.image.authors"] == (
        f"{answers['author_name']} <{answers['author_email']}>"
    )

    with run_container(tag, args=["--read-only", "--tmpfs", "/tmp"]) as container:
        container.wait_ready("/healthz")
        assert httpx.get(f"{container.url}/healthz", timeout=5).status_code == 200
        ready = httpx.get(f"{container.url}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        created = httpx.post(f"{container.url}/api/v1/items", json={"name": "x"}, timeout=5)
        assert created.status_code == 201, created.text

        # Every process (the master is PID 1: exec-form CMD) runs as 10001:10001.
        statuses = container.exec(
            "sh", "-c", "grep -hE '^(Name|Uid|Gid):' /proc/[0-9]*/status"
        ).stdout
        ids = re.findall(r"^(Uid|Gid):\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", statuses, re.M)
        assert ids, statuses
        assert {n for _, *values in ids for n in values} == {UID}, statuses
        pid1 = container.exec("cat", "/proc/1/cmdline").stdout.split("\0")
        assert pid1[-4:] == ["/opt/venv/bin/gunicorn", *CMD[1:], ""], pid1  # no shell wrapper

        # The root filesystem really is read-only; /tmp is writable.
        probe = container.exec("sh", "-c", "touch /app/x 2>&1 || echo read-only; touch /tmp/x")
        assert "read-only" in probe.stdout
        # Only the venv and the server configuration: no sources, tests, caches, compiler,
        # and no installer left in the venv.
        contents = container.exec(
            "sh",
            "-c",
            "ls -A /app; ls -d /src /tests /root/.cache /opt/venv/lib/*/site-packages/tests "
            "/opt/venv/bin/pip /opt/venv/lib/*/site-packages/setuptools 2>/dev/null; "
            "command -v gcc cc || true",
        ).stdout.split()
        assert contents == ["gunicorn.conf.py"], contents

        started = time.monotonic()
        exit_code = container.stop(timeout=40)
        stopped_after = time.monotonic() - started
        logs = container.logs()

    assert exit_code == 0, f"exit code {exit_code} after SIGTERM:\n{logs}"
    assert stopped_after < 25, f"took {stopped_after:.1f} s to stop (graceful_timeout is 25 s)"
    lines = [line for line in logs.splitlines() if line.strip()]
    assert lines, "no logs"
    for line in lines:  # every line on stdout/stderr is one JSON object
        assert isinstance(json.loads(line), dict), line
    assert any(json.loads(line).get("route") == "/api/v1/items" for line in lines), logs


@pytest.mark.container
def test_workers_follow_the_container_cpu_limit(
    service_image: dict[str, tuple[Path, str]],
) -> None:
    _, tag = service_image["fastapi"]
    with run_container(tag, args=["--read-only", "--tmpfs", "/tmp", "--cpus", "1"]) as container:
        container.wait_ready("/healthz")
        time.sleep(1)  # let every worker log its boot
        booted = container.logs().count("Booting worker")
        container.stop()
    assert booted == 2, f"--cpus 1 should give 2 workers (2 per CPU), got {booted}"


def _layer_bytes(archive: Path) -> bytes:
    """Every file of every layer in a ``docker-archive`` (decompressed), concatenated."""
    chunks = []
    with tarfile.open(archive) as outer:
        for member in outer.getmembers():
            if not member.isfile():
                continue
            data = outer.extractfile(member).read()  # type: ignore[union-attr]
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            chunks.append(data)
    return b"".join(chunks)


@pytest.mark.container
def test_build_secrets_are_used_and_never_stored(
    tmp_path: Path, service_image: dict[str, tuple[Path, str]]
) -> None:
    project, _ = service_image["flask"]  # the base image is pulled/checked by the normal build
    marker = f"svcforge-secret-{uuid.uuid4().hex}"
    pip_conf = tmp_path / "pip.conf"
    # `report = -` makes pip print its install report: proof that the config was read.
    pip_conf.write_text(f"# {marker}\n[install]\nreport = -\n")
    ca_bundle = tmp_path / "ca.pem"
    system_bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    ca_bundle.write_text(
        f"# {marker}\n" + (system_bundle.read_text() if system_bundle.exists() else "")
    )
    tag = f"localhost/svcforge-secret-test:{marker[-12:]}"
    try:
        build = engine_run(
            "build",
            "--no-cache",
            "--build-arg",
            f"PYTHON_IMAGE={base_image('3.11')}",
            "--secret",
            f"id=pip-conf,src={pip_conf}",
            "--secret",
            f"id=ca-bundle,src={ca_bundle}",
            "--tag",
            tag,
            str(project),
            timeout=1800,
        )
        assert '"pip_version"' in build.stdout + build.stderr, (
            "pip did not read the pip-conf secret"
        )
        archive = tmp_path / "image.tar"
        engine_run("save", "--format", "docker-archive", "--output", str(archive), tag)
        layers = _layer_bytes(archive)
        assert b"wsgi_app = " in layers, "the layers were not read (gunicorn.conf.py missing)"
        assert marker.encode() not in layers, "a build secret ended up in a layer"
    finally:
        engine_run("rmi", "--force", tag, check=False)
