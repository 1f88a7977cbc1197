"""The viewer's pages as a Starlette application, and the one-file HTML export.

Every page is rendered on the server by Jinja2 with autoescaping on, so trajectory text is
always shown as text. Responses carry a Content-Security-Policy that allows only the page's
own inline script (by nonce), so even markup that slipped through could not run code. The
application only answers GET requests and only opens files for reading.

>>> import tempfile
>>> from starlette.testclient import TestClient
>>> from agentgym.core.trajectory import Trajectory, TrajectoryStore
>>> run = Path(tempfile.mkdtemp())
>>> with TrajectoryStore(run / "trajectories" / "eval-0.jsonl") as store:
...     store.append(Trajectory("calc-v0", "task-1", id="ep-1", success=True))
1
>>> client = TestClient(create_app(Viewer(run), token="secret"))
>>> client.get("/secret/episodes").status_code, client.get("/episodes").status_code
(200, 403)
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Mount, Route

from agentgym.view.index import EpisodeRow, RunIndex
from agentgym.view.query import OUTCOMES, EpisodeQuery, QueryError
from agentgym.view.render import TokenizerSource, pretty_json, tool_list, turns
from agentgym.view.runinfo import RunInfo

__all__ = ["Viewer", "create_app", "export_html"]

#: Episodes of the same task offered for comparison on an episode page.
COMPARE_CANDIDATES = 30
#: Restart trees per lineage page.
LINEAGE_ROOTS_PER_PAGE = 20
# The run files whose change makes the run page stale.
_RUN_FILES = ("config.yaml", "ledger.jsonl", "metrics.jsonl", "summary.json", "session.json")


def _templates() -> Environment:
    environment = Environment(
        loader=PackageLoader("agentgym.view", "templates"),
        autoescape=select_autoescape(["html"], default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["num"] = _number
    environment.filters["interval"] = _interval
    environment.filters["when"] = _when
    environment.filters["json"] = lambda value: pretty_json(value) or str(value)
    return environment


def _number(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or value is None:
        return "–" if value is None else str(value)
    if isinstance(value, int | float):
        return "–" if isinstance(value, float) and math.isnan(value) else f"{value:.{digits}g}"
    return str(value)


def _interval(value: tuple[float, float] | None) -> str:
    return "" if value is None else f"[{value[0]:.3f}, {value[1]:.3f}]"


def _when(value: float | None) -> str:
    if value is None or not isinstance(value, int | float) or not math.isfinite(value):
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))


class Viewer:
    """The data behind the pages: the run's index, its other files and its tokenizer."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()
        started = time.perf_counter()
        self.index = RunIndex(self.path)
        self.index_seconds = time.perf_counter() - started
        self.run_path = self.path if self.path.is_dir() else None
        self._info_lock = threading.Lock()
        self._info: tuple[tuple, RunInfo] | None = None
        model = self.info().config_value("model.name")
        self.tokenizer = TokenizerSource(self.run_path, model if isinstance(model, str) else None)

    def _stamp(self) -> tuple:
        if self.run_path is None:
            return ()
        stamp = []
        for name in _RUN_FILES:
            try:
                status = (self.run_path / name).stat()
                stamp.append((name, status.st_size, status.st_mtime_ns))
            except FileNotFoundError:
                stamp.append((name, None, None))
        return tuple(stamp)

    def info(self) -> RunInfo:
        """The run's config, summary, ledger and curves (re-read when their files change)."""
        with self._info_lock:
            stamp = self._stamp()
            if self._info is None or self._info[0] != stamp:
                self._info = (stamp, RunInfo.load(self.run_path or self.path.parent))
            return self._info[1]

    def version(self) -> str:
        """Changes when anything the pages show changes (pages poll it to reload)."""
        return f"{self.index.version}-{hash(self._stamp()) & 0xFFFFFFFF:x}"


# --------------------------------------------------------------------------- links


@dataclass
class Links:
    """URLs of the pages; the export swaps them for in-file anchors (None: not exported)."""

    root: str  # "/<token>/" on the server
    store_name: Callable[[EpisodeRow], str]
    exported: frozenset[int] | None = None  # row numbers in the export file

    def _url(self, path: str, params: dict[str, Any] | None = None) -> str:
        query = urlencode({k: v for k, v in (params or {}).items() if v not in (None, "")})
        return self.root + path + (f"?{query}" if query else "")

    def run(self) -> str:
        return "#run" if self.exported is not None else self._url("")

    def episodes(self, **params: Any) -> str | None:
        if self.exported is not None:
            return "#episodes" if not params else None
        return self._url("episodes", params)

    def episode(self, row: EpisodeRow) -> str | None:
        if self.exported is not None:
            return f"#ep-{row.number}" if row.number in self.exported else None
        return self._url(f"episode/{quote(self.store_name(row), safe='')}/{quote(row.id, safe='')}")

    def key(self, row: EpisodeRow) -> str:
        return f"{self.store_name(row)}/{row.id}"

    def raw(self, row: EpisodeRow) -> str | None:
        if self.exported is not None:
            return None
        return self._url(f"raw/{quote(self.store_name(row), safe='')}/{quote(row.id, safe='')}")

    def compare(self, a: EpisodeRow, b: EpisodeRow | None = None) -> str | None:
        if self.exported is not None:
            return None
        return self._url("compare", {"a": self.key(a), "b": self.key(b) if b else None})

    def lineage(self, **params: Any) -> str | None:
        return "#lineage" if self.exported is not None else self._url("lineage", params)


