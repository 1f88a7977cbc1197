"""Judging hidden tests outside the sandbox: the program answers calls, the parent decides.

A hidden test is trusted Python code that raises to fail, usually ``assert f(3) == 7``.
If the sandboxed process ran it (as HumanEval's harness does), the expected value ``7``
would sit in the program's own interpreter, and a program could read it (frames, ``gc``),
return an object whose ``__eq__`` always answers True, patch ``abs``, ``compile`` or
``AssertionError``, or forge the harness's verdict. So the test runs *here*, in the
parent, in a namespace where each function the test needs from the program (each
*program name*) is a stub: calling it sends the arguments, as plain data, to the sandboxed
process, which calls the real function and answers with the result as plain data (see
:func:`~agentgym.envs.codeexec._harness.encode_value`). The assertion and the comparison
then run on plain ``int``/``str``/``list``/... values in the parent, which the program
cannot reach. The program learns only the arguments of its own calls; the expected values
never leave the parent.

This covers any test that uses the program only by calling it: HumanEval's ``assert
candidate(x) == y``, ``abs(candidate(x) - y) < 1e-6``, ``assert not candidate(x)``, and its
loops over random inputs (the test's ``random`` is a private, seeded generator, so runs are
reproducible and the parent's global ``random`` is untouched). Helpers of the problem's
prelude (HumanEval's ``encode_cyclic``, ``poly``) run here too, in the trusted version.

The weaker path: a test that uses a program name other than by calling it (``f.cache``,
``isinstance(x, Cls)``) or passes a function as an argument runs inside the sandboxed
process, as before, and its verdict is the program's claim (``checked_outside=False``).
No test of the generated set or HumanEval takes that path.

Example:
    >>> plan = plan_tests(("assert double(2) == 4", "assert double(x) == 0"), "x = 0", "")
    >>> plan.program_names, [test.checked_outside for test in plan.tests]
    (('double',), [True, True])
    >>> print(plan.tests[0].source)
    __got__ = double(2)
    __want__ = 4
    assert __got__ == __want__
"""

from __future__ import annotations

import ast
import builtins
import functools
import random
import types
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "BUILTIN_EXCEPTIONS",
    "NeedsSandbox",
    "ProgramError",
    "RunOver",
    "TestPlan",
    "TestResult",
    "instrument_test",
    "plan_tests",
    "run_tests",
]

MAX_REPR = 300
TEST_FILE = "<hidden test>"
BUILTIN_EXCEPTIONS: frozenset[str] = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, Exception)
)


@dataclass(frozen=True)
class TestResult:
    """The outcome of one hidden test.

    Attributes:
        index: Position of the test.
        passed: Whether it passed.
        error: Why it failed (trimmed traceback, ``"timeout"``, ...); empty when it passed.
        got: ``repr`` of the value the solution returned, for ``assert f(x) == y`` tests.
        expected: ``repr`` of the expected value, for the same tests.
        exception: The built-in exception class the failure raised (``"ValueError"``);
            empty for a wrong result, a class the program defined, or no exception.
        checked_outside: The verdict was decided in the parent on plain data (``False``:
            the test ran inside the sandboxed process and the verdict is its claim).
        outcome: ``"passed"``, ``"wrong_result"`` (the test's check failed on the returned
            data), ``"exception"`` (the program raised), ``"bad_value"`` (it returned
            something that is not plain data), ``"stopped"`` (the run ended during this
            test: timeout, crash, output limit), ``"not_run"`` or ``"broken_test"`` (the
            test or its setup failed by itself). Feedback that must not reveal the tests
            words failures from this alone.
    """

    __test__ = False  # not a pytest test class, despite the name

    index: int
    passed: bool
    error: str = ""
    got: str | None = None
    expected: str | None = None
    exception: str = ""
    checked_outside: bool = True
    outcome: str = ""

    def __post_init__(self) -> None:
        if not self.outcome:
            object.__setattr__(self, "outcome", "passed" if self.passed else "wrong_result")


