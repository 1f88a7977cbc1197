"""BFCL multi-turn: the Berkeley Function Calling Leaderboard's stateful multi-turn tasks.

The data, the function docs and the stateful backends (a file system, a math API,
messaging, a posting API, ticketing, a trading bot, travel booking, vehicle control) come
from the ``bfcl-eval`` package, which must be installed without its (heavy) declared
dependencies::

    pip install --no-deps bfcl-eval==2026.3.23 mpmath

This package only reads the package: the entries are loaded once per process and shared by
every environment copy; each episode gets its own backend instances, so env copies never
share state. Nothing is ``eval``-ed: calls are parsed by the tool-call parser and dispatched
by attribute lookup on the backend instance that owns the function.

Parts:

* :mod:`~agentgym.envs.bfcl.env`: :class:`BFCLMultiTurnEnv`.
* :mod:`~agentgym.envs.bfcl.tasks`: the entry type and choosing entries (categories, the
  train/test split, backend filters).
* :mod:`~agentgym.envs.bfcl.expert`: the oracle :class:`BFCLExpert`.
* :mod:`~agentgym.envs.bfcl.judge`: BFCL's per-turn checks.
* :mod:`~agentgym.envs.bfcl.loaders`: loading entries, function docs and backends from
  ``bfcl-eval``.
* :mod:`~agentgym.envs.bfcl.execution`: executing calls (official or strict semantics).
* :mod:`~agentgym.envs.bfcl.hints`: Environment Tuning's actionable hints (``augment``).

The checker follows BFCL's multi-turn checker. For every turn whose ground truth is not
empty: (1) state: every public attribute of every backend after the agent's calls equals
the one after replaying the ground truth (turn by turn, on a parallel set of backends);
(2) response: every ground-truth call's result appears among the results the agent obtained
so far (as a multiset); (3) the agent made at least one call in that turn.

Execution semantics. By default (``strict=False``) calls run as BFCL's own executor runs
them, so that scores compare with published ones: argument values reach the backend as
given (``tail(file_name='log.txt', lines=10.0)`` runs, and the backend decides); a function
that a miss_func entry withholds until a later turn runs if the agent calls it early (it is
only absent from the function list); a backend that raises keeps what it changed before
raising; positional arguments bind in the backend method's parameter order. With
``strict=True`` arguments are checked against the function docs (types included) before
anything runs, withheld functions are refused until revealed, and a raising backend is
rolled back, so errors never change the state.

Remaining differences from BFCL's inference and checker, on purpose:

* Unknown functions and unknown or missing arguments are refused with a message that says
  what is valid (BFCL returns Python's ``TypeError`` text); the outcome is the same.
* Two guards refuse arguments that would keep a backend busy for minutes (``precision``
  over 1,000 digits, integer powers with exponents over 10,000).
* An action that cannot be parsed is an error observation and the turn goes on; BFCL's
  prompting handlers end the turn on a decoding failure.
* Argument values must be literals: BFCL's ``eval`` would also run nested calls
  (``f(x=g())``), which this environment refuses.
* The per-turn step limit is 40 actions (BFCL: 20 steps, each of which may carry several
  calls), so that an agent calling one function per step can solve every entry; pass
  ``max_steps_per_turn=20`` to match BFCL.
"""

from agentgym.envs.bfcl.env import PARSERS, SYSTEM_PROMPT, BFCLMultiTurnEnv
from agentgym.envs.bfcl.execution import (
    CallOutcome,
    execute_call,
    format_result,
    validate_arguments,
)
from agentgym.envs.bfcl.expert import BFCLExpert
from agentgym.envs.bfcl.hints import HINTS, hint_for
from agentgym.envs.bfcl.judge import missing_results, public_state, state_differences
from agentgym.envs.bfcl.loaders import (
    INSTALL_COMMAND,
    convert_schema,
    fresh_backends,
    load_category,
    parse_ground_truth_call,
)
from agentgym.envs.bfcl.tasks import BACKENDS, CATEGORIES, SPLITS, BFCLTask, select_tasks, split_of

__all__ = [
    "BACKENDS",
    "CATEGORIES",
    "HINTS",
    "INSTALL_COMMAND",
    "PARSERS",
    "SPLITS",
    "SYSTEM_PROMPT",
    "BFCLExpert",
    "BFCLMultiTurnEnv",
    "BFCLTask",
    "CallOutcome",
    "convert_schema",
    "execute_call",
    "format_result",
    "fresh_backends",
    "hint_for",
    "load_category",
    "missing_results",
    "parse_ground_truth_call",
    "public_state",
    "select_tasks",
    "split_of",
    "state_differences",
    "validate_arguments",
]
