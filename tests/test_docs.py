"""The documentation site: built in strict mode, in sync with copier.yml, checked in a browser.

The site is built once per session with ``mkdocs build --strict`` into a temporary
directory, served on 127.0.0.1, and opened in headless Chromium (Debian ``chromium``,
driven by Playwright with ``executable_path``; no browser is downloaded).
"""

from __future__ import annotations

import functools
import html.parser
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from svcforge import TEMPLATE_ROOT, options_doc

from .conftest import Render
from .support import FRAMEWORKS, unavailable

DOCS = TEMPLATE_ROOT / "docs"
CHROMIUM = os.environ.get("SVCFORGE_CHROMIUM", "/usr/bin/chromium")
#: Flags this machine needs (see the environment notes): without the background
#: networking ones Chromium's own connections are refused by the closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# --------------------------------------------------------------------------- #
# Building
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built with ``mkdocs build --strict`` (any warning fails the build)."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "-d", str(out)],
        cwd=TEMPLATE_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}{result.stderr}"
    return out


def test_site_builds_in_strict_mode(site: Path) -> None:
    for page in ("index.html", "reference/options/index.html", "search/search_index.json"):
        assert (site / page).is_file(), f"{page} missing from the built site"
    built_pages = {p.relative_to(site).as_posix() for p in site.rglob("index.html")}
    for source in DOCS.rglob("*.md"):
        rel = source.relative_to(DOCS).with_suffix("")
        expected = "index.html" if rel.name == "index" else f"{rel.as_posix()}/index.html"
        if rel.name == "index" and rel.parent != Path("."):
            expected = f"{rel.parent.as_posix()}/index.html"
        if rel.parent.name == "snippets":
            continue
        assert expected in built_pages, f"{source} was not built into {expected}"


# --------------------------------------------------------------------------- #
# The options reference is generated from copier.yml
# --------------------------------------------------------------------------- #
def test_options_page_matches_copier_yml() -> None:
    expected = options_doc.render_page(options_doc.load())
    current = options_doc.OPTIONS_PAGE.read_text()
    assert current == expected, (
        "docs/reference/options.md disagrees with copier.yml: run "
        "`.venv/bin/python -m svcforge.options_doc --write` and commit the result"
    )


class _Collector(html.parser.HTMLParser):
    """Ids, links and visible text of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"] or "")
        for name in ("href", "src"):
            if values.get(name) and tag in {"a", "link", "script", "img", "source"}:
                self.links.append(values[name] or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: Path) -> _Collector:
    collector = _Collector()
    collector.feed(page.read_text())
    return collector


def test_built_options_page_shows_every_question(site: Path) -> None:
    """Read copier.yml directly (not through the generator) and look at the built HTML."""
    config = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())
    page = _parse(site / "reference/options/index.html")
    text = " ".join(" ".join(page.text).split())
    questions = {
        name: spec
        for name, spec in config.items()
        if not name.startswith("_") and not (isinstance(spec, dict) and spec.get("when") is False)
    }
    assert questions, "copier.yml declares no questions"
    for name, spec in questions.items():
        assert name in page.ids, f"no #{name} section on the options page"
        spec = spec if isinstance(spec, dict) else {"default": spec}
        choices = spec.get("choices") or []
        values = choices.values() if isinstance(choices, dict) else choices
        for value in values:
            value = value["value"] if isinstance(value, dict) else value
            assert str(value) in text, f"choice {value!r} of {name} is not on the options page"
        default = spec.get("default")
        if isinstance(default, bool):
            assert f"Default: {str(default).lower()}" in text, f"default of {name} not shown"
        elif isinstance(default, str) and "{{" not in default:
            assert f"Default: {default}" in text, f"default of {name} not shown"


# --------------------------------------------------------------------------- #
# Links
# --------------------------------------------------------------------------- #
def _internal_target(site: Path, page: Path, link: str) -> tuple[Path, str] | None:
    """The file and fragment an internal link points to; None for external links."""
    parsed = urllib.parse.urlsplit(link)
    if parsed.scheme or parsed.netloc or link.startswith(("mailto:", "data:", "javascript:")):
        return None
    if not parsed.path:
        return page, parsed.fragment
    path = urllib.parse.unquote(parsed.path)
    # Root-relative links (the 404 page has them) resolve against the site root.
    base = site if path.startswith("/") else page.parent
    target = (base / path.lstrip("/")).resolve()
    if parsed.path.endswith("/") or target.is_dir():
        target = target / "index.html"
    assert target.is_relative_to(site.resolve()), f"{page}: link {link} leaves the site"
    return target, parsed.fragment


def test_no_broken_internal_links(site: Path) -> None:
    """Every href/src of every built page resolves to a file, and every #anchor exists."""
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 8, f"only {len(pages)} pages were built"
    parsed = {page.resolve(): _parse(page) for page in pages}
    broken: list[str] = []
    checked = 0
    for page, collector in parsed.items():
        for link in collector.links:
            resolved = _internal_target(site, page, link)
            if resolved is None:
                continue
            target, fragment = resolved
            checked += 1
            where = f"{page.relative_to(site.resolve())}: {link}"
            if not target.is_file():
                broken.append(f"{where} -> missing {target}")
            elif fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else _parse(target).ids
                if urllib.parse.unquote(fragment) not in ids:
                    broken.append(f"{where} -> no #{fragment} in {target.name}")
    assert checked > 100, f"only {checked} internal links found: is the crawl working?"
    assert not broken, "broken internal links:\n" + "\n".join(broken)


