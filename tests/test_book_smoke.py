"""The smoke profile, end to end: every notebook executes, the book builds with warnings as errors, and
every page renders in headless Chromium with no broken image and no error output."""

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path

import nbformat
import pytest

from diffusets_core.book import run_book
from diffusets_core.config import load_profile
from diffusets_core.publish import colab_url, repository_settings

PROFILE = os.environ.get("DIFFUSETS_TEST_PROFILE", "smoke")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("book")
    prof = load_profile(PROFILE)
    res = run_book(prof, run_dir=root / "run", out_dir=root)
    return prof, root / "run", Path(res["html"])


def test_every_notebook_executed_without_errors(built):
    prof, run, _ = built
    for nb_name in prof.notebooks:
        nb = nbformat.read(run / "executed" / f"{nb_name}.ipynb", as_version=4)
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{nb_name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
        params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert params, f"{nb_name} has no cell tagged 'parameters'"


def test_every_chapter_has_a_page(built):
    prof, _, html = built
    for nb_name in prof.notebooks:
        page = html / "notebooks" / f"{nb_name}.html"
        assert page.is_file(), page
        text = page.read_text()
        assert "Traceback (most recent call last)" not in text
    assert (html / "book" / "build_info.html").is_file()
    assert (
        f'<code class="docutils literal notranslate"><span class="pre">{PROFILE}</span></code>'
        in (html / "book" / "build_info.html").read_text()
    )


def test_no_machine_path_in_the_built_book(built):
    """The published book shows no absolute path of the build machine: not the repository's, not the run
    directory's, not the home directory (papermill injects ``run_dir = "/home/..."``; chapters print paths)."""
    from diffusets_core.config import REPO_ROOT

    _, run, html = built
    needles = {str(REPO_ROOT), str(REPO_ROOT.resolve()), str(run), str(run.resolve())}
    if str(Path.home()) not in ("/", ""):
        needles.add(str(Path.home()))
    found = []
    for page in html.rglob("*"):
        if page.is_file() and page.suffix in (".html", ".ipynb", ".md", ".txt", ".js", ".json"):
            text = page.read_text(errors="replace")
            found += [f"{page.relative_to(html)}: {n}" for n in needles if n in text]
    assert not found, "machine paths in the built book:\n" + "\n".join(found[:20])


def test_chapters_show_one_folded_parameters_cell(built):
    """One parameters cell per chapter (papermill's injected cell merged into it), folded with ``hide-input``."""
    prof, _, html = built
    for nb_name in prof.notebooks:
        text = (html / "notebooks" / f"{nb_name}.html").read_text()
        assert text.count("# Parameters of this build") == 1, nb_name
        assert "injected-parameters" not in text, nb_name
        params = re.findall(r'class="cell[^"]*tag_parameters[^"]*"', text)
        assert len(params) == 1 and "tag_hide-input" in params[0], (nb_name, params)


def test_chapters_show_repository_and_launch_buttons(built):
    """_config.yml's repository and launch buttons on every chapter page; the install cell stays out of the page."""
    prof, _, html = built
    repo = repository_settings()
    home = (html / "book" / "intro.html").read_text()  # index.html only redirects here
    assert f'href="{repo.url}"' in home and f"{repo.url}/issues/new" in home
    for nb_name in prof.notebooks:
        text = (html / "notebooks" / f"{nb_name}.html").read_text()
        assert colab_url(f"notebooks/{nb_name}.ipynb") in text, nb_name
        assert re.search(
            rf"https://mybinder\.org/v2/gh/{re.escape(repo.github_path)}/{repo.branch}\?[^\"]*{nb_name}", text
        )
        assert "REPOSITORY_URL" not in text, f"{nb_name}: the setup cell must not be rendered"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture(scope="module")
def server(built):
    _, _, html = built
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(html)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="Chromium not installed (make test installs it where apt-get is available)",
)
def test_pages_render_in_headless_chromium(built, server, tmp_path):
    from playwright.sync_api import sync_playwright

    _, _, html = built
    pages = sorted(
        p.relative_to(html).as_posix()
        for p in html.rglob("*.html")
        if not p.name.startswith(("genindex", "search")) and "_static" not in p.parts
    )
    assert "index.html" in pages
    problems = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for rel in pages:
            text = (html / rel).read_text(errors="replace")
            if 'http-equiv="Refresh"' in text or 'http-equiv="refresh"' in text:
                continue  # a redirect stub (the root index.html); its target is a page of its own
            resp = page.goto(f"{server}/{rel}", wait_until="load")
            if resp is None or resp.status != 200:
                problems.append(f"{rel}: HTTP {resp.status if resp else 'no response'}")
                continue
            broken = page.evaluate(
                "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
                ".map(i => i.getAttribute('src'))"
            )
            if broken:
                problems.append(f"{rel}: broken images {broken}")
            if page.locator("div.output.traceback, .cell_output .output.error").count():
                problems.append(f"{rel}: error output shown")
            if rel.endswith("05_generation.html"):
                shot = Path(os.environ.get("DIFFUSETS_SCREENSHOT_DIR", tmp_path)) / "generation_page.png"
                page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 10_000
        browser.close()
    assert not problems, "\n".join(problems)


@pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="Chromium not installed (make test installs it where apt-get is available)",
)
def test_explorer_page_in_headless_chromium(built, server, tmp_path):
    """Chapter 10's pre-rendered explorer is in the built book; choosing another condition changes the picture and
    the measurements, and no request leaves the machine (the chapter page that embeds it included)."""
    import json

    from diffusets_core.apps.explorer import MEASUREMENTS
    from tests.helpers.explorer_browser import exercise_explorer, non_local, target_row

    _, _, html = built
    assert (html / "explorer" / "index.html").is_file()
    rows = json.loads((html / "explorer" / "conditions.json").read_text())
    target = target_row(rows, list(MEASUREMENTS))
    shot = Path(os.environ.get("DIFFUSETS_SCREENSHOT_DIR", tmp_path)) / "explorer_page.png"
    res = exercise_explorer(f"{server}/explorer/index.html", shot, profile_dir=tmp_path / "profile", target=target)
    before, after = res["before"], res["after"]
    assert not res["errors"], res["errors"]
    assert before["loaded"] and after["loaded"] and int(after["index"]) == target["index"]
    assert after["src"] != before["src"] and after["measurements"] != before["measurements"]
    assert not non_local(res["requests"]), non_local(res["requests"])
    # the chapter page embeds the explorer in an iframe: it loads, and nothing there leaves the machine either
    from playwright.sync_api import sync_playwright

    seen: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page()
        page.on("request", lambda r: seen.append(r.url))
        page.goto(f"{server}/notebooks/10_explorer.html", wait_until="load")
        frame = page.frame_locator("iframe[title='pre-rendered ECG explorer']")
        assert frame.locator("#ecg").get_attribute("src").startswith("img/ecg_")
        browser.close()
    assert any(u.endswith("/explorer/index.html") for u in seen)
    assert not non_local(seen), non_local(seen)
