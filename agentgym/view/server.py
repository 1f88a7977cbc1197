"""``agentgym view``: serve the viewer on a local address, or export one HTML file.

    agentgym view runs/train/2026-12-04_10-00-00           # serve; prints the address
    agentgym view runs/train/<run>/trajectories/eval-1.jsonl
    agentgym view runs/train/<run> --export run.html       # one self-contained file
    agentgym view runs/train/<run> --export failures.html --select 'outcome=failure&phase=eval-2'

The server listens on 127.0.0.1 by default, and every page lives under a random token in
the address, so other local users and web pages cannot read the run.
"""

from __future__ import annotations

import argparse
import errno
import secrets
import socket
import sys
import webbrowser
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qsl

from agentgym.view.app import Viewer, create_app, export_html
from agentgym.view.index import find_stores
from agentgym.view.query import EpisodeQuery, QueryError

__all__ = ["main", "serve"]

DEFAULT_PORT = 8765


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentgym view",
        description="Browse a run directory or a trajectory store in a local, read-only web "
        "viewer (pages refresh while the run writes), or export it as one HTML file.",
    )
    parser.add_argument("path", type=Path, help="a run directory or a trajectories .jsonl file")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: this machine only)")  # fmt: skip
    parser.add_argument("--port", type=int, default=None,
                        help=f"port (default {DEFAULT_PORT}, or a free one if it is taken; "
                        "0: any free port)")  # fmt: skip
    parser.add_argument("--open", action="store_true", help="open the address in a browser")
    parser.add_argument("--export", type=Path, metavar="FILE",
                        help="write one self-contained HTML file instead of serving")  # fmt: skip
    parser.add_argument("--select", default="", metavar="QUERY",
                        help="episodes to export, as the episodes page's query string, e.g. "
                        "'outcome=failure&phase=eval-1' (default: all, up to --limit)")  # fmt: skip
    parser.add_argument("--limit", type=int, default=200,
                        help="most episodes written into an export (default 200)")  # fmt: skip
    return parser


def _bind(host: str, port: int | None) -> socket.socket:
    """A listening socket: ``port``, or the default port falling back to a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for candidate in [DEFAULT_PORT, 0] if port is None else [port]:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
            # Listening now (not when uvicorn starts) lets a client that read the printed
            # address connect at once: it waits in the backlog until the server accepts.
            sock.listen(128)
            return sock
        except OSError as error:
            sock.close()
            if error.errno != errno.EADDRINUSE or candidate != DEFAULT_PORT or port is not None:
                raise
    raise AssertionError("unreachable: binding port 0 does not fail with EADDRINUSE")


def serve(viewer: Viewer, host: str = "127.0.0.1", port: int | None = None,
          open_browser: bool = False) -> None:  # fmt: skip
    """Serve ``viewer`` until interrupted; prints the address (with its token) first."""
    import uvicorn

    token = secrets.token_urlsafe(18)
    sock = _bind(host, port)
    shown_host = f"[{host}]" if ":" in host else host
    address = f"http://{shown_host}:{sock.getsockname()[1]}/{token}/"
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {host}: anyone who can reach it and has the address "
              "can read this run", file=sys.stderr)  # fmt: skip
    print(f"agentgym view: {address}  (Ctrl-C stops)", flush=True)
    if open_browser:
        webbrowser.open(address)
    config = uvicorn.Config(create_app(viewer, token), log_level="warning", access_log=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``agentgym view``; returns the exit status."""
    args = _parser().parse_args(argv)
    path: Path = args.path
    if not path.exists():
        print(f"agentgym view: {path} does not exist", file=sys.stderr)
        return 2
    if not find_stores(path):
        runs = sorted(p.parent.parent for p in path.glob("*/trajectories/*.jsonl"))
        runs += sorted(p.parent for p in path.glob("*/trajectories.jsonl"))
        hint = f"; runs below it: {', '.join(str(r) for r in dict.fromkeys(runs))}" if runs else ""
        print(f"agentgym view: no trajectory store in {path} (expected trajectories/*.jsonl, "
              f"trajectories.jsonl or a .jsonl file){hint}", file=sys.stderr)  # fmt: skip
        return 2
    try:
        query = EpisodeQuery.from_params(dict(parse_qsl(args.select)))
    except QueryError as error:
        print(f"agentgym view: --select: {error}", file=sys.stderr)
        return 2
    viewer = Viewer(path)
    print(f"agentgym view: {len(viewer.index)} episodes in {len(viewer.index.stores)} store(s), "
          f"indexed in {viewer.index_seconds:.2f} s", flush=True)  # fmt: skip
    if args.export is not None:
        counts = export_html(viewer, args.export, query, limit=args.limit)
        more = f" (of {counts['matching']} matching; raise --limit for more)" \
            if counts["matching"] > counts["episodes"] else ""  # fmt: skip
        print(f"agentgym view: wrote {args.export} ({counts['bytes'] / 1e6:.1f} MB, "
              f"{counts['episodes']} episodes{more})")  # fmt: skip
        return 0
    try:
        serve(viewer, args.host, args.port, args.open)
    except OSError as error:
        print(f"agentgym view: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0