# --------------------------------------------------------------------------- page data


def episode_context(viewer: Viewer, row: EpisodeRow, *, full: bool = True) -> dict[str, Any]:
    """Everything the episode template needs for ``row`` (``full``: also related episodes)."""
    index = viewer.index
    raw = index.read_raw(row)
    context: dict[str, Any] = {"row": row, "store": index.store_of(row), "problem": None}
    try:
        trajectory = index.read(row)
    except (ValueError, TypeError) as error:
        context.update(trajectory=None, problem=str(error),
                       raw=pretty_json(raw) or raw.decode(errors="replace"))  # fmt: skip
        return context
    context.update(
        trajectory=trajectory,
        turns=turns(trajectory, viewer.tokenizer.decoder()),
        tools=tool_list(trajectory),
        verdicts=[(key, value, pretty_json(value)) for key, value in trajectory.verdicts.items()],
        metadata=pretty_json(trajectory.metadata) if trajectory.metadata else None,
        env_kwargs=pretty_json(trajectory.env_kwargs) if trajectory.env_kwargs else None,
        tokenizer=viewer.tokenizer.description,
        parents=index.find_id(trajectory.parent_id) if trajectory.parent_id else [],
        children=index.children(trajectory.id) if full else [],
        same_task=index.same_task(row, COMPARE_CANDIDATES) if full else [],
    )
    return context


def _row_by_key(viewer: Viewer, key: str) -> EpisodeRow | None:
    store, _, trajectory_id = key.partition("/")
    return viewer.index.find(store, trajectory_id)


def _filter_menus(index: RunIndex) -> dict[str, Any]:
    return {
        "phases": index.store_names,
        "iterations": index.distinct("iteration"),
        "outcomes": OUTCOMES,
        "difficulties": index.distinct("difficulty"),
        "categories": index.distinct("category"),
        "policies": index.distinct("policy"),
    }


# --------------------------------------------------------------------------- the app


