"""agentgym tool environments as TRL ``GRPOTrainer(environment_factory=...)`` classes.

TRL's GRPOTrainer runs multi-turn tool rollouts against an *environment class*: one instance
per rollout, ``reset(**dataset_columns)`` returns the first observation (appended to the
prompt), and every public method is a tool whose JSON schema TRL derives from the method's
type hints and Google-style docstring. :func:`trl_environment_factory` builds such a class
for a registered tool environment, running either in-process or on an ``agentgym
serve-env`` server (``url=``), so TRL trains on agentgym's tasks, tools and judges:

* one method per tool, with the tool's name, description and typed parameters; calling it
  sends the call to the episode in the environment's action format, so the environment
  records and validates it exactly as in agentgym's own rollouts;
* ``reset(seed=..., task_id=...)``: dataset columns ``seed`` and ``task_id`` pick the
  episode (other columns are ignored);
* :func:`agentgym_reward` as a ``reward_funcs`` entry sends each rollout's final assistant
  reply to its environment (the reply ends the user's turn) and returns the environment's
  reward.

TRL's rollouts have one user turn, so multi-turn tasks end unfinished (reward 0 unless the
environment's judge gives partial credit); use single-turn settings (e.g. Calculator's
``difficulty="easy"``).

Example::

    from agentgym.serving.trl_environment import agentgym_reward, trl_environment_factory
    Calculator = trl_environment_factory(
        "agentgym/Calculator-v0", env_kwargs={"difficulty": "easy"})
    dataset = Dataset.from_dict({"prompt": prompts, "seed": seeds})
    trainer = GRPOTrainer(model=..., train_dataset=dataset, reward_funcs=[agentgym_reward],
                          environment_factory=Calculator)
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import gymnasium as gym

from agentgym.core.parsing import ToolCall, get_parser

__all__ = ["agentgym_reward", "trl_environment_factory"]

_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
}
_RESERVED = ("reset", "get_reward")


def _annotation(schema: Mapping[str, Any]) -> Any:
    """A Python type hint that ``transformers.utils.get_json_schema`` turns back into
    ``schema`` (enums as ``Literal``)."""
    if schema.get("enum"):
        return Literal[tuple(schema["enum"])]
    kind = schema.get("type")
    if isinstance(kind, list):
        members = [_JSON_TYPES[k] for k in kind if k in _JSON_TYPES]
        if "null" in kind and members:
            return members[0] | None
        return members[0] if members else Any
    return _JSON_TYPES.get(kind, Any)


def _tool_method(schema: Mapping[str, Any]) -> Any:
    """A method with the tool's name, signature and docstring that forwards the call."""
    function = schema["function"]
    name = function["name"]
    parameters = function.get("parameters") or {}
    properties: dict[str, Any] = dict(parameters.get("properties") or {})
    required = set(parameters.get("required") or ())

    def call_tool(self: Any, **arguments: Any) -> str:
        return self._call(name, arguments)

    signature_parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    # Required parameters first: a Python signature cannot put them after defaulted ones.
    for pname in sorted(properties, key=lambda p: p not in required):
        annotation = _annotation(properties[pname])
        annotations[pname] = annotation
        default = inspect.Parameter.empty if pname in required else properties[pname].get("default")
        signature_parameters.append(
            inspect.Parameter(
                pname, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
            )
        )
    annotations["return"] = str
    call_tool.__name__ = call_tool.__qualname__ = name
    call_tool.__signature__ = inspect.Signature(signature_parameters, return_annotation=str)
    call_tool.__annotations__ = annotations
    arguments_doc = "".join(
        f"    {pname}: {properties[pname].get('description') or pname}\n" for pname in properties
    )
    call_tool.__doc__ = (
        f"{function.get('description') or name}\n\n"
        + (f"Args:\n{arguments_doc}\n" if properties else "")
        + "Returns:\n    The tool's result, or an error that says what was wrong.\n"
    )
    return call_tool


