"""`agentgym view` end to end in a real headless Chromium, driven by Playwright.

The viewer runs as the real command (a subprocess on a free port) over a run made by the
tests. The browser is Debian's ``chromium`` (installed by ``.ci/install``; Playwright's own
browser downloads are not used); every test fails on a console error or an uncaught page
error.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from view_run import HOSTILE, session_run

from agentgym.core.trajectory import Trajectory, TrajectoryStore

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is absent: install Debian's chromium (bash .ci/install does)",
)


def start_viewer(path: Path) -> tuple[subprocess.Popen[str], str]:
    """Run `agentgym view PATH --port 0`; the process and the address it printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "agentgym.cli", "view", str(path), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    output = []
    for line in process.stdout:
        output.append(line)
        match = re.search(r"(http://127\.0\.0\.1:\d+/[\w-]+/)", line)
        if match:
            return process, match.group(1)
    process.wait(timeout=30)
    raise AssertionError("agentgym view exited without an address:\n" + "".join(output))


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return session_run(tmp_path_factory)


@pytest.fixture(scope="module")
def address(run: Path) -> Iterator[str]:
    process, url = start_viewer(run)
    yield url
    stop(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda error: problems.append(str(error)))
    yield opened
    context.close()
    assert not problems, f"browser console errors: {problems}"


def _records(run: Path, store: str) -> list[dict]:
    lines = (run / "trajectories" / f"{store}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_run_page(page: Page, address: str, run: Path) -> None:
    page.goto(address)
    assert page.locator("h1").inner_text() == f"Run {run.name}"
    summary = json.loads((run / "summary.json").read_text())["rows"]
    stages = page.locator("table.summary tbody tr td:first-child strong").all_inner_texts()
    assert stages == [row["stage"] for row in summary]
    assert page.locator("figure.chart svg polyline").count() >= 1
    stores = list(run.glob("trajectories/*.jsonl"))
    assert page.locator("table.stores tbody tr").count() == len(stores)


def test_filter_the_table_then_open_an_episode(page: Page, address: str, run: Path) -> None:
    page.goto(address + "episodes")
    page.select_option("select[name=phase]", "collect-1")
    page.select_option("select[name=outcome]", "failure")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r"phase=collect-1"))
    expected = [r for r in _records(run, "collect-1") if r["success"] is False and not r["error"]
                and not r["truncated"]]  # fmt: skip
    rows = page.locator("table.episodes tbody tr[data-episode]")
    assert rows.count() == len(expected) > 0
    first = expected[0]
    page.click(f'tr[data-episode="{first["id"]}"] td.id a')
    page.wait_for_url(re.compile("/episode/collect-1/"))
    assert page.locator("h1").inner_text() == f"Episode {first['id']}"
    question = next(m["content"] for m in first["messages"] if m["role"] == "user")
    assert page.get_by_text(question, exact=True).first.is_visible()
    # The system prompt is collapsed until opened.
    system = page.locator("details.msg.system").first
    system_text = next(m["content"] for m in first["messages"] if m["role"] == "system")
    assert system.get_attribute("open") is None
    assert not page.get_by_text(system_text[:40]).first.is_visible()
    system.locator("summary").click()
    assert page.get_by_text(system_text[:40]).first.is_visible()
    # Trainable turns are marked; sampled tokens are drawn as a heat map.
    assert page.locator(".msg.trainable .badge.trainable").first.is_visible()
    logprobs = sum(len(m.get("logprobs") or []) for m in first["messages"])
    assert page.locator(".heat span").count() == logprobs > 0
    assert page.locator(".step").count() == len(first["steps"])


def test_free_text_search_from_the_form(page: Page, address: str, run: Path) -> None:
    tooluse = _records(run, "tooluse")[0]
    question = next(m["content"] for m in tooluse["messages"] if m["role"] == "user")
    page.goto(address + "episodes")
    page.fill("input[name=q]", question[:40])
    page.press("input[name=q]", "Enter")
    page.wait_for_url(re.compile(r"q="))
    rows = page.locator("tr[data-episode]")
    shown = rows.evaluate_all("rows => rows.map(row => row.dataset.episode)")
    assert tooluse["id"] in shown
    page.click(f'tr[data-episode="{tooluse["id"]}"] td.id a')
    assert page.locator("pre.tool_call").count() >= 1


def test_lineage_then_compare(page: Page, address: str, run: Path) -> None:
    explored = _records(run, "explore-1")
    page.goto(address + "lineage")
    assert page.locator("ul.tree li").count() == len(explored)
    child = explored[0]
    page.click(f'li[data-episode="{child["id"]}"] .id a')
    page.wait_for_url(re.compile("/episode/explore-1/"))
    assert child["parent_id"] in page.locator("dl.facts").inner_text()
    page.click("a.compare >> nth=0")
    page.wait_for_url(re.compile("/compare"))
    assert page.locator(".columns .side").count() == 2
    assert page.locator(".columns .side").first.get_attribute("data-episode") == child["id"]


def test_hostile_markup_is_shown_as_text(page: Page, address: str) -> None:
    page.goto(address + "episode/hostile/hostile-1")
    assert page.evaluate("window.__pwned") is None
    assert page.locator("main img, main b").count() == 0
    assert page.get_by_text("<script>window.__pwned = 1</script>").first.is_visible()
    page.goto(address + "episodes?phase=hostile")
    assert page.evaluate("window.__pwned") is None
    assert page.locator("tr[data-episode]").count() == 2
    assert f"hostile-{HOSTILE}" in page.locator("tr[data-episode] td.id").all_inner_texts()


def test_the_table_reloads_while_a_run_writes(page: Page, tmp_path: Path) -> None:
    store = tmp_path / "trajectories" / "collect-1.jsonl"
    with TrajectoryStore(store) as writer:
        writer.append(Trajectory("agentgym/Calculator-v0", "t-0", id="early"))
    process, url = start_viewer(tmp_path)
    try:
        page.goto(url + "episodes")
        assert page.locator("tr[data-episode]").count() == 1
        with TrajectoryStore(store) as writer:
            writer.append(Trajectory("agentgym/Calculator-v0", "t-1", id="late", success=True))
        page.wait_for_selector('tr[data-episode="late"]', timeout=20_000)  # polled every 3 s
    finally:
        stop(process)


def test_export_opens_offline(browser: Browser, run: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.html"
    subprocess.run(
        [sys.executable, "-m", "agentgym.cli", "view", str(run), "--export", str(out),
         "--select", "phase=tooluse"], check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    context = browser.new_context(offline=True)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(out.as_uri())
    records = _records(run, "tooluse")
    assert page.locator("section.episode").count() == len(records)
    page.click(f'tr[data-episode="{records[1]["id"]}"] td.id a')
    assert page.evaluate("location.hash").startswith("#ep-")
    assert page.locator("section#run table.summary").is_visible()
    context.close()
    assert not problems, problems
