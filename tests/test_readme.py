"""The README's examples run, and print what the README says they print.

Conventions (a README author needs only these):

* Every fenced ```` ```python ```` block is run, each in a fresh namespace and an empty
  working directory, in README order.
* Its printed output is compared with the fenced ```` ```text ```` block that directly
  follows it, if there is one; ``...`` in the expected text matches anything (doctest's
  ELLIPSIS), so long outputs can be abridged.
* ``print(x)  # 'text'``: a comment that is a string literal is the line that ``print``
  writes; it is checked too.
* Interactive blocks (a fence without a language whose lines start with ``>>>``) run with
  ``gymnasium as gym`` and ``agentgym`` imported; an expected last line
  ``SomeError: message`` means the statement raises that built-in error (or a subclass) with
  that message.
* Inline code ``env.reset(options=...)`` in a section is run on the ``env`` of the section's
  last Python block.
* ``<!-- readme-test: skip (reason) -->`` on the line before a block skips it: for examples
  that need a real model (SmolLM2 with vLLM) or a training run.
"""

from __future__ import annotations

import builtins
import contextlib
import doctest
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

SKIP_MARKER = re.compile(r"^<!--\s*readme-test:\s*skip\s*\((?P<reason>.+)\)\s*-->$")
_PRINT_WITH_LITERAL = re.compile(
    r"^(?P<indent>\s*)print\((?P<args>.*)\)\s+#\s+(?P<literal>'.*'|\".*\")\s*$"
)
_INLINE_RESET = re.compile(r"`(env\.reset\(options=.*?\))`")

#: Blocks whose README text is known to be wrong, with the reason. The README is not edited
#: here; the corrected text is handed to its maintainer. Each entry is a strict xfail, so
#: the test fails as soon as the README is fixed and the entry must go.
AWAITING_README_FIX: dict[str, str] = {}

#: Blocks that must carry a skip marker (they load SmolLM2 with vLLM) but do not yet; they
#: are not run. The test fails once the marker is in the README, so the entry goes too.
AWAITING_SKIP_MARKER: dict[str, str] = {}


@dataclass
class Block:
    """One runnable example of the README."""

    name: str
    kind: str  # "python" or "interactive"
    code: str
    line: int
    expected: str | None = None
    skip_reason: str | None = None
    inline_resets: list[str] = field(default_factory=list)


def _fence(lines: list[str], start: int) -> tuple[str, list[str], int]:
    """The info string and body of the fence opening at ``start``; the index after it."""
    info = lines[start].strip()[3:].strip()
    end = start + 1
    while end < len(lines) and lines[end].strip() != "```":
        end += 1
    return info, lines[start + 1 : end], end + 1


def readme_blocks(text: str) -> list[Block]:
    """The README's runnable blocks, named ``"<section heading> #<n>"``."""
    lines = text.splitlines()
    blocks: list[Block] = []
    heading, counts, section_blocks = "(top)", {}, []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#") and not line.startswith("#!"):
            heading = line.lstrip("#").strip()
            section_blocks = []
        for span in _INLINE_RESET.findall(line) if section_blocks else ():
            section_blocks[-1].inline_resets.append(span)
        if not line.startswith("```"):
            index += 1
            continue
        info, body, after = _fence(lines, index)
        interactive = info == "" and bool(body) and body[0].startswith(">>>")
        if info != "python" and not interactive:
            index = after
            continue
        previous = next(
            (lines[i].strip() for i in range(index - 1, -1, -1) if lines[i].strip()), ""
        )
        marker = SKIP_MARKER.match(previous)
        counts[heading] = counts.get(heading, 0) + 1
        block = Block(
            name=f"{heading} #{counts[heading]}",
            kind="python" if info == "python" else "interactive",
            code="\n".join(body),
            line=index + 2,
            skip_reason=marker.group("reason") if marker else None,
        )
        following = after
        while following < len(lines) and not lines[following].strip():
            following += 1
        if info == "python" and following < len(lines) and lines[following].strip() == "```text":
            _, output, after = _fence(lines, following)
            block.expected = "\n".join(output) + "\n"
        blocks.append(block)
        section_blocks.append(block)
        index = after
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def _params() -> list[Any]:
    params = []
    for block in BLOCKS:
        marks = []
        if block.name in AWAITING_README_FIX:
            marks.append(pytest.mark.xfail(reason=AWAITING_README_FIX[block.name], strict=True))
        params.append(pytest.param(block, id=block.name, marks=marks))
    return params


def _matches(expected: str, got: str) -> bool:
    return doctest.OutputChecker().check_output(expected, got, doctest.ELLIPSIS)