_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def create_app(viewer: Viewer, token: str | None = None) -> Starlette:
    """The Starlette application serving ``viewer`` under ``/<token>/`` (random if None)."""
    token = token or secrets.token_urlsafe(18)
    root = f"/{token}/"
    templates = _templates()
    links = Links(root, viewer.index.store_of)

    def page(name: str, request: Request, status: int = 200, **context: Any) -> HTMLResponse:
        nonce = secrets.token_urlsafe(12)
        html = templates.get_template(name).render(
            links=links, run_path=str(viewer.path), nonce=nonce, exported=False,
            version=viewer.version(), version_url=root + "api/version",
            live=context.pop("live", True), **context,
        )  # fmt: skip
        headers = {
            "Content-Security-Policy": _CSP.format(nonce=nonce),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        }
        return HTMLResponse(html, status_code=status, headers=headers)

    def not_found(request: Request, what: str) -> HTMLResponse:
        return page("message.html", request, 404, title="Not found", message=what, live=False)

    def run_page(request: Request) -> HTMLResponse:
        info = viewer.info()
        return page(
            "run.html", request, title="Run", info=info, stores=viewer.index.store_stats(),
            problems=viewer.index.problems(), total=len(viewer.index),
            index_seconds=viewer.index_seconds,
        )  # fmt: skip

    def episodes_page(request: Request) -> HTMLResponse:
        params = dict(request.query_params)
        try:
            query = EpisodeQuery.from_params(params)
            error = None
        except QueryError as problem:
            query, error = EpisodeQuery(), str(problem)
        selection = viewer.index.select(query)
        return page(
            "episodes.html", request, title="Episodes", query=query, selection=selection,
            error=error, menus=_filter_menus(viewer.index), total=len(viewer.index),
            export_hint=urlencode(query.params(page=1)),
        )  # fmt: skip

    def episode_page(request: Request) -> HTMLResponse:
        row = viewer.index.find(request.path_params["store"], request.path_params["id"])
        if row is None:
            return not_found(request, "No episode with this id in this phase of the run.")
        context = episode_context(viewer, row)
        return page(
            "episode.html", request, title=f"Episode {row.id}", live=False, ctx=context, **context
        )

    def raw_page(request: Request) -> PlainTextResponse:
        row = viewer.index.find(request.path_params["store"], request.path_params["id"])
        if row is None:
            return PlainTextResponse("no such episode", status_code=404)
        raw = viewer.index.read_raw(row)
        return PlainTextResponse(
            pretty_json(raw) or raw.decode(errors="replace"),
            headers={"Content-Security-Policy": "default-src 'none'",
                     "X-Content-Type-Options": "nosniff"},
        )  # fmt: skip

    def lineage_page(request: Request) -> HTMLResponse:
        task = request.query_params.get("task", "").strip().lower()
        roots = viewer.index.restart_roots()
        if task:
            roots = [(pid, row) for pid, row in roots if row and task in row.task_id.lower()]
        try:
            number = max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            number = 1
        pages = max(1, math.ceil(len(roots) / LINEAGE_ROOTS_PER_PAGE))
        number = min(number, pages)
        start = (number - 1) * LINEAGE_ROOTS_PER_PAGE
        shown = roots[start : start + LINEAGE_ROOTS_PER_PAGE]
        return page(
            "lineage.html", request, title="Lineage", roots=shown,
            total=len(roots), page_number=number, pages=pages, task=task,
            children=viewer.index.children,
        )  # fmt: skip

    def compare_page(request: Request) -> HTMLResponse:
        a_key, b_key = request.query_params.get("a", ""), request.query_params.get("b", "")
        a = _row_by_key(viewer, a_key)
        if a is None:
            return not_found(request, "Choose the first episode from an episode page's list.")
        b = _row_by_key(viewer, b_key) if b_key else None
        sides = [episode_context(viewer, a, full=False)]
        if b is not None:
            sides.append(episode_context(viewer, b, full=False))
        return page(
            "compare.html", request, title="Compare", a=a, b=b, sides=sides, live=False,
            candidates=viewer.index.same_task(a, COMPARE_CANDIDATES),
        )  # fmt: skip

    def version(request: Request) -> JSONResponse:
        return JSONResponse({"version": viewer.version(), "episodes": len(viewer.index)},
                            headers={"Cache-Control": "no-store"})  # fmt: skip

    def fresh(endpoint: Callable[[Request], Any]) -> Callable[[Request], Any]:
        """Read what the run appended before answering (the page and its version agree)."""

        def answer(request: Request) -> Any:
            viewer.index.refresh()
            return endpoint(request)

        return answer

    def without_token(request: Request) -> PlainTextResponse:
        return PlainTextResponse(
            "This viewer needs its full address, with the token that `agentgym view` printed.",
            status_code=403,
        )

    routes = [
        Route("/", fresh(run_page)),
        Route("/episodes", fresh(episodes_page)),
        Route("/episode/{store}/{id:path}", fresh(episode_page)),
        Route("/raw/{store}/{id:path}", fresh(raw_page)),
        Route("/lineage", fresh(lineage_page)),
        Route("/compare", fresh(compare_page)),
        Route("/api/version", fresh(version)),
    ]
    return Starlette(
        routes=[
            Route(f"/{token}", lambda request: RedirectResponse(root)),
            Mount(f"/{token}", routes=routes),
            Route("/{path:path}", without_token),
        ]
    )


# --------------------------------------------------------------------------- export


def export_html(viewer: Viewer, out: Path, query: EpisodeQuery, limit: int = 200) -> dict:
    """Write the run page, the selected episodes' table and those episodes into one file.

    The file needs no network and runs no script. Returns counts for the command's message.
    """
    selection = viewer.index.select(EpisodeQuery(**{**query.__dict__, "page": 1,
                                                    "per_page": max(1, limit)}))  # fmt: skip
    rows = selection.rows
    links = Links("", viewer.index.store_of, exported=frozenset(row.number for row in rows))
    html = _templates().get_template("export.html").render(
        links=links, run_path=str(viewer.path), nonce="", exported=True, version="",
        version_url="", live=False, title=f"Run {viewer.path.name}", info=viewer.info(),
        stores=viewer.index.store_stats(), problems=viewer.index.problems(),
        total=len(viewer.index), index_seconds=viewer.index_seconds, query=query,
        selection=selection, episodes=[episode_context(viewer, row, full=False) for row in rows],
        filters=json.dumps(query.params(), ensure_ascii=False), exported_at=_when(time.time()),
    )  # fmt: skip
    out.write_text(html, encoding="utf-8")
    return {"episodes": len(rows), "matching": selection.total, "bytes": len(html.encode())}
