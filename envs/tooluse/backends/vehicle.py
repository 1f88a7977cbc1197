"""A car's control unit: engine, brakes, doors, fuel, tires, lights, climate, cruise control.

State: ``engine_on``, ``brake_pressed``, ``parking_brake``, ``doors`` (door -> "locked" or
"unlocked"), ``fuel_liters``, ``tank_capacity``, ``km_per_liter``, ``tire_pressure`` (tire
-> psi), ``headlights``, ``climate`` ({"temperature", "fan_speed"}) and ``cruise_speed``.
The engine starts only with the brake pedal pressed and every door locked.
"""

from __future__ import annotations

from typing import Any, Literal

from agentgym.core.tools import tool
from agentgym.envs.tooluse.backends.base import Backend

__all__ = ["DOORS", "TIRES", "VehicleControl"]

Door = Literal["driver", "passenger", "rear_left", "rear_right"]
Tire = Literal["front_left", "front_right", "rear_left", "rear_right"]
DOORS = ("driver", "passenger", "rear_left", "rear_right")
TIRES = ("front_left", "front_right", "rear_left", "rear_right")
HEALTHY_PSI = 30.0


class VehicleControl(Backend):
    """Operate a car: start and stop it, lock doors, refuel, tires, lights, climate."""

    domain = "vehicle"

    def load(self, config: dict[str, Any]) -> None:
        self.engine_on: bool = bool(config.get("engine_on", False))
        self.brake_pressed: bool = bool(config.get("brake_pressed", False))
        self.parking_brake: bool = bool(config.get("parking_brake", True))
        self.doors: dict[str, str] = dict(config.get("doors", dict.fromkeys(DOORS, "unlocked")))
        self.fuel_liters: float = float(config.get("fuel_liters", 20.0))
        self.tank_capacity: float = float(config.get("tank_capacity", 50.0))
        self.km_per_liter: float = float(config.get("km_per_liter", 14.0))
        self.tire_pressure: dict[str, float] = dict(
            config.get("tire_pressure", dict.fromkeys(TIRES, 32.0))
        )
        self.headlights: str = str(config.get("headlights", "off"))
        self.climate: dict[str, Any] = dict(
            config.get("climate", {"temperature": 21.0, "fan_speed": 2})
        )
        self.cruise_speed: int | None = config.get("cruise_speed")

    @tool
    def get_vehicle_status(self) -> dict[str, Any]:
        """Engine, brakes, doors, fuel, lights and climate at a glance."""
        return {
            "engine": "running" if self.engine_on else "stopped",
            "brake_pedal": "pressed" if self.brake_pressed else "released",
            "parking_brake": "engaged" if self.parking_brake else "released",
            "doors": dict(self.doors),
            "fuel_liters": self.fuel_liters,
            "tank_capacity": self.tank_capacity,
            "headlights": self.headlights,
            "climate": dict(self.climate),
            "cruise_speed": self.cruise_speed,
        }

    @tool
    def press_brake_pedal(self) -> dict[str, str]:
        """Press and hold the brake pedal."""
        self.brake_pressed = True
        return {"brake_pedal": "pressed"}

    @tool
    def release_brake_pedal(self) -> dict[str, str]:
        """Release the brake pedal."""
        self.brake_pressed = False
        return {"brake_pedal": "released"}

    @tool
    def lock_doors(self, doors: list[Door]) -> dict[str, Any]:
        """Lock some doors.

        Args:
            doors: The doors to lock.
        """
        if not doors:
            raise self.fail("no_doors", "lock_doors: Invalid request")
        for door in doors:
            self.doors[door] = "locked"
        return {"doors": dict(self.doors)}

    @tool
    def unlock_doors(self, doors: list[Door]) -> dict[str, Any]:
        """Unlock some doors.

        Args:
            doors: The doors to unlock.
        """
        if not doors:
            raise self.fail("no_doors", "unlock_doors: Invalid request")
        for door in doors:
            self.doors[door] = "unlocked"
        return {"doors": dict(self.doors)}

    @tool
    def start_engine(self) -> dict[str, str]:
        """Start the engine (the brake pedal must be pressed and every door locked)."""
        if self.engine_on:
            raise self.fail("already_running", "start_engine: Engine start failed")
        if not self.brake_pressed:
            raise self.fail("brake_not_pressed", "start_engine: Engine start failed")
        if any(state != "locked" for state in self.doors.values()):
            raise self.fail("doors_unlocked", "start_engine: Engine start failed")
        if self.fuel_liters <= 0:
            raise self.fail("no_fuel", "start_engine: Engine start failed")
        self.engine_on = True
        return {"engine": "running"}

    @tool
    def stop_engine(self) -> dict[str, str]:
        """Stop the engine (this also turns cruise control off)."""
        if not self.engine_on:
            raise self.fail("engine_off", "stop_engine: Operation not permitted")
        self.engine_on = False
        self.cruise_speed = None
        return {"engine": "stopped"}

    @tool
    def refuel(self, liters: float) -> dict[str, float]:
        """Add fuel to the tank (the engine must be off).

        Args:
            liters: How much fuel to add, in liters.
        """
        if self.engine_on:
            raise self.fail("engine_running", "refuel: Operation not permitted")
        if liters <= 0 or self.fuel_liters + liters > self.tank_capacity:
            raise self.fail("overfill", "refuel: Invalid amount")
        self.fuel_liters = round(self.fuel_liters + liters, 2)
        return {"fuel_liters": self.fuel_liters}

    @tool
    def estimate_range(self) -> dict[str, float]:
        """How far the car can drive on the fuel in the tank, in km."""
        return {"range_km": round(self.fuel_liters * self.km_per_liter, 1)}

    @tool
    def check_tire_pressure(self) -> dict[str, Any]:
        """The pressure of each tire in psi, and whether all are healthy (at least 30 psi)."""
        healthy = all(value >= HEALTHY_PSI for value in self.tire_pressure.values())
        return {"tire_pressure": dict(self.tire_pressure), "healthy": healthy}

    @tool
    def inflate_tire(self, tire: Tire, pressure: float) -> dict[str, float]:
        """Set a tire's pressure.

        Args:
            tire: Which tire.
            pressure: The target pressure in psi (25 to 45).
        """
        if not 25 <= pressure <= 45:
            raise self.fail("out_of_range", "inflate_tire: Invalid pressure")
        self.tire_pressure[tire] = round(float(pressure), 1)
        return {tire: self.tire_pressure[tire]}

    @tool
    def set_headlights(self, mode: Literal["on", "off", "auto"]) -> dict[str, str]:
        """Switch the headlights.

        Args:
            mode: 'on', 'off' or 'auto'.
        """
        self.headlights = mode
        return {"headlights": mode}

    @tool
    def set_climate(self, temperature: float, fan_speed: int = 2) -> dict[str, Any]:
        """Set the cabin temperature and fan speed.

        Args:
            temperature: Target temperature in degrees Celsius (16 to 30).
            fan_speed: Fan speed from 0 (off) to 5.
        """
        if not 16 <= temperature <= 30 or not 0 <= fan_speed <= 5:
            raise self.fail("out_of_range", "set_climate: Invalid setting")
        self.climate = {"temperature": round(float(temperature), 1), "fan_speed": fan_speed}
        return dict(self.climate)

    @tool
    def set_parking_brake(self, engaged: bool) -> dict[str, str]:
        """Engage or release the parking brake.

        Args:
            engaged: True to engage, False to release.
        """
        self.parking_brake = engaged
        return {"parking_brake": "engaged" if engaged else "released"}

    @tool
    def set_cruise_control(self, speed_kmh: int) -> dict[str, int]:
        """Turn cruise control on at a speed (the engine must run, parking brake released).

        Args:
            speed_kmh: The speed to hold, 30 to 150 km/h.
        """
        if not self.engine_on:
            raise self.fail("engine_off", "set_cruise_control: Operation not permitted")
        if self.parking_brake:
            raise self.fail("parking_brake_on", "set_cruise_control: Operation not permitted")
        if not 30 <= speed_kmh <= 150:
            raise self.fail("out_of_range", "set_cruise_control: Invalid speed")
        self.cruise_speed = speed_kmh
        return {"cruise_speed": speed_kmh}