# --------------------------------------------------------------------------- #
# The docs agree with what the template generates
# --------------------------------------------------------------------------- #
_ENV_PATTERNS = (
    re.compile(r"""env_(?:int|float|bool|str|list)\(\s*["']([A-Z][A-Z0-9_]+)["']"""),
    re.compile(r"""environ(?:\.get)?[\[(]\s*["']([A-Z][A-Z0-9_]+)["']"""),
    re.compile(r"""getenv\(\s*["']([A-Z][A-Z0-9_]+)["']"""),
    re.compile(r"""_env\(\s*["']([A-Z][A-Z0-9_]+)["']"""),
    # Kubernetes container env (`- name: X`) and configMapGenerator literals (`- X=v`)
    re.compile(r"""^\s+-\s+name:\s+([A-Z][A-Z0-9_]+)\s*$""", re.M),
    re.compile(r"""^\s+-\s+([A-Z][A-Z0-9_]+)=""", re.M),
)
#: Set for tools, not for the service: documenting them would be noise.
_NOT_SERVICE_VARIABLES = {"PATH", "HOME", "PYTHONPATH"}


def _dockerfile_env(text: str) -> set[str]:
    """Names set by ``ENV`` instructions, continuation lines included."""
    joined = re.sub(r"\\\n", " ", text)
    names: set[str] = set()
    for line in joined.splitlines():
        if line.startswith("ENV "):
            names.update(re.findall(r"([A-Z][A-Z0-9_]+)=", line))
    return names


def generated_env_vars(project: Path) -> set[str]:
    """Environment variables a generated project reads or sets, found in its files."""
    names: set[str] = set()
    for path in project.rglob("*"):
        rel = path.relative_to(project)
        if not path.is_file() or rel.parts[0] in {"tests", ".git", ".github"}:
            continue
        text = path.read_text(errors="replace")
        if path.name == "Dockerfile":
            names |= _dockerfile_env(text)
            continue
        if path.suffix not in {".py", ".yaml", ".yml"} or rel.parts[0] == "monitoring":
            continue
        for pattern in _ENV_PATTERNS:
            names.update(pattern.findall(text))
        if path.name == "settings.py":  # pydantic-settings fields: <prefix><FIELD>
            prefix = re.search(r'ENV_PREFIX = "([A-Z_]+)"', text)
            body = text.split("class Settings", 1)[-1].split("\ndef ", 1)[0]
            for field in re.findall(r"^    ([a-z][a-z0-9_]*):", body, re.M):
                names.add(f"{prefix.group(1) if prefix else 'APP_'}{field.upper()}")
    return names - _NOT_SERVICE_VARIABLES


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_operations_page_documents_every_environment_variable(
    rendered: Render, framework: str
) -> None:
    project = rendered(framework=framework)
    names = generated_env_vars(project)
    assert {"PORT", "WEB_CONCURRENCY", "APP_LOG_LEVEL"} <= names, names
    operations = (DOCS / "operations.md").read_text()
    missing = sorted(name for name in names if f"`{name}`" not in operations)
    assert not missing, f"docs/operations.md does not document: {missing}"


