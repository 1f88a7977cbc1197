"""The viewer's pages over HTTP (Starlette's TestClient) on a real run made by the tests."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient
from view_run import HOSTILE, session_run

from agentgym.cli import main as cli_main
from agentgym.core.trajectory import Trajectory, TrajectoryStore
from agentgym.view.app import Viewer, create_app

TOKEN = "test-token"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return session_run(tmp_path_factory)


@pytest.fixture(scope="module")
def client(run: Path) -> TestClient:
    return TestClient(create_app(Viewer(run), token=TOKEN))


def _records(run: Path, store: str) -> list[dict]:
    lines = (run / "trajectories" / f"{store}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _episode_url(store: str, trajectory_id: str) -> str:
    return f"/{TOKEN}/episode/{quote(store, safe='')}/{quote(trajectory_id, safe='')}"


class _Tags(HTMLParser):
    """Collects start tags with their attributes (to check what the markup really holds)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def test_pages_answer_only_under_the_token_and_only_to_reads(client: TestClient) -> None:
    for path in ("", "episodes", "lineage", "episodes?phase=eval-0&sort=reward&order=desc"):
        response = client.get(f"/{TOKEN}/{path}")
        assert response.status_code == 200, path
        assert "nonce-" in response.headers["content-security-policy"]
    assert client.get(f"/{TOKEN}", follow_redirects=False).status_code in (302, 307)
    for path in ("/", "/episodes", "/wrong-token/episodes", f"/{TOKEN}x/"):
        assert client.get(path).status_code == 403, path
    assert client.post(f"/{TOKEN}/episodes").status_code == 405
    assert client.get(f"/{TOKEN}/episode/eval-0/no-such-id").status_code == 404


def test_run_page_shows_results_curves_phases_and_config(client: TestClient, run: Path) -> None:
    html = client.get(f"/{TOKEN}/").text
    summary = json.loads((run / "summary.json").read_text())["rows"]
    for row in summary:
        assert row["stage"] in html
        low, high = row["success_ci95"]
        assert f"[{low:.3f}, {high:.3f}]" in html
    metrics = {name for line in (run / "metrics.jsonl").read_text().splitlines()
               for name in json.loads(line) if "/" in name}  # fmt: skip
    charts = {attrs["data-metric"] for tag, attrs in _tags(html) if tag == "figure"}
    assert charts == {m for m in metrics if not m.endswith(("_ci_low", "_ci_high"))}
    ledger = [json.loads(line) for line in (run / "ledger.jsonl").read_text().splitlines()]
    assert html.count("<tr><td>train</td>") == sum(r["phase"] == "train" for r in ledger)
    assert "trainer:" in html and "name: eef" in html  # the config, collapsed
    assert "<polygon" in html  # eval/success_rate is drawn with its 95% band


def test_episode_table_filters_and_links(client: TestClient, run: Path) -> None:
    html = client.get(f"/{TOKEN}/episodes", params={"phase": "explore-1"}).text
    shown = [a["data-episode"] for t, a in _tags(html) if t == "tr" and "data-episode" in a]
    assert shown == [record["id"] for record in _records(run, "explore-1")]
    successes = [r["id"] for r in _records(run, "expert") if r["success"]]
    html = client.get(f"/{TOKEN}/episodes", params={"phase": "expert", "outcome": "success"}).text
    assert [a["data-episode"] for t, a in _tags(html) if "data-episode" in a] == successes
    # Free text anywhere in the record: a user message of one evaluation episode.
    record = _records(run, "eval-1")[2]
    question = next(m["content"] for m in record["messages"] if m["role"] == "user")
    html = client.get(f"/{TOKEN}/episodes", params={"q": question, "phase": "eval-1"}).text
    assert [a["data-episode"] for t, a in _tags(html) if "data-episode" in a] == [record["id"]]
    links = [a["href"] for t, a in _tags(html) if t == "a" and "/episode/" in (a.get("href") or "")]
    assert links == [_episode_url("eval-1", record["id"])]
    bad = client.get(f"/{TOKEN}/episodes", params={"reward_min": "high"})
    assert bad.status_code == 200 and "reward_min=&#39;high&#39; is not a number" in bad.text


