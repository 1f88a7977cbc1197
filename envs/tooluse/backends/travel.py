"""A travel agency: airports, fares, payment cards, bookings, a budget and insurance.

State: ``airports`` (code -> city), ``fares`` (economy fares by route ``"AAA-BBB"``, valid
both ways), ``cards`` (card id -> {"holder", "balance"}), ``bookings`` (booking id ->
details), ``insurance`` (booking id -> plan), ``budget`` (largest allowed fare, or
``None``) and ``next_booking_id``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from agentgym.core.tools import tool
from agentgym.envs.tooluse.backends.base import Backend

__all__ = ["TravelAgency"]

CLASS_FACTORS = {"economy": 1.0, "business": 2.5, "first": 4.0}
INSURANCE_PRICES = {"basic": 30.0, "premium": 80.0}
_DATE = re.compile(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])")


class TravelAgency(Backend):
    """Look up airports and fares, book and cancel flights, buy travel insurance."""

    domain = "travel"

    def load(self, config: dict[str, Any]) -> None:
        self.airports: dict[str, str] = dict(config.get("airports", {}))
        self.fares: dict[str, float] = dict(config.get("fares", {}))
        self.cards: dict[str, dict[str, Any]] = dict(config.get("cards", {}))
        self.bookings: dict[str, dict[str, Any]] = dict(config.get("bookings", {}))
        self.insurance: dict[str, str] = dict(config.get("insurance", {}))
        self.budget: float | None = config.get("budget")
        self.next_booking_id: int = int(config.get("next_booking_id", 1))

    # ---------------------------------------------------------------- helpers --

    def _fare(self, tool_name: str, origin: str, destination: str, travel_class: str) -> float:
        if origin not in self.airports or destination not in self.airports:
            raise self.fail("invalid_airport", f"{tool_name}: No available route")
        base = self.fares.get(f"{origin}-{destination}", self.fares.get(f"{destination}-{origin}"))
        if base is None or origin == destination:
            raise self.fail("no_route", f"{tool_name}: No available route")
        return round(base * CLASS_FACTORS[travel_class], 2)

    def _card(self, tool_name: str, card_id: str) -> dict[str, Any]:
        card = self.cards.get(card_id)
        if card is None:
            raise self.fail("unknown_card", f"{tool_name}: Invalid card")
        return card

    # ---------------------------------------------------------------- tools --

    @tool
    def list_airports(self) -> dict[str, dict[str, str]]:
        """Every airport the agency serves, as code -> city."""
        return {"airports": dict(self.airports)}

    @tool
    def find_nearest_airport(self, city: str) -> dict[str, str]:
        """The airport code of a city.

        Args:
            city: The city's name, e.g. 'Chicago'.
        """
        for code, name in self.airports.items():
            if name.casefold() == city.strip().casefold():
                return {"airport_code": code}
        raise self.fail("unknown_city", "find_nearest_airport: No airport found")

    @tool
    def get_flight_price(
        self,
        origin: str,
        destination: str,
        travel_class: Literal["economy", "business", "first"] = "economy",
    ) -> dict[str, Any]:
        """The fare of a flight between two airports.

        Args:
            origin: Airport code of departure, e.g. 'SFO'.
            destination: Airport code of arrival.
            travel_class: Cabin class.
        """
        price = self._fare("get_flight_price", origin, destination, travel_class)
        return {"origin": origin, "destination": destination, "class": travel_class, "price": price}

    @tool
    def list_cards(self) -> dict[str, dict[str, Any]]:
        """The user's payment cards with their available balance."""
        return {"cards": {card_id: dict(card) for card_id, card in self.cards.items()}}

    @tool
    def set_budget(self, amount: float) -> dict[str, float]:
        """Set the largest fare that may be booked.

        Args:
            amount: The budget in dollars (positive).
        """
        if amount <= 0:
            raise self.fail("not_positive", "set_budget: Invalid amount")
        self.budget = round(float(amount), 2)
        return {"budget": self.budget}

    @tool
    def book_flight(
        self,
        card_id: str,
        origin: str,
        destination: str,
        date: str,
        travel_class: Literal["economy", "business", "first"] = "economy",
    ) -> dict[str, Any]:
        """Book a flight and pay for it with a card.

        Args:
            card_id: The payment card's id.
            origin: Airport code of departure.
            destination: Airport code of arrival.
            date: Travel date as YYYY-MM-DD.
            travel_class: Cabin class.
        """
        card = self._card("book_flight", card_id)
        price = self._fare("book_flight", origin, destination, travel_class)
        if not _DATE.fullmatch(date):
            raise self.fail("bad_date", "book_flight: Invalid date")
        if self.budget is not None and price > self.budget:
            raise self.fail("over_budget", "book_flight: Booking failed")
        if price > card["balance"]:
            raise self.fail("insufficient_funds", "book_flight: Payment declined")
        card["balance"] = round(card["balance"] - price, 2)
        booking_id = f"BK{self.next_booking_id:04d}"
        self.next_booking_id += 1
        self.bookings[booking_id] = {
            "origin": origin,
            "destination": destination,
            "date": date,
            "class": travel_class,
            "price": price,
            "card_id": card_id,
        }
        return {"booking_id": booking_id, "price": price, "status": "confirmed"}

    @tool
    def cancel_booking(self, booking_id: str) -> dict[str, Any]:
        """Cancel a booking; the fare goes back to the card it was paid with.

        Args:
            booking_id: The booking's id, e.g. 'BK9999'.
        """
        booking = self.bookings.get(booking_id)
        if booking is None:
            raise self.fail("unknown_booking", "cancel_booking: Invalid booking id")
        card = self.cards[booking["card_id"]]
        card["balance"] = round(card["balance"] + booking["price"], 2)
        del self.bookings[booking_id]
        self.insurance.pop(booking_id, None)
        return {"cancelled": booking_id, "refund": booking["price"]}

    @tool
    def list_bookings(self) -> dict[str, dict[str, Any]]:
        """The user's current bookings."""
        return {"bookings": {key: dict(value) for key, value in self.bookings.items()}}

    @tool
    def buy_insurance(
        self, booking_id: str, card_id: str, plan: Literal["basic", "premium"] = "basic"
    ) -> dict[str, Any]:
        """Buy travel insurance for a booking (basic $30, premium $80).

        Args:
            booking_id: The booking to insure.
            card_id: The card to pay with.
            plan: The insurance plan.
        """
        if booking_id not in self.bookings:
            raise self.fail("unknown_booking", "buy_insurance: Invalid booking id")
        card = self._card("buy_insurance", card_id)
        if booking_id in self.insurance:
            raise self.fail("exists", "buy_insurance: Already insured")
        price = INSURANCE_PRICES[plan]
        if price > card["balance"]:
            raise self.fail("insufficient_funds", "buy_insurance: Payment declined")
        card["balance"] = round(card["balance"] - price, 2)
        self.insurance[booking_id] = plan
        return {"booking_id": booking_id, "plan": plan, "price": price}
