"""Checking keyword arguments against a constructor's signature and type annotations.

One mechanism for every place where a user hands values to a typed constructor by name:
environment kwargs (``gymnasium.make(id, **kwargs)``, ``env.kwargs.*`` in a config),
engine kwargs, and the config dataclasses of trainers and fine-tuning. Each problem names
the argument, the value given and the type expected, so a wrong type fails with a sentence
instead of a ``'<=' not supported between 'str' and 'int'`` from deep inside a constructor.

The check is deliberately lenient where Python is: an ``int`` is a valid ``float``, a path
object a valid ``str``, and annotations it cannot read (forward references to names that
exist only for type checkers, type variables, protocols) accept any value.

Example:
    >>> def build(*, difficulty: str = "easy", num_tasks: int | None = None) -> None: ...
    >>> for problem in argument_problems(
    ...     build, {"difficulty": 3, "num_tasks": "5", "dificulty": "easy"}
    ... ):
    ...     print(problem)
    unknown argument 'dificulty'. Did you mean 'difficulty'? Valid arguments: difficulty, num_tasks
    difficulty=3: expected str, got int
    num_tasks='5': expected int or None, got str
    >>> type_problem("rate", "abc", float)
    "rate='abc': expected float, got str"
    >>> type_problem("shape", (1, 2, 3), tuple[int, int]) is None
    False
"""

from __future__ import annotations

import collections.abc as abc
import dataclasses
import difflib
import inspect
import numbers
import os
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Union, get_args, get_origin

__all__ = [
    "argument_problems",
    "dataclass_problems",
    "describe_type",
    "matches_type",
    "parameter_types",
    "type_problem",
    "unknown_names",
    "well_typed",
]

_UNION_ORIGINS = (Union, types.UnionType)
# Containers whose items can be checked without consuming them.
_SEQUENCE_ORIGINS = (list, abc.Sequence, abc.MutableSequence, typing.Sequence)
_SET_ORIGINS = (set, frozenset, abc.Set, abc.MutableSet)
_MAPPING_ORIGINS = (dict, abc.Mapping, abc.MutableMapping, typing.Mapping)


def _is_unreadable(annotation: Any) -> bool:
    """Annotations the checker does not understand: they accept any value."""
    return (
        annotation is Any
        or annotation is inspect.Parameter.empty
        or annotation is object
        or isinstance(annotation, typing.TypeVar | str)
        or getattr(annotation, "_is_protocol", False)
    )


def matches_type(value: Any, annotation: Any) -> bool:
    """Whether ``value`` fits ``annotation`` (see the module docstring for the leniencies).

    >>> matches_type(3, float), matches_type(True, int), matches_type([1, "a"], list[int])
    (True, False, False)
    >>> matches_type((1, 2), tuple[int, int]), matches_type("x", Literal["x", "y"])
    (True, True)
    """
    if _is_unreadable(annotation):
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in _UNION_ORIGINS:
        return any(matches_type(value, member) for member in args)
    if origin is Literal:
        return any(value == option and type(value) is type(option) for option in args)
    if origin is typing.Annotated:
        return matches_type(value, args[0])
    if annotation is bool:
        return isinstance(value, bool | _numpy_bool())
    if annotation is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str | os.PathLike)
    if origin is None:
        return not isinstance(annotation, type) or isinstance(value, annotation)
    if origin is tuple:
        if not isinstance(value, tuple | list):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(matches_type(item, args[0]) for item in value)
        if args == ((),) or not args:
            return not args or len(value) == 0
        return len(value) == len(args) and all(map(matches_type, value, args))
    if origin in _SEQUENCE_ORIGINS or origin in _SET_ORIGINS:
        container = abc.Sequence if origin in _SEQUENCE_ORIGINS else abc.Set
        if origin is list:
            container = list
        if not isinstance(value, container) and not _is_sequence_like(value, container):
            return False
        return not args or all(matches_type(item, args[0]) for item in value)
    if origin in _MAPPING_ORIGINS:
        if not isinstance(value, abc.Mapping):
            return False
        if len(args) != 2:
            return True
        return all(matches_type(k, args[0]) and matches_type(v, args[1]) for k, v in value.items())
    if origin is abc.Callable:
        return callable(value)
    # Iterable[X], Collection[X], Iterator[X], type[X], ...: the container's type only (an
    # iterator's items cannot be checked without consuming it).
    return not isinstance(origin, type) or isinstance(value, origin)