def test_episode_page_renders_the_conversation(client: TestClient, run: Path) -> None:
    record = _records(run, "collect-1")[0]
    html = client.get(_episode_url("collect-1", record["id"])).text
    tags = _tags(html)
    system = [a for t, a in tags if t == "details" and "system" in (a.get("class") or "")]
    assert system and all("open" not in a for a in system)  # system prompt and tools collapsed
    assert "Tool list (4 tools)" in html
    sampled = [m for m in record["messages"] if m.get("logprobs")]
    heat = [a for t, a in tags if t == "span" and "log-prob" in (a.get("title") or "")]
    assert len(heat) == sum(len(m["logprobs"]) for m in sampled)
    trainable = [a for t, a in tags if t == "div" and "trainable" in (a.get("class") or "").split()]
    assert len(trainable) == sum(m["trainable"] for m in record["messages"])
    steps = [a for t, a in tags if t == "div" and a.get("class") == "step"]
    assert len(steps) == len(record["steps"])
    assert record["steps"][0]["feedback"] in html
    # A multi-turn ToolUse episode: tool calls and JSON results are indented.
    tooluse = next(r for r in _records(run, "tooluse") if len(r["steps"]) >= 3)
    html = client.get(_episode_url("tooluse", tooluse["id"])).text
    assert '<pre class="tool_call">{\n  &#34;name&#34;:' in html
    assert '<pre class="tool_result">{\n' in html


def test_restarts_lineage_and_compare(client: TestClient, run: Path) -> None:
    explored = _records(run, "explore-1")
    html = client.get(f"/{TOKEN}/lineage").text
    tags = _tags(html)
    in_tree = sorted(a["data-episode"] for t, a in tags if t == "li")
    assert in_tree == sorted(r["id"] for r in explored)
    roots = {a["data-root"] for t, a in tags if "data-root" in a}
    assert roots == {r["parent_id"] for r in explored}
    child = explored[0]
    html = client.get(_episode_url("explore-1", child["id"])).text
    assert _episode_url("expert", child["parent_id"]) in html  # link to the parent
    parent_page = client.get(_episode_url("expert", child["parent_id"])).text
    assert "Restarts from this episode" in parent_page and child["id"] in parent_page
    a, b = f"expert/{child['parent_id']}", f"explore-1/{child['id']}"
    html = client.get(f"/{TOKEN}/compare", params={"a": a, "b": b}).text
    sides = [attrs["data-episode"] for t, attrs in _tags(html) if attrs.get("class") == "side"]
    assert sides == [child["parent_id"], child["id"]]
    choose = client.get(f"/{TOKEN}/compare", params={"a": a}).text
    assert child["id"] in choose  # same task: offered for comparison


def test_model_and_environment_text_is_escaped(client: TestClient) -> None:
    pages = [
        _episode_url("hostile", "hostile-1"),
        _episode_url("hostile", f"hostile-{HOSTILE}"),
        f"/{TOKEN}/episodes?phase=hostile",
        f"/{TOKEN}/compare?a={quote('hostile/hostile-1')}&b={quote('hostile/hostile-' + HOSTILE)}",
        f"/{TOKEN}/raw/hostile/hostile-1",
    ]
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        html = response.text
        assert "window.__pwned" in html  # the text is there ...
        if path.startswith(f"/{TOKEN}/raw/"):
            assert response.headers["content-type"].startswith("text/plain")
            continue
        tags = _tags(html)  # ... but never as markup
        nonce = re.search(r"nonce-([\w-]+)", response.headers["content-security-policy"])
        scripts = [a for t, a in tags if t == "script"]
        assert all(a.get("nonce") == nonce.group(1) for a in scripts), path
        assert not [a for t, a in tags if t in ("img", "b") or "onerror" in a], path
        assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html, path