class RunOver(BaseException):  # a control-flow signal, not an error
    """The sandboxed process is gone, out of time or over a limit: stop testing.

    A ``BaseException``, so that a test's own ``except Exception`` cannot swallow it.
    """


class NeedsSandbox(Exception):
    """An argument is not plain data (a function, say): the test must run inside."""


class ProgramError(Exception):
    """The program's call failed: it raised a class of its own, or answered malformed data.

    ``outcome`` is ``"exception"`` or ``"bad_value"`` (see :class:`TestResult`).
    """

    def __init__(self, message: str, outcome: str = "exception") -> None:
        super().__init__(message)
        self.outcome = outcome


# ---------------------------------------------------------------------- planning --


def instrument_test(test: str) -> str:
    """The test as run: a lone ``assert L == R`` records both sides for the feedback.

    >>> print(instrument_test("assert f(1) == 2"))
    __got__ = f(1)
    __want__ = 2
    assert __got__ == __want__
    >>> instrument_test("assert f(1)")
    'assert f(1)'
    """
    try:
        module = ast.parse(test)
    except SyntaxError:
        return test
    if len(module.body) != 1:
        return test
    statement = module.body[0]
    if not (
        isinstance(statement, ast.Assert)
        and statement.msg is None
        and isinstance(statement.test, ast.Compare)
        and len(statement.test.ops) == 1
        and isinstance(statement.test.ops[0], ast.Eq)
    ):
        return test
    left, right = statement.test.left, statement.test.comparators[0]
    return (
        f"__got__ = {ast.unparse(left)}\n__want__ = {ast.unparse(right)}\n"
        "assert __got__ == __want__"
    )


@dataclass(frozen=True)
class PlannedTest:
    """One test, ready to run: its (instrumented) source and where it runs."""

    source: str
    code: types.CodeType | None
    checked_outside: bool
    compile_error: str = ""


@dataclass(frozen=True)
class TestPlan:
    """Compiled tests and what they need from the program (see :func:`plan_tests`)."""

    __test__ = False

    prelude: types.CodeType | None
    setup: types.CodeType | None
    setup_source: str
    program_names: tuple[str, ...]
    tests: tuple[PlannedTest, ...]
    error: str = ""


def _bound_and_loaded(tree: ast.AST) -> tuple[set[str], set[str]]:
    """Names the code binds anywhere (any scope) and names it reads."""
    bound: set[str] = set()
    loaded: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
    return bound, loaded


def _only_called(tree: ast.AST, names: set[str]) -> bool:
    """Every use of ``names`` is a call, an argument of a call, or ``alias = name``."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Name) and node.id in names and isinstance(node.ctx, ast.Load)):
            continue
        parent = parents.get(node)
        if isinstance(parent, ast.Call) and parent.func is node:
            continue
        if isinstance(parent, ast.Assign) and all(isinstance(t, ast.Name) for t in parent.targets):
            continue
        return False
    return True


def _aliases(tree: ast.AST, names: set[str]) -> set[str]:
    """Names assigned straight from a program name (HumanEval's ``candidate = f``)."""
    found = set(names)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Name)
            and (node.value.id in found)
        ):
            found.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return found


