"""The calculator's tools: four ``@tool`` functions and the :class:`~agentgym.ToolSet` of them."""

from __future__ import annotations

from agentgym.core.tools import ToolError, ToolSet, tool

__all__ = ["add", "calculator_tools", "divide", "multiply", "subtract"]


def _as_number(value: float) -> int | float:
    """Integers print as integers (``95``, not ``95.0``)."""
    return int(value) if float(value).is_integer() else round(value, 6)


@tool
def add(a: float, b: float) -> float:
    """Add two numbers.

    Args:
        a: The first number.
        b: The second number.
    """
    return _as_number(a + b)


@tool
def subtract(a: float, b: float) -> float:
    """Subtract b from a.

    Args:
        a: The number to subtract from.
        b: The number to subtract.
    """
    return _as_number(a - b)


@tool
def multiply(a: float, b: float) -> float:
    """Multiply two numbers.

    Args:
        a: The first factor.
        b: The second factor.
    """
    return _as_number(a * b)


@tool
def divide(a: float, b: float) -> float:
    """Divide a by b.

    Args:
        a: The dividend.
        b: The divisor (not zero).
    """
    if b == 0:
        raise ToolError("division by zero: b must not be 0.")
    return _as_number(a / b)


calculator_tools = ToolSet([add, subtract, multiply, divide])
