"""A custom tool-use environment: a to-do list assistant, built with agentgym's public API.

This is how you turn your own backend into a Gymnasium environment for LLM agents:

1. write the backend as a class whose methods are decorated with :func:`agentgym.tool`
   (type hints and the docstring's ``Args:`` become the JSON schema the agent sees);
2. keep per-episode data in a parameter typed :class:`agentgym.State`: the environment
   injects a fresh deep copy of the task's ``initial_state`` every episode and hides the
   parameter from the agent (the instance itself only holds settings, so episodes never
   leak into each other);
3. describe tasks as :class:`agentgym.ToolTask` records (initial state, user turns, the
   ground-truth calls of each turn and the expected replies);
4. write a checker that compares the final state with the state the ground truth produces;
5. register it under your own id with :func:`agentgym.register_tool_env`.

Run it with ``python examples/custom_tools.py``: it makes the environment with
``gymnasium.make`` and plays every task with the environment's scripted expert, once
without and once with injected mistakes.
"""

from __future__ import annotations

import copy
import enum
from typing import Any, Literal

import gymnasium as gym

import agentgym
from agentgym import Evaluation, State, ToolCall, ToolEpisode, ToolError, ToolSet, ToolTask, tool

ENV_ID = "examples/TodoList-v0"


class Priority(enum.Enum):
    """How urgent an item is."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class TodoBackend:
    """To-do list tools. The items live in the episode's :class:`State` (``todo``).

    The state holds ``{"items": [{"id", "title", "priority", "done"}, ...], "next_id": int}``.

    Args:
        max_open_items: How many unfinished items the list may hold.
    """

    def __init__(self, max_open_items: int = 10) -> None:
        self.max_open_items = max_open_items

    @staticmethod
    def _find(todo: State, item_id: int) -> dict[str, Any]:
        for item in todo["items"]:
            if item["id"] == item_id:
                return item
        known = ", ".join(str(item["id"]) for item in todo["items"]) or "none"
        raise ToolError(f"There is no item with id {item_id}. Existing ids: {known}.")

    @tool
    def list_items(
        self, todo: State, status: Literal["open", "done", "all"] = "open"
    ) -> list[dict[str, Any]]:
        """List the to-do items.

        Args:
            status: Which items to list: unfinished ("open"), finished ("done") or all.
        """
        return [
            item for item in todo["items"] if status == "all" or item["done"] == (status == "done")
        ]

    @tool
    def add_item(self, todo: State, title: str, priority: Priority = Priority.NORMAL) -> dict:
        """Add an item to the list and return it.

        Args:
            title: What has to be done.
            priority: How urgent it is.
        """
        title = title.strip()
        if not title:
            raise ToolError("The title must not be empty.")
        open_items = [item for item in todo["items"] if not item["done"]]
        if any(item["title"].casefold() == title.casefold() for item in open_items):
            raise ToolError(f"There is already an open item titled {title!r}.")
        if len(open_items) >= self.max_open_items:
            raise ToolError(
                f"The list already has {self.max_open_items} open items; finish or delete one."
            )
        item = {"id": todo["next_id"], "title": title, "priority": priority.value, "done": False}
        todo["items"].append(item)
        todo["next_id"] += 1
        return item

    @tool
    def complete_item(self, todo: State, item_id: int) -> str:
        """Mark an item as done.

        Args:
            item_id: The id of the item, as shown by list_items.
        """
        item = self._find(todo, item_id)
        if item["done"]:
            raise ToolError(f"Item {item_id} ({item['title']!r}) is already done.")
        item["done"] = True
        return f"Marked {item['title']!r} as done."

    @tool
    def set_priority(self, todo: State, item_id: int, priority: Priority) -> str:
        """Change the priority of an item.

        Args:
            item_id: The id of the item.
            priority: The new priority.
        """
        item = self._find(todo, item_id)
        item["priority"] = priority.value
        return f"{item['title']!r} now has {priority.value} priority."

    @tool
    def delete_item(self, todo: State, item_id: int) -> str:
        """Remove an item from the list.

        Args:
            item_id: The id of the item.
        """
        item = self._find(todo, item_id)
        todo["items"].remove(item)
        return f"Deleted {item['title']!r}."


TOOLS = ToolSet.from_object(TodoBackend(max_open_items=10))


def _item(item_id: int, title: str, priority: str = "normal", done: bool = False) -> dict:
    return {"id": item_id, "title": title, "priority": priority, "done": done}


TASKS = [
    ToolTask(
        id="groceries",
        initial_state={
            "items": [_item(1, "Buy milk"), _item(2, "Call mom", "high")],
            "next_id": 3,
        },
        turns=(
            "I bought the milk, please tick it off.",
            "Thanks. Also add 'Buy eggs' with high priority.",
        ),
        ground_truth=(
            (ToolCall("list_items", {}), ToolCall("complete_item", {"item_id": 1})),
            (ToolCall("add_item", {"title": "Buy eggs", "priority": "high"}),),
        ),
        answers=("Done: 'Buy milk' is ticked off.", "Added 'Buy eggs' with high priority."),
    ),
    ToolTask(
        id="cleanup",
        initial_state={
            "items": [
                _item(1, "Write report"),
                _item(2, "Water plants", "low", done=True),
                _item(3, "Renew passport", done=True),
                _item(4, "Pay rent", "high"),
            ],
            "next_id": 5,
        },
        turns=("Delete everything I have already finished, and make 'Write report' urgent.",),
        ground_truth=(
            (
                ToolCall("list_items", {"status": "done"}),
                ToolCall("delete_item", {"item_id": 2}),
                ToolCall("delete_item", {"item_id": 3}),
                ToolCall("set_priority", {"item_id": 1, "priority": "high"}),
            ),
        ),
        answers=("I deleted the two finished items and made 'Write report' high priority.",),
    ),
    ToolTask(
        id="new-project",
        initial_state={"items": [], "next_id": 1},
        turns=(
            "Start my list: 'Draft proposal', and 'Book meeting room' with low priority.",
            "Actually the meeting room is booked already, mark it as done.",
            "What is still open?",
        ),
        ground_truth=(
            (
                ToolCall("add_item", {"title": "Draft proposal"}),
                ToolCall("add_item", {"title": "Book meeting room", "priority": "low"}),
            ),
            (ToolCall("complete_item", {"item_id": 2}),),
            (ToolCall("list_items", {}),),
        ),
        answers=(
            "Your list has 'Draft proposal' and 'Book meeting room' (low priority).",
            "Marked 'Book meeting room' as done.",
            "Only 'Draft proposal' is still open.",
        ),
    ),
]


def expected_state(task: ToolTask) -> State:
    """The state the task's ground-truth calls produce from its initial state."""
    state = State(copy.deepcopy(dict(task.initial_state)))
    for calls in task.ground_truth or ():
        for call in calls:
            result = TOOLS.call(call, state=state)
            assert result.ok, f"ground truth of {task.id!r} fails: {result.content}"
    return state