def _numpy_bool() -> type:
    try:
        import numpy

        return numpy.bool_
    except ImportError:  # pragma: no cover - numpy is a dependency
        return bool


def _is_sequence_like(value: Any, container: type) -> bool:
    # A list where a Sequence is expected, and an omegaconf ListConfig (a MutableSequence in
    # practice though not registered with `list`), are fine; a str is not a list.
    return container is list and isinstance(value, abc.Sequence) and not isinstance(value, str)


def describe_type(annotation: Any) -> str:
    """A readable name for an annotation, for error messages.

    >>> describe_type(int | None), describe_type(tuple[int, int])
    ('int or None', 'a pair (int, int)')
    >>> describe_type(str | list[str]), describe_type(Literal["a", "b"])
    ('str or a list of str', "one of 'a', 'b'")
    """
    if _is_unreadable(annotation):
        return "any value"
    if annotation is None or annotation is type(None):
        return "None"
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in _UNION_ORIGINS:
        names = [describe_type(member) for member in args if member is not type(None)]
        if type(None) in args:
            names.append("None")
        return " or ".join(names)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin is typing.Annotated:
        return describe_type(args[0])
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a tuple of {describe_type(args[0])}"
        if args:
            kind = {1: "a 1-tuple", 2: "a pair", 3: "a triple"}.get(len(args), "a tuple")
            return f"{kind} ({', '.join(describe_type(a) for a in args)})"
        return "a tuple"
    if origin in _SEQUENCE_ORIGINS or origin in _SET_ORIGINS:
        kind = "a list" if origin in _SEQUENCE_ORIGINS else "a set"
        return f"{kind} of {describe_type(args[0])}" if args else kind
    if origin in _MAPPING_ORIGINS:
        if len(args) == 2:
            return f"a mapping of {describe_type(args[0])} to {describe_type(args[1])}"
        return "a mapping"
    if origin is abc.Callable:
        return "a callable"
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name} of {describe_type(args[0])}" if args else name
    return getattr(annotation, "__name__", str(annotation))


def _value_text(value: Any, limit: int = 60) -> str:
    try:
        text = repr(value)
    except Exception:  # a value whose repr fails still deserves a message
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def type_problem(name: str, value: Any, annotation: Any) -> str | None:
    """``None`` when ``value`` fits ``annotation``, else a sentence naming the field.

    >>> print(type_problem("learning_rate", "abc", float))
    learning_rate='abc': expected float, got str
    """
    if matches_type(value, annotation):
        return None
    return (
        f"{name}={_value_text(value)}: expected {describe_type(annotation)}, "
        f"got {type(value).__name__}"
    )


def _resolve(annotation: Any, namespace: Mapping[str, Any]) -> Any:
    """An annotation with string (postponed) parts evaluated; unreadable parts stay strings."""
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, dict(namespace))  # annotations are the author's own code
    except Exception:  # a name imported only under TYPE_CHECKING, a typo in the source
        return annotation