def _compile(source: str, filename: str) -> tuple[types.CodeType | None, str]:
    try:
        return compile(source, filename, "exec"), ""
    except (SyntaxError, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


@functools.lru_cache(maxsize=4096)
def plan_tests(tests: tuple[str, ...], setup: str, prelude: str) -> TestPlan:
    """Decide, per test, whether the parent can judge it, and compile what runs here.

    The program names are the names the tests and setup read but nothing in the prelude,
    the setup or the tests binds (nor the builtins): what only the program can provide.
    """
    prelude_code, prelude_error = _compile(prelude or "", "<problem>")
    setup_code, setup_error = _compile(setup or "", TEST_FILE)
    sources = tuple(instrument_test(test) for test in tests)
    trees = []
    for source in (prelude, setup, *sources):
        try:
            trees.append(ast.parse(source or ""))
        except (SyntaxError, ValueError):
            trees.append(ast.Module(body=[], type_ignores=[]))
    bound: set[str] = set(dir(builtins))
    loaded: set[str] = set()
    for position, tree in enumerate(trees):
        tree_bound, tree_loaded = _bound_and_loaded(tree)
        bound |= tree_bound
        if position > 0:
            loaded |= tree_loaded
    program_names = loaded - bound
    references = _aliases(trees[1], program_names)
    setup_ok = _only_called(trees[1], references)
    planned = []
    for source, tree in zip(sources, trees[2:], strict=True):
        code, error = _compile(source, TEST_FILE)
        outside = setup_ok and _only_called(tree, _aliases(tree, references))
        planned.append(PlannedTest(source, code if outside else None, outside, error))
    return TestPlan(
        prelude=prelude_code,
        setup=setup_code,
        setup_source=setup or "",
        program_names=tuple(sorted(program_names)),
        tests=tuple(planned),
        error=f"problem prelude: {prelude_error}" if prelude_error else setup_error,
    )


# ---------------------------------------------------------------------- running --


def _short_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # plain data; only a recursion limit can get here
        text = f"<unprintable {type(value).__name__}: {type(exc).__name__}>"
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


def _private_random(seed: int) -> types.ModuleType:
    """A ``random`` module of its own: tests draw reproducible inputs, the parent's stays."""
    module = types.ModuleType("random")
    module.__dict__.update({k: v for k, v in vars(random).items() if not k.startswith("__")})
    generator = random.Random(seed)
    for name, value in vars(random).items():
        if isinstance(value, types.MethodType) and value.__self__ is random._inst:
            module.__dict__[name] = getattr(generator, name)
    return module


def _judge_builtins(modules: dict[str, types.ModuleType]) -> dict:
    table = dict(vars(builtins))
    real_import = builtins.__import__

    def judge_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name in modules:
            return modules[name]
        return real_import(name, globals, locals, fromlist, level)

    table["__import__"] = judge_import
    table["print"] = lambda *args, **kwargs: None  # tests print into the parent's console
    return table


class Program:
    """What the judge needs from the sandboxed process (implemented by the sandbox)."""

    def call(self, name: str, args: tuple, kwargs: dict) -> object:
        """Call the program's ``name``; the result as plain data.

        Raises :class:`ProgramError` or a built-in exception carrying ``sandbox_error``
        when the program failed, :class:`NeedsSandbox` for arguments that are not plain
        data, :class:`RunOver` when the process is gone.
        """
        raise NotImplementedError

    def execute(self, source: str) -> None:
        """Run test code inside the sandboxed process (the weaker path); raises likewise."""
        raise NotImplementedError


def _stub(program: Program, name: str) -> Callable:
    def call_program(*args: object, **kwargs: object) -> object:
        return program.call(name, args, kwargs)

    call_program.__name__ = call_program.__qualname__ = name
    return call_program


def _failure(index: int, exc: BaseException, namespace: dict | None, outside: bool) -> TestResult:
    """A failed test's result from the exception that ended it."""
    remote = getattr(exc, "sandbox_error", None)
    if isinstance(remote, dict):  # the program raised (inside the sandbox)
        name = str(remote.get("exception", ""))
        return TestResult(
            index,
            False,
            str(remote.get("error", ""))[:4000],
            exception=name if name in BUILTIN_EXCEPTIONS else "",
            checked_outside=outside,
            outcome="exception",
        )
    if isinstance(exc, ProgramError):
        return TestResult(index, False, str(exc), checked_outside=outside, outcome=exc.outcome)
    if isinstance(exc, AssertionError):  # the test's own assertion: a wrong result
        got = expected = None
        if namespace is not None and "__got__" in namespace and "__want__" in namespace:
            got, expected = _short_repr(namespace["__got__"]), _short_repr(namespace["__want__"])
        message = f"AssertionError: {exc}" if str(exc) else "AssertionError"
        return TestResult(index, False, message, got, expected, checked_outside=outside)
    # The test's own code failed on the program's data (``abs("text" - 1.0)``, say).
    name = type(exc).__name__
    return TestResult(
        index,
        False,
        f"{name}: {exc}"[:4000],
        exception=name if name in BUILTIN_EXCEPTIONS else "",
        checked_outside=outside,
    )


def run_tests(
    plan: TestPlan, program: Program, *, seed: int = 0
) -> tuple[list[TestResult], int | None]:
    """Run every test of ``plan`` against ``program``, in order.

    Returns the results of the tests that ran and the index of the test during which the
    run ended (:class:`RunOver`), or ``None`` when every test ran; the caller words the
    results of that test and the ones after it.
    """
    runner = _Runner(plan, program, seed)
    results: list[TestResult] = []
    for index, test in enumerate(plan.tests):
        try:
            results.append(runner.run(index, test))
        except RunOver:
            return results, index
        except Exception as exc:
            outside = test.checked_outside and not isinstance(exc, NeedsSandbox)
            results.append(_failure(index, exc, runner.namespace if outside else None, outside))
    return results, None


class _Runner:
    """The state shared by the tests of one run: the judge's namespace, the setup inside."""

    def __init__(self, plan: TestPlan, program: Program, seed: int) -> None:
        self.plan, self.program, self.seed = plan, program, seed
        self.namespace: dict | None = None
        self.namespace_error = plan.error
        self.setup_inside: str | None = None  # None: not run inside the sandbox yet

    def run(self, index: int, test: PlannedTest) -> TestResult:
        if test.compile_error:
            return TestResult(
                index,
                False,
                f"the test does not compile: {test.compile_error}",
                outcome="broken_test",
            )
        if test.checked_outside:
            if self.namespace is None and not self.namespace_error:
                self.namespace, self.namespace_error = _namespace(
                    self.plan, self.program, self.seed
                )
            if self.namespace is None:
                return TestResult(index, False, self.namespace_error, outcome="broken_test")
            self.namespace.pop("__got__", None)
            self.namespace.pop("__want__", None)
            try:
                exec(test.code, self.namespace)  # type: ignore[arg-type]
                return TestResult(index, True)
            except NeedsSandbox:
                pass  # arguments the parent cannot send (a function): run it inside after all
        return self._inside(index, test)

    def _inside(self, index: int, test: PlannedTest) -> TestResult:
        """The weaker path: the test runs in the program's own interpreter."""
        if self.setup_inside is None:
            self.setup_inside = ""
            if self.plan.setup_source.strip():
                try:
                    self.program.execute(self.plan.setup_source)
                except Exception as exc:
                    self.setup_inside = "test setup: " + _failure(index, exc, None, False).error
        if self.setup_inside:
            return TestResult(
                index, False, self.setup_inside, checked_outside=False, outcome="broken_test"
            )
        self.program.execute(test.source)
        return TestResult(index, True, checked_outside=False)


def _namespace(plan: TestPlan, program: Program, seed: int) -> tuple[dict | None, str]:
    """The tests' namespace: private modules, prelude, program stubs, setup."""
    namespace: dict = {
        "__builtins__": _judge_builtins({"random": _private_random(seed)}),
        "__name__": "__hidden_tests__",
    }
    try:
        if plan.prelude is not None:
            exec(plan.prelude, namespace)
        namespace.update({name: _stub(program, name) for name in plan.program_names})
        if plan.setup is not None:
            exec(plan.setup, namespace)
    except Exception as exc:
        return None, f"test setup failed: {type(exc).__name__}: {exc}"
    return namespace, ""