def trl_environment_factory(
    env_id: str,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    url: str | None = None,
    token: str | None = None,
    parser: str | None = None,
) -> type:
    """A TRL environment class running episodes of ``env_id`` (in-process or on a server).

    Args:
        env_id: A registered tool environment (its tools become the class's methods).
        env_kwargs: Constructor arguments of the in-process environment.
        url: An ``agentgym serve-env`` server of ``env_id`` to run episodes on instead.
        token: The server's bearer token (default ``$AGENTGYM_ENV_TOKEN``).
        parser: The served environment's action format, when it is not ``"hermes"``
            (in-process environments use their own parser).

    Returns:
        A class to pass as ``environment_factory`` (one instance per rollout).
    """

    def make_env() -> gym.Env:
        if url is not None:
            return gym.make("agentgym/Remote-v0", url=url, token=token)
        return gym.make(env_id, **dict(env_kwargs or {}))

    probe = make_env()
    try:
        _, info = probe.reset(seed=0)
        if not info.get("tools"):
            raise ValueError(f"{env_id} shows no tools at reset; TRL needs a tool environment")
        served_parser = getattr(probe.unwrapped, "parser", None)
    finally:
        probe.close()
    call_format = served_parser if served_parser is not None else get_parser(parser or "hermes")
    methods: dict[str, Any] = {}
    for schema in info["tools"]:
        name = schema["function"]["name"]
        if name in _RESERVED or name.startswith("_"):
            raise ValueError(
                f"{env_id}'s tool {name!r} clashes with TRL's environment protocol "
                f"(reserved: {', '.join(_RESERVED)}, and private names)"
            )
        methods[name] = _tool_method(schema)

    def __init__(self: Any) -> None:
        self.env = make_env()
        self.reward = 0.0
        self.done = False
        self.info: dict[str, Any] = {}

    def reset(self: Any, **columns: Any) -> str:
        seed, task_id = columns.get("seed"), columns.get("task_id")
        options = {"task_id": str(task_id)} if task_id is not None else None
        observation, self.info = self.env.reset(
            seed=None if seed is None else int(seed), options=options
        )
        self.reward, self.done = 0.0, False
        return observation

    def _call(self: Any, name: str, arguments: dict[str, Any]) -> str:
        if self.done:
            # TRL feeds an exception's message back to the model as the tool's answer.
            raise ValueError("The episode is over; answer without calling tools.")
        action = call_format.format_calls([ToolCall(name, arguments)])
        return self._act(action)

    def _act(self: Any, action: str) -> str:
        observation, reward, terminated, truncated, self.info = self.env.step(action)
        self.reward += float(reward)
        self.done = bool(terminated or truncated)
        return observation

    def finish(self: Any, reply: str) -> float:
        if not self.done:
            self._act(call_format.format_answer(reply))
        return self.reward

    namespace = {
        "__init__": __init__,
        "__doc__": f"TRL environment: episodes of {env_id} "
        f"({'on ' + url if url else 'in-process'}); tools: {', '.join(methods)}.",
        "reset": reset,
        "_call": _call,
        "_act": _act,
        "_finish": finish,
        **methods,
    }
    class_name = env_id.rsplit("/", 1)[-1].replace("-", "_") + "_TRLEnvironment"
    return type(class_name, (), namespace)


def agentgym_reward(
    completions: Sequence[Any], environments: Sequence[Any], **_: Any
) -> list[float]:
    """TRL reward function: each rollout's final reply ends its episode; the env's reward.

    ``completions`` are TRL's (a list of messages per rollout in conversational mode, or
    text); the last assistant message's content is sent as the agent's final answer.
    """
    rewards = []
    for completion, environment in zip(completions, environments, strict=True):
        if isinstance(completion, str):
            reply = completion
        else:
            replies = [m.get("content") or "" for m in completion if m.get("role") == "assistant"]
            reply = replies[-1] if replies else ""
        rewards.append(environment._finish(reply if isinstance(reply, str) else str(reply)))
    return rewards
