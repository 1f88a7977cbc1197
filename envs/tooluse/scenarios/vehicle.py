"""Vehicle-control tasks: a car's initial condition and user requests."""

from __future__ import annotations

from typing import Any

import numpy as np

from agentgym.envs.tooluse.backends.vehicle import DOORS, HEALTHY_PSI, TIRES
from agentgym.envs.tooluse.scenarios.common import Intent, Scene, choice, intent

DOMAIN = "vehicle"


def random_config(rng: np.random.Generator, long_context: bool) -> dict[str, Any]:
    """A parked car in a random condition (the long-context noise is in the outputs)."""
    capacity = float(int(rng.integers(40, 71)))
    return {
        "engine_on": bool(rng.random() < 0.2),
        "brake_pressed": bool(rng.random() < 0.2),
        "parking_brake": bool(rng.random() < 0.7),
        "doors": {door: choice(rng, ("locked", "unlocked")) for door in DOORS},
        "fuel_liters": float(int(rng.integers(3, int(capacity * 0.8)))),
        "tank_capacity": capacity,
        "km_per_liter": round(float(rng.uniform(9, 20)), 1),
        "tire_pressure": {tire: float(int(rng.integers(26, 36))) for tire in TIRES},
        "headlights": choice(rng, ("on", "off", "auto")),
        "climate": {"temperature": float(int(rng.integers(16, 29))), "fan_speed": 2},
        "cruise_speed": None,
    }


def _car(scene: Scene) -> Any:
    return scene[DOMAIN]


def _start_sequence(scene: Scene) -> None:
    """The calls that start the engine from the current condition."""
    car = _car(scene)
    unlocked = [door for door in DOORS if car.doors[door] != "locked"]
    if unlocked:
        scene.run("lock_doors", doors=list(DOORS))
    if not car.brake_pressed:
        scene.run("press_brake_pedal")
    scene.run("start_engine")


@intent(DOMAIN, level=3)
def start_car(rng: np.random.Generator, scene: Scene) -> Intent | None:
    if _car(scene).engine_on:
        return None
    _start_sequence(scene)
    return Intent(
        choice(rng, ("Start the engine, please.", "Get the car started for me.")),
        answer="The engine is running.",
    )


@intent(DOMAIN, level=1)
def stop_car(rng: np.random.Generator, scene: Scene) -> Intent | None:
    if not _car(scene).engine_on:
        return None
    scene.run("stop_engine")
    return Intent("Turn the engine off.", answer="The engine is off.")


@intent(DOMAIN, level=1)
def lock_all(rng: np.random.Generator, scene: Scene) -> Intent | None:
    scene.run("lock_doors", doors=list(DOORS))
    return Intent("Lock all four doors.", answer="All doors are locked.")


@intent(DOMAIN, level=1, missing=True)
def unlock_one(rng: np.random.Generator, scene: Scene) -> Intent | None:
    door = choice(rng, DOORS)
    label = door.replace("_", " ")
    scene.run("unlock_doors", doors=[door])
    return Intent(
        f"Unlock only the {label} door.",
        answer=f"The {label} door is unlocked.",
        vague="Unlock one of the doors for me.",
        ask="Which door should I unlock?",
        supply=f"The {label} door.",
    )


@intent(DOMAIN, level=1)
def headlights(rng: np.random.Generator, scene: Scene) -> Intent | None:
    options = [m for m in ("on", "off", "auto") if m != _car(scene).headlights]
    mode = choice(rng, options)
    scene.run("set_headlights", mode=mode)
    text = {
        "on": "Turn the headlights on.",
        "off": "Switch the headlights off.",
        "auto": "Set the headlights to automatic.",
    }[mode]
    return Intent(text, answer=f"Headlights: {mode}.")


@intent(DOMAIN, level=1, missing=True)
def climate(rng: np.random.Generator, scene: Scene) -> Intent | None:
    temperature = float(int(rng.integers(17, 29)))
    fan = int(rng.integers(0, 6))
    scene.run("set_climate", temperature=temperature, fan_speed=fan)
    return Intent(
        f"Set the cabin to {temperature:g} degrees Celsius with fan speed {fan}.",
        answer=f"Climate set to {temperature:g}°C, fan {fan}.",
        vague=f"Change the cabin temperature, with fan speed {fan}.",
        ask="What temperature would you like?",
        supply=f"{temperature:g} degrees Celsius.",
    )


@intent(DOMAIN, level=2, missing=True)
def refuel(rng: np.random.Generator, scene: Scene) -> Intent | None:
    car = _car(scene)
    room = int(car.tank_capacity - car.fuel_liters)
    if room < 2:
        return None
    liters = float(int(rng.integers(1, room)))
    if car.engine_on:
        scene.run("stop_engine")
    total = scene.run("refuel", liters=liters)["fuel_liters"]
    return Intent(
        f"Put {liters:g} liters of fuel in the tank.",
        answer=f"Refuelled; the tank now holds {total:g} liters.",
        vague="Put some fuel in the tank.",
        ask="How many liters should I add?",
        supply=f"{liters:g} liters.",
    )


@intent(DOMAIN, level=1)
def driving_range(rng: np.random.Generator, scene: Scene) -> Intent | None:
    distance = scene.run("estimate_range")["range_km"]
    return Intent("How far can I drive on the fuel I have?", answer=f"About {distance:g} km.")


@intent(DOMAIN, level=2)
def fix_tires(rng: np.random.Generator, scene: Scene) -> Intent | None:
    car = _car(scene)
    target = float(int(rng.integers(32, 37)))
    low = [tire for tire in TIRES if car.tire_pressure[tire] < HEALTHY_PSI]
    scene.run("check_tire_pressure")
    for tire in low:
        scene.run("inflate_tire", tire=tire, pressure=target)
    return Intent(
        f"Check the tire pressure and inflate every tire below {HEALTHY_PSI:g} psi to "
        f"{target:g} psi.",
        answer=f"Inflated {', '.join(low)} to {target:g} psi." if low else "All tires are fine.",
    )


@intent(DOMAIN, level=2, missing=True)
def cruise(rng: np.random.Generator, scene: Scene) -> Intent | None:
    car = _car(scene)
    if not car.engine_on:
        return None
    speed = int(rng.integers(6, 25)) * 5
    if car.parking_brake:
        scene.run("set_parking_brake", engaged=False)
    scene.run("set_cruise_control", speed_kmh=speed)
    return Intent(
        f"Release the parking brake if needed and set cruise control to {speed} km/h.",
        answer=f"Cruise control holds {speed} km/h.",
        vague="Release the parking brake if needed and turn on cruise control.",
        ask="At what speed should cruise control be set?",
        supply=f"{speed} km/h.",
    )


@intent(DOMAIN, level=1)
def status_report(rng: np.random.Generator, scene: Scene) -> Intent | None:
    status = scene.run("get_vehicle_status")
    return Intent(
        "Give me a quick status report of the car.",
        answer=f"Engine {status['engine']}, fuel {status['fuel_liters']:g} l.",
    )


@intent(DOMAIN, level=1)
def parking_brake(rng: np.random.Generator, scene: Scene) -> Intent | None:
    engaged = not _car(scene).parking_brake
    scene.run("set_parking_brake", engaged=engaged)
    text = "Engage the parking brake." if engaged else "Release the parking brake."
    return Intent(text, answer="Done: parking brake " + ("engaged." if engaged else "released."))
