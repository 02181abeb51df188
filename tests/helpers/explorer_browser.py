"""Drive the pre-rendered ECG explorer page in headless Chromium (playwright): pick another condition, check the
picture and the measurements change, and record every request the page makes."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL = ("file://", "data:", "about:", "http://127.0.0.1", "http://localhost")


def _state(page) -> dict:
    return page.evaluate("""() => ({
        src: document.getElementById('ecg').getAttribute('src'),
        index: document.getElementById('ecg').dataset.index,
        loaded: document.getElementById('ecg').complete && document.getElementById('ecg').naturalWidth > 0,
        measurements: Array.from(document.querySelectorAll('#measurements tbody td')).map(td => td.textContent),
        report: document.getElementById('report').textContent,
        reading: document.getElementById('reading').textContent,
        classes: Array.from(document.querySelectorAll('#cls option')).map(o => o.value),
    })""")


def target_row(rows: list[dict], keys: Sequence[str]) -> dict:
    """A condition of another class than the page's first one (``rows[0]``) whose shown measurements (rounded as
    the page shows them) differ from the first one's: the condition the browser test selects."""

    def shown(r):
        return [None if r.get(f"measured_{k}") is None else round(r[f"measured_{k}"]) for k in keys]

    for r in rows:
        if r["class"] != rows[0]["class"] and shown(r) != shown(rows[0]):
            return r
    raise AssertionError("no condition of another class with other measurements to select")


def exercise_explorer(
    url: str, screenshot: Path | None = None, *, profile_dir: Path | None = None, target: dict | None = None
) -> dict:
    """Open ``url`` (the explorer's index.html), select ``target`` (a conditions.json row: its class, HR and sex;
    default the last class and the last sex), and return ``{"before", "after", "requests", "errors"}``: the page
    state before/after, every URL requested, page errors."""
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    errors: list[str] = []
    with sync_playwright() as pw:
        args = list(ARGS)
        if profile_dir is not None:  # a fresh user-data-dir: nothing cached, nothing remembered
            ctx = pw.chromium.launch_persistent_context(
                str(profile_dir),
                executable_path=CHROMIUM,
                args=args,
                headless=True,
                viewport={"width": 1300, "height": 1000},
            )
            page = ctx.new_page()
            closer = ctx
        else:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=args)
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            closer = browser
        page.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url, wait_until="load")
        before = _state(page)
        if target is None:
            page.select_option("#cls", before["classes"][-1])
            sexes = page.evaluate("Array.from(document.querySelectorAll('#sex option')).map(o => o.value)")
            if len(sexes) > 1:
                page.select_option("#sex", sexes[-1])
        else:
            page.select_option("#cls", str(target["class"]))
            page.select_option(
                "#hr", str(target["hr"]) if not float(target["hr"]).is_integer() else str(int(target["hr"]))
            )
            page.select_option("#sex", str(target["sex"]))
        page.wait_for_function("document.getElementById('ecg').complete")
        after = _state(page)
        if screenshot is not None:
            page.screenshot(path=str(screenshot), full_page=True)
        closer.close()
    return {"before": before, "after": after, "requests": requests, "errors": errors}


def non_local(requests: list[str]) -> list[str]:
    """The requests that would leave the machine."""
    return [u for u in requests if not u.startswith(LOCAL)]