def _table_row(page: str, first_cell: str) -> list[str]:
    """The cells of the first Markdown table row whose first cell is ``first_cell``."""
    for line in page.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"docs/operations.md has no table row for {first_cell}")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_operations_page_quotes_the_real_server_defaults(rendered: Render, framework: str) -> None:
    """Each ``env_int("NAME", default)`` of gunicorn.conf.py is documented with that default.

    A default that differs by framework is written as, e.g., "`10000` (Flask), `0` (FastAPI)".
    """
    project = rendered(framework=framework)
    config = (project / "gunicorn.conf.py").read_text()
    defaults = re.findall(r'env_int\(\s*"([A-Z_]+)",\s*([\d_]+)', config)
    assert len(defaults) >= 5, f"found only {defaults} in gunicorn.conf.py"
    operations = (DOCS / "operations.md").read_text()
    for name, default in defaults:
        cell = _table_row(operations, f"`{name}`")[1]
        per_framework = {
            label.lower(): value for value, label in re.findall(r"`(\d+)` \((\w+)\)", cell)
        }
        documented = f"`{per_framework.get(framework)}`" if per_framework else cell
        assert documented == f"`{int(default.replace('_', ''))}`", f"{name}: docs say {cell}"


def _containers(manifest: Path) -> dict[str, Any]:
    deployment = yaml.safe_load(manifest.read_text())
    spec = deployment["spec"]["template"]["spec"]
    return {"pod": spec, "container": spec["containers"][0]}


def test_operations_page_quotes_the_real_kubernetes_numbers(rendered: Render) -> None:
    """Probes, resources, workers and the shutdown arithmetic, as the manifests have them."""
    project = rendered(framework="fastapi")
    k8s = project / "deploy" / "k8s"
    if not k8s.is_dir():
        pytest.fail("the default answers render no deploy/k8s: the docs describe manifests")
    operations = (DOCS / "operations.md").read_text()
    base = _containers(k8s / "base" / "deployment.yaml")
    pod, container = base["pod"], base["container"]

    grace = pod["terminationGracePeriodSeconds"]
    pre_stop = container["lifecycle"]["preStop"]
    sleep = (
        int(pre_stop["exec"]["command"][-1]) if "exec" in pre_stop else pre_stop["sleep"]["seconds"]
    )
    graceful = int(
        re.search(
            r'"GUNICORN_GRACEFUL_TIMEOUT",\s*(\d+)', (project / "gunicorn.conf.py").read_text()
        )[1]
    )
    assert _table_row(operations, "`preStop` sleep")[2] == f"{sleep} s"
    assert _table_row(operations, "`graceful_timeout`")[2] == f"{graceful} s"
    assert _table_row(operations, "`terminationGracePeriodSeconds`")[2] == f"{grace} s"
    margin = grace - sleep - graceful
    assert margin > 0
    assert _table_row(operations, "margin for the master to exit")[2] == f"{margin} s"
    assert f"{sleep} + {graceful} + {margin} = {grace}" in operations

    for probe, name in (
        ("startupProbe", "startup"),
        ("livenessProbe", "liveness"),
        ("readinessProbe", "readiness"),
    ):
        spec = container[probe]
        row = _table_row(operations, name)
        assert row[1:5] == [
            f"`{spec['httpGet']['path']}`",
            f"{spec['periodSeconds']} s",
            f"{spec['timeoutSeconds']} s",
            str(spec["failureThreshold"]),
        ], f"{probe}: docs say {row}"

    def quoted(resources: dict[str, Any]) -> str:
        return ", ".join(
            f"`{key}: {value!r}`"
            if key == "cpu" and not str(value).endswith("m")
            else f"`{key}: {value}`"
            for key, value in resources.items()
        ).replace("'", '"')

    def env(spec: dict[str, Any], name: str) -> str:
        return next(item["value"] for item in spec.get("env", []) if item["name"] == name)

    for label, manifest in (
        ("base", k8s / "base" / "deployment.yaml"),
        ("dev overlay", k8s / "overlays" / "dev" / "deployment.yaml"),
        ("prod overlay", k8s / "overlays" / "prod" / "deployment.yaml"),
    ):
        spec = _containers(manifest)["container"]
        row = _table_row(operations, label)
        assert row[1] == quoted(spec["resources"]["requests"]), f"{label} requests: {row[1]}"
        assert row[2] == quoted(spec["resources"]["limits"]), f"{label} limits: {row[2]}"
        assert row[3] == env(spec, "WEB_CONCURRENCY"), f"{label} WEB_CONCURRENCY: {row[3]}"
        hpa = yaml.safe_load((manifest.parent / "hpa.yaml").read_text())["spec"]
        replicas = f"{hpa['minReplicas']} to {hpa['maxReplicas']}"
        assert row[4] == replicas, f"{label} replicas: docs say {row[4]}, hpa.yaml {replicas}"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_operations_page_names_every_alert_and_metric(rendered: Render, framework: str) -> None:
    project = rendered(framework=framework)
    rules_file = project / "monitoring" / "alert-rules.yml"
    if not rules_file.is_file():
        pytest.fail("the default answers render no monitoring/alert-rules.yml")
    rules = [
        rule
        for group in yaml.safe_load(rules_file.read_text())["groups"]
        for rule in group["rules"]
    ]
    operations = (DOCS / "operations.md").read_text()
    for rule in rules:
        assert f"`{rule['alert']}`" in operations, f"alert {rule['alert']} is not documented"
        for metric in re.findall(r"\b([a-z_][a-z0-9_]*)\{", rule["expr"]):
            metric = re.sub(r"_(bucket|count|sum)$", "", metric)
            if metric != "up":
                assert f"`{metric}`" in operations, f"metric {metric} is not documented"


