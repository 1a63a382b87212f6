"""Image size: the template's multi-stage image next to a naive single-stage build.

For each variant (framework x all optional features on / off) the script renders the
project, builds its own ``Dockerfile`` and a naive single-stage build of the same app
on the same base image, one after the other in the same run, and reports both sizes,
their ratio and what each adds on top of the base image. The naive build is what a
first Dockerfile usually looks like: the whole directory copied in (no
``.dockerignore``), ``pip install .`` resolving unpinned dependencies into a virtual
environment that keeps pip and setuptools.

    .venv/bin/python benchmarks/image_size.py                 # all four variants
    .venv/bin/python benchmarks/image_size.py --variant fastapi-full

Engine and base image come from ``SVCFORGE_CONTAINER_ENGINE`` / ``SVCFORGE_BASE_IMAGE``
(as in the tests; default: podman or docker, ``python:3.11-slim``). The markdown table
goes to ``docs/benchmarks/image-size.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from svcforge.render import isolated_copier_settings, render  # noqa: E402

OUTPUT = ROOT / "docs" / "benchmarks" / "image-size.md"
PYTHON_VERSION = "3.11"
VARIANTS = {
    "fastapi-full": {"framework": "fastapi", "metrics": True, "tracing": True},
    "fastapi-minimal": {"framework": "fastapi", "metrics": False, "tracing": False},
    "flask-full": {"framework": "flask", "metrics": True, "tracing": True},
    "flask-minimal": {"framework": "flask", "metrics": False, "tracing": False},
}

NAIVE_DOCKERFILE = """\
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE}
WORKDIR /app
COPY . .
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install .
ENV PATH=/opt/venv/bin:$PATH
CMD ["gunicorn", "-c", "gunicorn.conf.py"]
"""


def engine() -> str:
    wanted = os.environ.get("SVCFORGE_CONTAINER_ENGINE", "").strip()
    for candidate in [wanted] if wanted else ["podman", "docker"]:
        found = shutil.which(candidate)
        if found:
            return found
    raise SystemExit("image_size: no container engine (podman or docker) found")


def run(*args: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def size(tool: str, image: str) -> int:
    return int(run(tool, "image", "inspect", "--format", "{{.Size}}", image).strip())


def build(tool: str, context: Path, tag: str, base: str, dockerfile: Path | None = None) -> int:
    args = [tool, "build", "--build-arg", f"PYTHON_IMAGE={base}", "--tag", tag]
    if dockerfile is not None:
        args += ["--file", str(dockerfile)]
    run(*args, str(context))
    return size(tool, tag)


def mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS))
    parser.add_argument("--keep", action="store_true", help="keep the images afterwards")
    options = parser.parse_args()
    tool = engine()
    base = os.environ.get("SVCFORGE_BASE_IMAGE", "").strip() or f"python:{PYTHON_VERSION}-slim"
    inspect = [tool, "image", "inspect", base]
    if subprocess.run(inspect, capture_output=True, check=False).returncode != 0:
        run(tool, "pull", base)
    base_size = size(tool, base)

    rows = []
    with tempfile.TemporaryDirectory(prefix="svcforge-image-size-") as tmp:
        isolated_copier_settings(Path(tmp) / "copier-settings")
        for name in options.variant or list(VARIANTS):
            answers = {**VARIANTS[name], "python_version": PYTHON_VERSION, "kubernetes": False}
            project = render(Path(tmp) / name / "service", answers)
            tag = f"localhost/svcforge-size:{name}"
            naive_tag = f"localhost/svcforge-size:{name}-naive"
            print(f"image_size: building {name} (template Dockerfile)", file=sys.stderr)
            multi = build(tool, project, tag, base)
            # The naive build: same sources, no .dockerignore, a throwaway Dockerfile.
            naive_context = Path(tmp) / name / "naive"
            shutil.copytree(project, naive_context)
            (naive_context / ".dockerignore").unlink()
            naive_file = Path(tmp) / name / "Dockerfile.naive"
            naive_file.write_text(NAIVE_DOCKERFILE)
            print(f"image_size: building {name} (naive single stage)", file=sys.stderr)
            naive = build(tool, naive_context, naive_tag, base, naive_file)
            rows.append((name, multi, naive))
            if not options.keep:
                run(tool, "rmi", tag, naive_tag)

    engine_version = run(tool, "--version").strip()
    commit = run("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD").strip()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "python benchmarks/image_size.py" + "".join(
        f" --variant {v}" for v in options.variant or []
    )
    lines = [
        "# Image size",
        "",
        "<!-- Written by benchmarks/image_size.py; rerun it rather than editing this page. -->",
        "",
        f"Produced by `{command}` on {now} from svcforge commit `{commit}`, with "
        f"{engine_version}, base image `{base}` ({mb(base_size)}), Python {PYTHON_VERSION}. "
        "Both images of a row are built from the same rendered project on the same base, "
        "one after the other in the same run.",
        "",
        "The naive build copies the whole project (no `.dockerignore`) and runs "
        "`pip install .` in a single stage: unpinned dependencies, a virtual environment "
        "that keeps pip and setuptools, the sources, tests and `.git` in the image. The "
        "template's image installs the hash-checked lock in a builder stage and keeps "
        "only the virtual environment (without pip and setuptools) and `gunicorn.conf.py`. "
        "Every dependency ships as a wheel, so neither build needs a compiler: the "
        "difference is what the runtime image leaves out.",
        "",
        "| Variant | Template image | Naive image | Template / naive "
        "| Added over base: template | Added over base: naive |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, multi, naive in rows:
        lines.append(
            f"| {name} | {mb(multi)} | {mb(naive)} | {multi / naive:.2f}x "
            f"| {mb(multi - base_size)} | {mb(naive - base_size)} |"
        )
    lines += [
        "",
        "Variants: `full` has metrics and tracing on, `minimal` has both off.",
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
        f"| Platform | {platform.platform()} |",
        f"| CPUs | {os.cpu_count()} |",
        f"| Engine | {engine_version} |",
        "",
    ]
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