def test_pages_refresh_while_a_run_writes(tmp_path: Path) -> None:
    store_path = tmp_path / "trajectories" / "collect-1.jsonl"
    with TrajectoryStore(store_path) as store:
        store.append(Trajectory("calc-v0", "t-0", id="first"))
    client = TestClient(create_app(Viewer(tmp_path), token=TOKEN))
    version = client.get(f"/{TOKEN}/api/version").json()["version"]
    assert client.get(f"/{TOKEN}/api/version").json()["version"] == version
    with TrajectoryStore(store_path) as store:
        store.append(Trajectory("calc-v0", "t-1", id="second"))
    (tmp_path / "metrics.jsonl").write_text('{"step": 0, "time": 1, "eval/success_rate": 0.5}\n')
    html = client.get(f"/{TOKEN}/episodes").text
    assert "second" in html
    # The page carries the version of what it shows, so its poll sees no change after it.
    shown = re.search(r'data-version="([^"]+)"', html).group(1)
    assert shown != version
    assert client.get(f"/{TOKEN}/api/version").json() == {"version": shown, "episodes": 2}
    assert 'data-metric="eval/success_rate"' in client.get(f"/{TOKEN}/").text


def test_export_writes_one_self_contained_file(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "explore.html"
    assert cli_main(["view", str(run), "--export", str(out), "--select", "phase=explore-1"]) == 0
    html = out.read_text()
    tags = _tags(html)
    explored = _records(run, "explore-1")
    sections = [a for t, a in tags if t == "section" and "episode" in (a.get("class") or "")]
    assert len(sections) == len(explored)
    assert not [t for t, a in tags if t == "script"]
    references = [a.get("href") or a.get("src") for t, a in tags if "href" in a or "src" in a]
    assert all(ref.startswith(("#", "data:")) for ref in references), references
    ids = {a["id"] for t, a in tags if "id" in a}
    assert {ref[1:] for ref in references if ref.startswith("#")} <= ids  # links stay inside
    assert "default-src 'none'" in html  # no network, no script, even if opened from a server
    # The hostile store, exported, stays text.
    hostile = tmp_path / "hostile.html"
    assert cli_main(["view", str(run), "--export", str(hostile), "--select", "phase=hostile"]) == 0
    assert not [t for t, a in _tags(hostile.read_text()) if t in ("script", "img", "b")]


def test_command_line_errors(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["view", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli_main(["view", str(run.parent)]) == 2
    assert "runs below it:" in (err := capsys.readouterr().err) and str(run) in err
    out = str(tmp_path / "x.html")
    assert cli_main(["view", str(run), "--export", out, "--select", "sort=x"]) == 2
    assert "--select: sort='x'" in capsys.readouterr().err


def test_a_record_of_another_schema_is_shown_raw(tmp_path: Path) -> None:
    record = {**Trajectory("calc-v0", "t-0", id="future").to_dict(), "score": 3}
    store = tmp_path / "trajectories" / "eval-0.jsonl"
    store.parent.mkdir(parents=True)
    store.write_text(json.dumps(record) + "\n")
    client = TestClient(create_app(Viewer(tmp_path), token=TOKEN))
    assert "future" in client.get(f"/{TOKEN}/episodes").text
    page = client.get(_episode_url("eval-0", "future"))
    assert page.status_code == 200
    assert "could not be read as a trajectory" in page.text
    assert "unknown key(s) [&#39;score&#39;]" in page.text


def test_a_rollout_run_directory(tmp_path: Path) -> None:
    """`agentgym rollout`/`eval` keep trajectories.jsonl and one summary at the top."""
    from agentgym.evaluation import summarize

    episodes = [Trajectory("calc-v0", f"t-{i}", id=f"e-{i}", success=i < 3, reward=float(i < 3))
                for i in range(4)]  # fmt: skip
    with TrajectoryStore(tmp_path / "trajectories.jsonl") as store:
        store.append(episodes)
    (tmp_path / "summary.json").write_text(json.dumps(summarize(episodes)))
    client = TestClient(create_app(Viewer(tmp_path), token=TOKEN))
    html = client.get(f"/{TOKEN}/").text
    assert "all episodes" in html and "0.750" in html
    rows = _tags(client.get(f"/{TOKEN}/episodes", params={"phase": "trajectories"}).text)
    assert len([a for t, a in rows if t == "tr" and "data-episode" in a]) == 4