# --------------------------------------------------------------------------- #
# In a browser
# --------------------------------------------------------------------------- #
class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    """The built site over HTTP on 127.0.0.1 (search needs a real server, not file://)."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Debian's headless Chromium under Playwright, with a fresh profile."""
    if not (Path(CHROMIUM).is_file() or shutil.which("chromium")):
        unavailable(f"Chromium not found at {CHROMIUM} (bash scripts/ci-tools.sh installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is missing (bash scripts/bootstrap.sh installs it)")
    executable = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


class Page:
    """A browser tab that records script errors and requests to other hosts."""

    def __init__(self, context: Any, base: str) -> None:
        self.base = base
        self.tab = context.new_page()
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.tab.on("pageerror", lambda error: self.errors.append(str(error)))
        self.tab.on(
            "console",
            lambda msg: self.errors.append(msg.text) if msg.type == "error" else None,
        )
        self.tab.on("request", self._request)

    def _request(self, request: Any) -> None:
        host = urllib.parse.urlsplit(request.url).hostname
        if request.url.startswith("http") and host != "127.0.0.1":
            self.foreign.append(request.url)

    def open(self, path: str) -> Any:
        response = self.tab.goto(self.base + path, wait_until="load")
        assert response is not None, f"GET {path}: no response"
        assert response.status == 200, f"GET {path}: {response.status}"
        return response

    def assert_clean(self) -> None:
        assert not self.errors, f"script errors on {self.tab.url}: {self.errors}"
        assert not self.foreign, f"requests to other hosts from {self.tab.url}: {self.foreign}"


@pytest.fixture
def page(browser: Any, served: str) -> Iterator[Page]:
    tab = Page(browser, served)
    try:
        yield tab
    finally:
        tab.tab.close()


def _nav_entries() -> list[tuple[str, str]]:
    """(title, url path) of every page in mkdocs.yml's nav."""
    config = yaml.safe_load((TEMPLATE_ROOT / "mkdocs.yml").read_text())
    entries: list[tuple[str, str]] = []

    def walk(items: list[Any]) -> None:
        for item in items:
            if isinstance(item, str):
                entries.append(("", item))
                continue
            for title, value in item.items():
                if isinstance(value, list):
                    walk(value)
                else:
                    entries.append((title, value))

    walk(config["nav"])
    return [
        (
            title,
            "/" if md == "index.md" else "/" + re.sub(r"(index)?\.md$", "", md).rstrip("/") + "/",
        )
        for title, md in entries
    ]


