"""Travel-booking tasks: airports, fares, cards, bookings, and user requests."""

from __future__ import annotations

from typing import Any

import numpy as np

from agentgym.envs.tooluse.backends.travel import CLASS_FACTORS
from agentgym.envs.tooluse.scenarios.common import Intent, Scene, choice, intent, money, sample

DOMAIN = "travel"
AIRPORTS = (
    ("SFO", "San Francisco"), ("JFK", "New York"), ("ORD", "Chicago"), ("LAX", "Los Angeles"),
    ("SEA", "Seattle"), ("BOS", "Boston"), ("MIA", "Miami"), ("DEN", "Denver"),
    ("ATL", "Atlanta"), ("DFW", "Dallas"), ("LHR", "London"), ("CDG", "Paris"),
    ("FRA", "Frankfurt"), ("NRT", "Tokyo"), ("SYD", "Sydney"), ("YYZ", "Toronto"),
    ("MEX", "Mexico City"), ("AMS", "Amsterdam"), ("MAD", "Madrid"), ("FCO", "Rome"),
    ("DXB", "Dubai"), ("SIN", "Singapore"), ("HKG", "Hong Kong"), ("ICN", "Seoul"),
)  # fmt: skip


def _date(rng: np.random.Generator) -> str:
    return f"2025-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}"


def _cabin(travel_class: str) -> str:
    return travel_class if travel_class == "economy" else f"{travel_class}-class"


def random_config(rng: np.random.Generator, long_context: bool) -> dict[str, Any]:
    """8-14 airports with fares, 1-3 cards (long: dozens of existing bookings)."""
    airports = dict(sample(rng, AIRPORTS, 24 if long_context else int(rng.integers(8, 15))))
    codes = list(airports)
    fares = {}
    for index, origin in enumerate(codes):
        for destination in codes[index + 1 :]:
            if rng.random() < 0.6:
                fares[f"{origin}-{destination}"] = round(float(rng.uniform(80, 900)), 2)
    cards = {
        f"card_{int(number)}": {
            "holder": "Alex Morgan",
            "balance": round(float(rng.uniform(500, 6000)), 2),
        }
        for number in sample(rng, range(1000, 10000), int(rng.integers(1, 4)))
    }
    next_booking = int(rng.integers(1, 500))
    bookings = {}
    routes = list(fares)
    for _ in range(int(rng.integers(0, 3)) + (int(rng.integers(40, 80)) if long_context else 0)):
        route = choice(rng, routes)
        origin, destination = route.split("-")
        bookings[f"BK{next_booking:04d}"] = {
            "origin": origin,
            "destination": destination,
            "date": _date(rng),
            "class": "economy",
            "price": fares[route],
            "card_id": choice(rng, list(cards)),
        }
        next_booking += 1
    return {
        "airports": airports,
        "fares": fares,
        "cards": cards,
        "bookings": bookings,
        "insurance": {},
        "budget": None if rng.random() < 0.6 else float(int(rng.integers(5, 20)) * 100),
        "next_booking_id": next_booking,
    }


def _agency(scene: Scene) -> Any:
    return scene[DOMAIN]


def _bookable(rng: np.random.Generator, scene: Scene) -> tuple[str, str, str, str, float] | None:
    """A (card, origin, destination, class, price) that the card and budget allow."""
    agency = _agency(scene)
    options = []
    for route, fare in agency.fares.items():
        origin, destination = route.split("-")
        if rng.random() < 0.5:
            origin, destination = destination, origin
        for travel_class, factor in CLASS_FACTORS.items():
            price = round(fare * factor, 2)
            if agency.budget is not None and price > agency.budget:
                continue
            for card_id, card in agency.cards.items():
                if price <= card["balance"]:
                    options.append((card_id, origin, destination, travel_class, price))
    return choice(rng, options) if options else None


@intent(DOMAIN, level=1)
def airport_code(rng: np.random.Generator, scene: Scene) -> Intent | None:
    code, city = choice(rng, list(_agency(scene).airports.items()))
    scene.run("find_nearest_airport", city=city)
    return Intent(f"What's the airport code for {city}?", answer=f"{city}'s airport is {code}.")


@intent(DOMAIN, level=1)
def fare_by_code(rng: np.random.Generator, scene: Scene) -> Intent | None:
    agency = _agency(scene)
    route = choice(rng, list(agency.fares))
    origin, destination = route.split("-")
    travel_class = choice(rng, list(CLASS_FACTORS))
    price = scene.run(
        "get_flight_price", origin=origin, destination=destination, travel_class=travel_class
    )["price"]
    ticket = f"{_cabin(travel_class)} ticket from {origin} to {destination}"
    return Intent(f"How much is a {ticket}?", answer=f"A {ticket} costs {money(price)}.")


@intent(DOMAIN, level=3)
def fare_by_city(rng: np.random.Generator, scene: Scene) -> Intent | None:
    agency = _agency(scene)
    route = choice(rng, list(agency.fares))
    origin, destination = route.split("-")
    scene.run("find_nearest_airport", city=agency.airports[origin])
    scene.run("find_nearest_airport", city=agency.airports[destination])
    price = scene.run("get_flight_price", origin=origin, destination=destination)["price"]
    return Intent(
        f"Find the airports of {agency.airports[origin]} and {agency.airports[destination]}, "
        "then tell me the economy fare between them.",
        answer=f"{origin} to {destination} costs {money(price)} in economy.",
    )