def _with_print_checks(code: str) -> str:
    """Rewrite ``print(x)  # 'text'`` lines into prints that also check the text."""
    rewritten = []
    for line in code.splitlines():
        match = _PRINT_WITH_LITERAL.match(line)
        if match:
            line = f"{match['indent']}__readme_print__({match['literal']}, {match['args']})"
        rewritten.append(line)
    return "\n".join(rewritten)


def _checked_print(expected: str, *values: Any) -> None:
    text = " ".join(map(str, values))
    print(text)
    assert _matches(expected + "\n", text + "\n"), (
        f"README comment says {expected!r}, print writes {text!r}"
    )


def _run_python(block: Block) -> tuple[str, dict[str, Any]]:
    namespace: dict[str, Any] = {"__name__": "__readme__", "__readme_print__": _checked_print}
    code = compile(_with_print_checks(block.code), f"README.md:{block.line}", "exec")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        exec(code, namespace)
    return stdout.getvalue(), namespace


def _run_interactive(block: Block) -> None:
    namespace: dict[str, Any] = {}
    exec("import gymnasium as gym\nimport agentgym", namespace)
    examples = doctest.DocTestParser().get_examples(block.code)
    assert examples, f"no >>> example in {block.name}"
    for example in examples:
        expected = example.want
        last = expected.strip().splitlines()[-1] if expected.strip() else ""
        error = re.match(r"^(?P<name>[A-Za-z]+(?:Error|Exception)): (?P<message>.*)$", last)
        if error is None:
            stdout = io.StringIO()
            with contextlib.redirect_stdout(stdout):
                exec(compile(example.source, "README.md", "single"), namespace)
            assert _matches(expected, stdout.getvalue()), (expected, stdout.getvalue())
            continue
        error_type = getattr(builtins, error["name"])
        with pytest.raises(error_type) as raised:
            exec(compile(example.source, "README.md", "single"), namespace)
        message = str(raised.value)
        assert _matches(error["message"] + "\n", message + "\n"), (error["message"], message)


@pytest.mark.parametrize("block", _params())
def test_readme_example(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if block.skip_reason is not None:
        assert block.name not in AWAITING_SKIP_MARKER, (
            f"{block.name} has its skip marker now: remove it from AWAITING_SKIP_MARKER"
        )
        pytest.skip(f"README: {block.skip_reason}")
    if block.name in AWAITING_SKIP_MARKER:
        pytest.skip(f"README block needs a skip marker: {AWAITING_SKIP_MARKER[block.name]}")
    monkeypatch.chdir(tmp_path)  # examples write relative paths such as runs/demo/
    if block.kind == "interactive":
        _run_interactive(block)
        return
    printed, namespace = _run_python(block)
    if block.expected is not None:
        assert _matches(block.expected, printed), doctest.OutputChecker().output_difference(
            doctest.Example("", block.expected), printed, doctest.ELLIPSIS
        )
    for span in block.inline_resets:
        assert "env" in namespace, f"{span!r} in {block.name}'s section has no env to run on"
        eval(compile(span, "README.md", "eval"), namespace)


def test_the_readme_has_examples_of_every_kind() -> None:
    """The parser finds what the README contains (a change in fences would hide examples)."""
    kinds = {block.kind for block in BLOCKS}
    assert kinds == {"python", "interactive"}
    assert sum(block.kind == "python" for block in BLOCKS) >= 4
    names = [block.name for block in BLOCKS]
    assert len(names) == len(set(names))
    for name in [*AWAITING_README_FIX, *AWAITING_SKIP_MARKER]:
        assert name in names, f"{name} is no longer a README block: remove its entry"


def test_conventions_catch_drift() -> None:
    """Wrong printed output, a wrong print comment and a failing inline reset all fail."""
    readme = """## Demo

```python
print("a long line of output")
print(2 + 2)  # '5'
```

```text
a long ...
```

<!-- readme-test: skip (needs a GPU) -->
```python
raise SystemExit
```

```
>>> int("x")
ValueError: invalid literal for int() with base 10: ...
```
"""
    first, skipped, interactive = readme_blocks(readme)
    assert first.expected == "a long ...\n" and skipped.skip_reason == "needs a GPU"
    with pytest.raises(AssertionError, match="README comment says '5', print writes '4'"):
        _run_python(first)
    first.code = 'print("a long line of output")'
    assert _matches(first.expected, _run_python(first)[0])
    assert not _matches("other\n", _run_python(first)[0])
    _run_interactive(interactive)
    interactive.code = '>>> int("1")\nValueError: nope'
    with pytest.raises(pytest.fail.Exception):
        _run_interactive(interactive)