def check_todo_state(episode: ToolEpisode) -> Evaluation:
    """Success when the final list equals the list the ground truth produces.

    Items are compared by title (ids are an implementation detail the user never sees).
    """
    expected = {item["title"]: item for item in expected_state(episode.task)["items"]}
    actual = {item["title"]: item for item in episode.state["items"]}
    problems = [f"{title!r} is missing" for title in expected if title not in actual]
    problems += [
        f"{title!r} should not be on the list" for title in actual if title not in expected
    ]
    for title in expected.keys() & actual.keys():
        for key in ("priority", "done"):
            if expected[title][key] != actual[title][key]:
                problems.append(
                    f"{title!r} has {key}={actual[title][key]!r}, expected {expected[title][key]!r}"
                )
    success = not problems
    return Evaluation(
        success=success,
        reward=float(success),
        verdicts={
            "state_matches": success,
            "tool_errors": sum(not record.result.ok for record in episode.calls),
        },
        feedback="The to-do list is exactly right."
        if success
        else "; ".join(sorted(problems)) + ".",
    )


agentgym.register_tool_env(
    ENV_ID,
    tools=TOOLS,
    tasks=TASKS,
    checker=check_todo_state,
    description="Manage a to-do list over several turns (custom tools example).",
    max_episode_steps=30,
    system_prompt="You manage the user's to-do list with the tools. Look up ids before using them.",
    override=True,
)


def run_expert(env: gym.Env, **expert_options: Any) -> list[float]:
    """Play every task once with the environment's scripted expert; return the rewards."""
    expert = env.unwrapped.make_expert(**expert_options)
    rewards = []
    for index in range(len(env.unwrapped.tasks)):
        observation, info = env.reset(options={"task_index": index})
        expert.reset(env, observation, info)
        reward, done = 0.0, False
        while not done:
            observation, reward, terminated, truncated, info = env.step(
                expert.act(observation, info)
            )
            done = terminated or truncated
        rewards.append(reward)
        print(f"  {info['task_id']:<12} reward={reward:g}  injected={expert.injected}")
        print(f"  {'':<12} {observation.splitlines()[-1]}")
    return rewards


if __name__ == "__main__":
    env = gym.make(ENV_ID)
    print("Expert:")
    print("  rewards:", run_expert(env))
    print("Expert with one injected mistake per episode:")
    print("  rewards:", run_expert(env, error_rate=1.0, seed=1))