def parameter_types(function: Callable[..., Any]) -> dict[str, Any]:
    """Keyword-passable parameter names of ``function`` (or a class) -> resolved annotations.

    Annotations that cannot be evaluated are returned as strings (and accept any value).
    """
    target = function.__init__ if isinstance(function, type) else function  # type: ignore[misc]
    signature = inspect.signature(function)
    namespace: dict[str, Any] = dict(getattr(inspect.unwrap(target), "__globals__", {}))
    if isinstance(function, type):
        namespace.setdefault(function.__name__, function)
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:  # one unresolvable name: evaluate the parameters one by one instead
        hints = {}
    return {
        name: hints.get(name, _resolve(parameter.annotation, namespace))
        for name, parameter in signature.parameters.items()
        if parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)
        and name != "self"
    }


def unknown_names(
    given: Iterable[str], valid: Iterable[str], *, prefix: str = "", noun: str = "argument"
) -> list[str]:
    """One problem per name not in ``valid``, with a "did you mean" and the valid names.

    >>> unknown_names(["lerning_rate"], ["learning_rate", "epochs"], prefix="sft.", noun="key")
    ["unknown key 'sft.lerning_rate'. Did you mean 'learning_rate'? Valid keys: \
learning_rate, epochs"]
    """
    valid = list(valid)
    problems = []
    for name in given:
        if name in valid:
            continue
        close = difflib.get_close_matches(str(name), valid, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        problems.append(
            f"unknown {noun} '{prefix}{name}'.{hint} Valid {noun}s: {', '.join(valid) or 'none'}"
        )
    return problems


def argument_problems(
    function: Callable[..., Any],
    kwargs: Mapping[str, Any],
    *,
    prefix: str = "",
    skip: Iterable[str] = (),
    noun: str = "argument",
) -> list[str]:
    """Unknown names and wrong types among ``kwargs`` for a call of ``function``.

    Args:
        function: A function or class whose signature the keyword arguments are for.
        kwargs: The keyword arguments.
        prefix: Put before each name in the messages (``"env.kwargs."``).
        skip: Parameters supplied by the caller rather than the user (never reported as
            valid names, never checked).
        noun: What an unknown name is called in the message (``"key"`` in a config).
    """
    skipped = set(skip)
    types_by_name = {k: v for k, v in parameter_types(function).items() if k not in skipped}
    accepts_any = any(
        p.kind is p.VAR_KEYWORD for p in inspect.signature(function).parameters.values()
    )
    problems = [] if accepts_any else unknown_names(kwargs, types_by_name, prefix=prefix, noun=noun)
    for name, value in kwargs.items():
        if name in types_by_name:
            problem = type_problem(f"{prefix}{name}", value, types_by_name[name])
            if problem:
                problems.append(problem)
    return problems


def well_typed(
    function: Callable[..., Any], kwargs: Mapping[str, Any], *, skip: Iterable[str] = ()
) -> dict[str, Any]:
    """The known, well-typed entries of ``kwargs``: what a constructor can still check.

    Used to run a constructor's own value checks (ranges, choices) next to the type
    problems, so that one report lists every problem.
    """
    types_by_name = parameter_types(function)
    skipped = set(skip)
    return {
        name: value
        for name, value in kwargs.items()
        if name in types_by_name
        and name not in skipped
        and type_problem(name, value, types_by_name[name]) is None
    }


def dataclass_problems(
    cls: type, values: Mapping[str, Any], *, prefix: str = "", skip: Iterable[str] = ()
) -> list[str]:
    """Unknown keys and wrong types among ``values`` for the fields of dataclass ``cls``.

    >>> @dataclasses.dataclass
    ... class Settings:
    ...     learning_rate: float = 1e-5
    >>> dataclass_problems(Settings, {"learning_rate": "abc"}, prefix="sft.")
    ["sft.learning_rate='abc': expected float, got str"]
    """
    skipped = set(skip)
    fields = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in skipped]
    hints = parameter_types(cls)
    problems = unknown_names([k for k in values if k not in skipped], fields, prefix=prefix,
                             noun="key")  # fmt: skip
    for name, value in values.items():
        if name in fields:
            problem = type_problem(f"{prefix}{name}", value, hints.get(name, Any))
            if problem:
                problems.append(problem)
    return problems
