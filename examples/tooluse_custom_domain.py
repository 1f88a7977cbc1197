"""A custom domain for ``agentgym/ToolUse-v0``: a smart home, plugged into the same machinery.

The built-in domains of ToolUse-v0 (file system, trading, messaging, travel, vehicle) are
ordinary plug-ins; yours gets the same task generator, BFCL-style checker, actionable
augmentation, reward modes, curriculum and expert. Four steps:

1. a backend class: state loaded from a configuration in ``load``, ``@tool`` methods that
   act on it, vague failures raised with ``self.fail(kind, message)`` before any change;
2. ``register_backend`` (tool names must not clash with other domains' tools);
3. for generated tasks: ``register_scenarios`` (random initial configurations) and
   ``@intent`` builders (a request, its ground-truth calls run on the live scene, the
   reply, and optionally a miss_param variant); or hand-write ``ToolTask`` records and pass
   them as ``tasks=``;
4. optionally ``register_hints`` for the augmentation table.

Run it with ``python examples/tooluse_custom_domain.py``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

import agentgym
from agentgym import ToolCall, ToolTask, tool
from agentgym.envs.tooluse.augment import register_hints
from agentgym.envs.tooluse.backends import Backend, register_backend
from agentgym.envs.tooluse.scenarios import register_scenarios
from agentgym.envs.tooluse.scenarios.common import Intent, Scene, choice, intent

ENV_ID = "examples/SmartHome-v0"
ROOMS = ("kitchen", "living_room", "bedroom", "office", "hallway")


# ------------------------------------------------------------------------ 1. the backend --


class SmartHome(Backend):
    """Lights per room, a thermostat and the front-door lock."""

    domain = "smarthome"

    def load(self, config: dict[str, Any]) -> None:
        self.lights: dict[str, bool] = dict(config.get("lights", dict.fromkeys(ROOMS, False)))
        self.thermostat: float = float(config.get("thermostat", 20.0))
        self.front_door_locked: bool = bool(config.get("front_door_locked", False))

    @tool
    def get_home_status(self) -> dict[str, Any]:
        """Which lights are on, the thermostat setting and the front-door lock."""
        return {
            "lights_on": sorted(room for room, on in self.lights.items() if on),
            "thermostat": self.thermostat,
            "front_door": "locked" if self.front_door_locked else "unlocked",
        }

    @tool
    def switch_light(self, room: str, on: bool) -> dict[str, Any]:
        """Switch the light of one room on or off.

        Args:
            room: The room, e.g. 'kitchen'.
            on: True to switch on, False to switch off.
        """
        if room not in self.lights:
            raise self.fail("unknown_room", "switch_light: Device not found")
        self.lights[room] = on
        return {"room": room, "light": "on" if on else "off"}

    @tool
    def set_thermostat(self, celsius: float) -> dict[str, float]:
        """Set the thermostat.

        Args:
            celsius: Target temperature, 10 to 28 degrees Celsius.
        """
        if not 10 <= celsius <= 28:
            raise self.fail("out_of_range", "set_thermostat: Invalid value")
        self.thermostat = round(float(celsius), 1)
        return {"thermostat": self.thermostat}

    @tool
    def lock_front_door(self) -> dict[str, str]:
        """Lock the front door."""
        self.front_door_locked = True
        return {"front_door": "locked"}


register_backend(SmartHome, override=True)
register_hints(
    "smarthome",
    {
        ("switch_light", "unknown_room"): (
            "Rooms are named in lower case with underscores; get_home_status lists the "
            "lights that are on, and every room has a light."
        ),
        ("*", "out_of_range"): "The value is outside the range in the tool's description.",
    },
)


# -------------------------------------------------------------------- 2. generated tasks --


def random_config(rng: np.random.Generator, long_context: bool) -> dict[str, Any]:
    """A home in a random condition."""
    return {
        "lights": {room: bool(rng.random() < 0.5) for room in ROOMS},
        "thermostat": float(int(rng.integers(16, 25))),
        "front_door_locked": bool(rng.random() < 0.5),
    }


register_scenarios("smarthome", random_config)


@intent("smarthome", level=1, missing=True)
def light_switch(rng: np.random.Generator, scene: Scene) -> Intent | None:
    room = choice(rng, ROOMS)
    on = not scene["smarthome"].lights[room]
    scene.run("switch_light", room=room, on=on)
    state = "on" if on else "off"
    label = room.replace("_", " ")
    return Intent(
        f"Turn the {label} light {state}.",
        answer=f"The {label} light is {state}.",
        vague=f"Turn one of the lights {state}.",
        ask="Which room?",
        supply=f"The {label}.",
    )


@intent("smarthome", level=1, missing=True)
def thermostat(rng: np.random.Generator, scene: Scene) -> Intent | None:
    celsius = float(int(rng.integers(17, 25)))
    scene.run("set_thermostat", celsius=celsius)
    return Intent(
        f"Set the thermostat to {celsius:g} degrees.",
        answer=f"The thermostat is at {celsius:g} degrees.",
        vague="Change the thermostat setting, please.",
        ask="Which temperature should I set?",
        supply=f"{celsius:g} degrees.",
    )


@intent("smarthome", level=2)
def good_night(rng: np.random.Generator, scene: Scene) -> Intent | None:
    home = scene["smarthome"]
    lit = sorted(room for room, on in home.lights.items() if on)
    scene.run("get_home_status")
    for room in lit:
        scene.run("switch_light", room=room, on=False)
    scene.run("lock_front_door")
    return Intent(
        "I'm going to bed: check which lights are on, switch them all off and lock the front door.",
        answer="All lights are off and the front door is locked. Good night!",
    )


# ------------------------------------------------------------------ 3. hand-written tasks --

LEAVING_HOME = ToolTask(
    id="leaving-home",
    turns=(
        "I'm leaving: switch off the office light and lock the front door.",
        "Now start the car.",
    ),
    initial_state={
        "smarthome": {"lights": {**dict.fromkeys(ROOMS, False), "office": True}},
        "vehicle": {
            "doors": {
                "driver": "unlocked",
                "passenger": "locked",
                "rear_left": "locked",
                "rear_right": "locked",
            }
        },
    },
    ground_truth=(
        (ToolCall("switch_light", {"room": "office", "on": False}), ToolCall("lock_front_door")),
        (
            ToolCall("lock_doors", {"doors": ["driver"]}),
            ToolCall("press_brake_pedal"),
            ToolCall("start_engine"),
        ),
    ),
    answers=("The office light is off and the door is locked.", "The engine is running."),
    metadata={"category": "base", "difficulty": "easy", "domains": ("smarthome", "vehicle")},
)

agentgym.register_env(
    ENV_ID,
    "agentgym.envs.tooluse:ToolUseEnv",
    description="Smart-home tool use (a custom ToolUse-v0 domain).",
    max_episode_steps=40,
    kwargs={"domains": ["smarthome"], "categories": ["base", "miss_param", "miss_func"]},
    override=True,
)


def play(env: gym.Env, expert: Any, **options: Any) -> tuple[float, str]:
    """One expert episode; returns the reward and the final observation."""
    observation, info = env.reset(options=options or None)
    expert.reset(env, observation, info)
    done, reward = False, 0.0
    while not done:
        observation, reward, terminated, truncated, info = env.step(expert.act(observation, info))
        done = terminated or truncated
    return reward, observation


def main() -> None:
    env = gym.make(ENV_ID, augment=True)
    task = env.unwrapped.tasks[1]
    print(f"A generated task ({task.metadata['category']}):")
    for turn, calls in zip(task.turns, task.ground_truth, strict=True):
        print(f"  user: {turn}\n        ground truth: {[c.name for c in calls]}")

    expert = env.unwrapped.make_expert()
    rewards = [play(env, expert, task_index=i)[0] for i in range(30)]
    print(f"Expert on 30 generated tasks: mean reward {np.mean(rewards):.2f}")
    faulty = env.unwrapped.make_expert(error_rate=0.5, seed=0)
    rewards = [play(env, faulty, task_index=i)[0] for i in range(30)]
    print(f"Expert with error_rate=0.5: mean reward {np.mean(rewards):.2f}")

    env.reset(options={"task_index": 0})
    observation = env.step(
        '<tool_call>{"name": "switch_light", "arguments": {"room": "Kitchen", "on": true}}'
        "</tool_call>"
    )[0]
    print(f"An augmented error:\n  {observation}")

    custom = gym.make(
        "agentgym/ToolUse-v0",
        domains=["smarthome", "vehicle"],
        tasks=[LEAVING_HOME],
        reward_mode="progress",
    )
    reward, final = play(custom, custom.unwrapped.make_expert())
    print(f"Hand-written task with the expert: reward {reward:g}")
    reward, final = play(custom, custom.unwrapped.make_expert(error_rate=1.0, seed=3))
    print(f"... with one injected error: reward {reward:g}\n  {final.splitlines()[-1]}")


if __name__ == "__main__":
    main()
