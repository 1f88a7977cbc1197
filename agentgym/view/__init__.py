"""``agentgym view``: a local, read-only web viewer for runs and trajectory stores.

    agentgym view runs/train/<run>                    # serve; prints http://127.0.0.1:8765/<token>/
    agentgym view runs/train/<run> --export run.html  # one self-contained HTML file

Modules, in the order a request meets them:

* :mod:`agentgym.view.server`: the command (argument parsing, the socket, uvicorn, export);
* :mod:`agentgym.view.app`: the Starlette application, its pages and the export;
* :mod:`agentgym.view.index`: one small row per stored episode with its byte offset, read
  without parsing whole records and refreshed as stores grow;
* :mod:`agentgym.view.query`: the episode table's filters, sort order and paging;
* :mod:`agentgym.view.render`: a trajectory made ready for a person (turns paired with their
  steps, tool calls as JSON, sampled tokens with their log-probs);
* :mod:`agentgym.view.runinfo`: the run's config, summary, ledger and learning curves;
* ``templates/``: Jinja2 templates (autoescaped: model and environment text stays text).

See docs/viewer.md for the pages, the export and measurements at 100k episodes.
"""