def test_index_page_renders(page: Page) -> None:
    page.open("/")
    tab = page.tab
    assert "svcforge" in tab.title()
    heading = tab.locator("article h1").first
    assert heading.is_visible()
    # The theme's stylesheet and script really loaded: the header bar is laid out
    # and the search box exists (it is created by the theme's JavaScript bundle).
    header = tab.locator("header.md-header").bounding_box()
    assert header is not None
    assert header["height"] > 20
    assert tab.locator("input.md-search__input").count() == 1
    # Every nav entry of mkdocs.yml is a link in the rendered navigation.
    hrefs = tab.eval_on_selector_all(
        "nav.md-nav--primary a.md-nav__link[href]", "els => els.map(e => e.href)"
    )
    paths = {urllib.parse.urlsplit(href).path for href in hrefs}
    for title, path in _nav_entries():
        assert path in paths, f"nav entry {title or path} ({path}) is not in the rendered nav"
    page.assert_clean()


def test_navigation_reaches_every_page(page: Page) -> None:
    page.open("/")
    tab = page.tab
    # Follow a link as a reader does: click it and land on the options reference.
    tab.locator("nav.md-nav--primary a.md-nav__link", has_text="Options reference").first.click()
    tab.wait_for_url("**/reference/options/")
    assert tab.locator("article h1").first.inner_text().strip().rstrip("¶") == "Options reference"
    # Then every page of the rendered nav (mkdocs.yml's entries plus the benchmark pages
    # the docs hooks add) answers, has a heading and is highlighted as the current page.
    hrefs = tab.eval_on_selector_all(
        "nav.md-nav--primary a.md-nav__link[href]", "els => els.map(e => e.href)"
    )
    paths = sorted({urllib.parse.urlsplit(href).path for href in hrefs})
    expected = {path for _, path in _nav_entries()}
    assert expected <= set(paths), f"nav entries missing: {expected - set(paths)}"
    assert any(p.startswith("/benchmarks/") and p != "/benchmarks/" for p in paths), paths
    for path in paths:
        page.open(path)
        h1 = tab.locator("article h1").first
        assert h1.is_visible(), f"{path} has no visible heading"
        active = tab.locator("nav.md-nav--primary a.md-nav__link--active")
        assert active.count() >= 1, f"{path} is not highlighted in the nav"
    page.assert_clean()


def test_options_page_renders(page: Page) -> None:
    page.open("/reference/options/")
    tab = page.tab
    questions = [q for q in options_doc.load().questions if not q.computed]
    rows = tab.locator("article table").first.locator("tbody tr")
    assert rows.count() == len(questions)
    # A link of the summary table jumps to the question's section.
    tab.locator("article table").first.locator("a", has_text="framework").first.click()
    tab.wait_for_url("**/reference/options/#framework")
    section = tab.locator("[id='framework']")
    assert section.is_visible()
    assert section.evaluate("el => el.getBoundingClientRect().top") < 300
    page.assert_clean()


@pytest.mark.parametrize(
    ("query", "expected_path"),
    [("WEB_CONCURRENCY", "/operations/"), ("python_version", "/reference/options/")],
)
def test_search_finds_pages(page: Page, query: str, expected_path: str) -> None:
    page.open("/")
    tab = page.tab
    tab.locator("label.md-search__icon, .md-search__input").first.click()
    box = tab.locator("input.md-search__input")
    box.fill("")
    box.type(query, delay=20)
    results = tab.locator(".md-search-result__item a")
    results.first.wait_for(state="visible", timeout=15_000)
    hrefs = results.evaluate_all("els => els.map(e => e.href)")
    paths = {urllib.parse.urlsplit(href).path for href in hrefs}
    assert expected_path in paths, f"searching {query!r} found {sorted(paths)}"
    # Opening a result lands on that page.
    results.first.click()
    tab.wait_for_load_state("load")
    assert tab.locator("article h1").first.is_visible()
    page.assert_clean()