@intent(DOMAIN, level=1, missing=True)
def book_by_code(rng: np.random.Generator, scene: Scene) -> Intent | None:
    picked = _bookable(rng, scene)
    if picked is None:
        return None
    card_id, origin, destination, travel_class, _ = picked
    date = _date(rng)
    booking = scene.run(
        "book_flight",
        card_id=card_id,
        origin=origin,
        destination=destination,
        date=date,
        travel_class=travel_class,
    )
    request = f"a {_cabin(travel_class)} flight from {origin} to {destination}"
    return Intent(
        f"Book {request} on {date}, paid with {card_id}.",
        answer=f"Booked: {booking['booking_id']} for {money(booking['price'])}.",
        vague=f"Book {request}, paid with {card_id}.",
        ask="On which date would you like to fly?",
        supply=f"On {date}.",
    )


@intent(DOMAIN, level=3)
def book_by_city(rng: np.random.Generator, scene: Scene) -> Intent | None:
    picked = _bookable(rng, scene)
    if picked is None:
        return None
    card_id, origin, destination, travel_class, _ = picked
    airports = _agency(scene).airports
    date = _date(rng)
    scene.run("find_nearest_airport", city=airports[origin])
    scene.run("find_nearest_airport", city=airports[destination])
    booking = scene.run(
        "book_flight",
        card_id=card_id,
        origin=origin,
        destination=destination,
        date=date,
        travel_class=travel_class,
    )
    return Intent(
        f"I need to fly {_cabin(travel_class)} from {airports[origin]} to "
        f"{airports[destination]} on {date}. Look up both airports and book it with {card_id}.",
        answer=f"Booked {origin}-{destination} on {date}: {booking['booking_id']}.",
    )


@intent(DOMAIN, level=1, missing=True)
def cancel_by_id(rng: np.random.Generator, scene: Scene) -> Intent | None:
    bookings = _agency(scene).bookings
    if not bookings:
        return None
    booking_id = choice(rng, sorted(bookings))
    refund = scene.run("cancel_booking", booking_id=booking_id)["refund"]
    return Intent(
        f"Cancel my booking {booking_id}.",
        answer=f"Booking {booking_id} is cancelled; {money(refund)} was refunded.",
        vague="Please cancel one of my flight bookings.",
        ask="Which booking should I cancel? Please give me the booking id.",
        supply=f"Booking {booking_id}.",
    )


@intent(DOMAIN, level=2)
def cancel_by_destination(rng: np.random.Generator, scene: Scene) -> Intent | None:
    agency = _agency(scene)
    counts: dict[str, int] = {}
    for booking in agency.bookings.values():
        counts[booking["destination"]] = counts.get(booking["destination"], 0) + 1
    options = [(k, b) for k, b in agency.bookings.items() if counts[b["destination"]] == 1]
    if not options:
        return None
    booking_id, booking = choice(rng, sorted(options))
    city = agency.airports[booking["destination"]]
    scene.run("list_bookings")
    scene.run("cancel_booking", booking_id=booking_id)
    return Intent(
        f"Look through my bookings and cancel the flight to {city}.",
        answer=f"Cancelled {booking_id} to {city}.",
    )


@intent(DOMAIN, level=1, missing=True)
def set_travel_budget(rng: np.random.Generator, scene: Scene) -> Intent | None:
    amount = float(int(rng.integers(5, 40)) * 100)
    scene.run("set_budget", amount=amount)
    return Intent(
        f"Set my travel budget to {money(amount)}.",
        answer=f"Your budget is {money(amount)}.",
        vague="I want to set a travel budget.",
        ask="What amount should the budget be?",
        supply=f"{money(amount)}.",
    )


@intent(DOMAIN, level=2)
def insure_booking(rng: np.random.Generator, scene: Scene) -> Intent | None:
    agency = _agency(scene)
    plan = choice(rng, ("basic", "premium"))
    price = {"basic": 30.0, "premium": 80.0}[plan]
    options = [
        (booking_id, card_id)
        for booking_id in sorted(agency.bookings)
        if booking_id not in agency.insurance
        for card_id, card in agency.cards.items()
        if card["balance"] >= price
    ]
    if not options:
        return None
    booking_id, card_id = choice(rng, options)
    scene.run("buy_insurance", booking_id=booking_id, card_id=card_id, plan=plan)
    return Intent(
        f"Buy {plan} travel insurance for booking {booking_id}, paid with {card_id}.",
        answer=f"Booking {booking_id} now has {plan} insurance.",
    )


@intent(DOMAIN, level=1)
def show_cards(rng: np.random.Generator, scene: Scene) -> Intent | None:
    cards = scene.run("list_cards")["cards"]
    return Intent(
        "Which payment cards do I have, and how much is available on each?",
        answer="; ".join(f"{k}: {money(v['balance'])}" for k, v in cards.items()),
    )
