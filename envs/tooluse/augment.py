"""Actionable environment augmentation: vague tool errors become corrective hints.

The backends fail with short, vague messages, as real APIs (and BFCL's backends) do:
"book_flight: No available route". With augmentation on, the environment appends a hint
from :data:`HINTS`, a table keyed by ``(domain, tool, error kind)`` (``"*"`` matches any
domain or tool), that says which constraint was violated and how to satisfy it, e.g.
which lookup tool gives valid values. Hints are fixed texts: they never contain argument
values, so they cannot leak the ground truth. Environment Tuning turns augmentation on in
its first three curriculum stages and off in the last, which matches test conditions.

Example:
    >>> augmentation = ActionableAugmentation()
    >>> print(augmentation.rewrite("Error: book_flight: No available route",
    ...                            "travel", "book_flight", "invalid_airport"))
    Error: book_flight: No available route
    Hint: Invalid airport code(s). Airports are given as 3-letter codes: get them with \
find_nearest_airport (from a city name) or list_airports.
    >>> augmentation.hint("travel", "book_flight", "no_such_kind") is None
    True
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["GENERIC_HINTS", "HINTS", "ActionableAugmentation", "register_hints"]

#: Hints for failures any tool can have, keyed by error kind.
GENERIC_HINTS: dict[str, str] = {
    "invalid_arguments": (
        "Compare the call with the tool's JSON schema: use exactly the parameter names it "
        "lists, give every required parameter, and use the declared types (numbers without "
        "quotes, true/false for booleans, lists in [...])."
    ),
    "unknown_tool": (
        "Call only tools from the list of available tools, spelled exactly as listed. If "
        "none of them can do what the user asked, say so instead of inventing a tool."
    ),
    "missing_function": (
        "A function this request needs is not available in this turn. Do not work around "
        "it with other tools and do not change anything: tell the user which capability is "
        "missing and wait; it may be provided in a later turn."
    ),
    "execution_error": "The tool failed unexpectedly; check the arguments and try again.",
}

#: (domain, tool or "*", error kind) -> hint
HINTS: dict[tuple[str, str, str], str] = {
    # -- file system
    ("filesystem", "*", "path_not_allowed"): (
        "Paths are not allowed. Give only the name of a file or directory in the current "
        "directory; use cd to move one level at a time (cd with '..' goes up)."
    ),
    ("filesystem", "cd", "not_found"): (
        "There is no directory with that name in the current directory. Use ls to see what "
        "the current directory contains and pwd to see where you are."
    ),
    ("filesystem", "*", "not_found"): (
        "Nothing with that name is in the current directory. Use ls (and pwd) to check "
        "where you are and what is here; cd into the right directory first if needed."
    ),
    ("filesystem", "*", "is_a_directory"): (
        "That name is a directory, not a file. cd into it, or use ls to find the file."
    ),
    ("filesystem", "*", "exists"): (
        "Something with that name already exists here (check with ls). Use the exact name "
        "the user asked for, and do not overwrite or remove entries they did not mention."
    ),
    ("filesystem", "rm", "dir_not_empty"): (
        "rm removes only files and empty directories; the directory still has content."
    ),
    ("filesystem", "cd", "at_root"): (
        "You are already in the top directory (/workspace); there is no parent directory."
    ),
    ("filesystem", "tail", "bad_count"): "The number of lines must be at least 1.",
    # -- trading
    ("trading", "*", "unknown_symbol"): (
        "That is not a listed ticker symbol. Get the symbol with find_symbol, passing part "
        "of the company's name."
    ),
    ("trading", "*", "not_positive"): (
        "Amounts, share counts and prices must be positive numbers."
    ),
    ("trading", "buy_stock", "insufficient_funds"): (
        "The cash balance does not cover shares x price. Check get_account_summary and "
        "get_stock_price; buy a different amount only if the user agrees."
    ),
    ("trading", "*", "insufficient_funds"): (
        "The amount is larger than the cash balance; check it with get_account_summary."
    ),
    ("trading", "sell_stock", "insufficient_shares"): (
        "The account holds fewer shares of this stock; check holdings with get_account_summary."
    ),
    ("trading", "cancel_order", "not_pending"): (
        "Only pending orders can be cancelled; list them with list_orders and status 'pending'."
    ),
    ("trading", "cancel_order", "unknown_order"): (
        "No order has this id. Look up order ids with list_orders."
    ),
    ("trading", "transfer_funds", "bad_account"): (
        "Account numbers are 8 digits, passed as a string (e.g. '01234567')."
    ),
    ("trading", "add_to_watchlist", "exists"): (
        "The stock is already on the watchlist (see get_watchlist)."
    ),
    ("trading", "remove_from_watchlist", "not_in_watchlist"): (
        "The symbol is not on the watchlist; check it with get_watchlist."
    ),
    ("trading", "*", "bad_count"): "The limit must be at least 1.",
    ("trading", "find_symbol", "empty_query"): "Pass part of the company's name.",
    # -- messaging
    ("messaging", "send_message", "unknown_receiver"): (
        "receiver_id must be a user id such as 'USR007', not a name (and not your own id). "
        "Look the id up with get_user_id or list_contacts."
    ),
    ("messaging", "*", "unknown_user"): (
        "No user with that name is in the directory. Use the person's full name exactly as "
        "the user wrote it."
    ),
    ("messaging", "view_inbox", "unknown_sender"): (
        "sender_id must be a user id such as 'USR007'; get it with get_user_id."
    ),
    ("messaging", "delete_message", "unknown_message"): (
        "No message has that id. Find message ids with view_inbox, view_sent_messages or "
        "search_messages."
    ),
    ("messaging", "add_contact", "exists"): (
        "That person is already a contact (see list_contacts)."
    ),
    ("messaging", "*", "empty_message"): "The message text must not be empty.",
    ("messaging", "*", "empty_query"): "The keyword must not be empty.",
    # -- travel
    ("travel", "*", "invalid_airport"): (
        "Invalid airport code(s). Airports are given as 3-letter codes: get them with "
        "find_nearest_airport (from a city name) or list_airports."
    ),
    ("travel", "*", "no_route"): (
        "There is no flight between these two airports. Check that origin and destination "
        "are the airports the user meant (find_nearest_airport)."
    ),
    ("travel", "find_nearest_airport", "unknown_city"): (
        "No airport is listed for that city name; check the spelling or see list_airports."
    ),
    ("travel", "*", "unknown_card"): (
        "No card has this id. See the user's card ids with list_cards."
    ),
    ("travel", "book_flight", "bad_date"): "Dates are written YYYY-MM-DD, e.g. 2031-12-24.",
    ("travel", "book_flight", "over_budget"): (
        "The fare is above the user's travel budget. Tell the user; change the budget with "
        "set_budget only if they ask."
    ),
    ("travel", "*", "insufficient_funds"): (
        "The card's balance is too low for this payment; check balances with list_cards."
    ),
    ("travel", "*", "unknown_booking"): (
        "No booking has this id. Look up booking ids with list_bookings."
    ),
    ("travel", "buy_insurance", "exists"): "This booking already has insurance.",
    ("travel", "set_budget", "not_positive"): "The budget must be a positive amount.",
    # -- vehicle
    ("vehicle", "start_engine", "brake_not_pressed"): (
        "The brake pedal must be pressed before the engine can start: call press_brake_pedal first."
    ),
    ("vehicle", "start_engine", "doors_unlocked"): (
        "Every door must be locked before the engine can start: lock them with lock_doors "
        "(get_vehicle_status shows which are unlocked)."
    ),
    ("vehicle", "start_engine", "already_running"): "The engine is already running.",
    ("vehicle", "start_engine", "no_fuel"): "The tank is empty; the car needs fuel first.",
    ("vehicle", "stop_engine", "engine_off"): "The engine is already off.",
    ("vehicle", "set_cruise_control", "engine_off"): (
        "Cruise control needs a running engine; start the engine first."
    ),
    ("vehicle", "set_cruise_control", "parking_brake_on"): (
        "Release the parking brake first (set_parking_brake with engaged false)."
    ),
    ("vehicle", "refuel", "engine_running"): "Stop the engine (stop_engine) before refuelling.",
    ("vehicle", "refuel", "overfill"): (
        "The amount must be positive and fit in the tank: compare fuel_liters with "
        "tank_capacity from get_vehicle_status."
    ),
    ("vehicle", "*", "out_of_range"): (
        "The value is outside the range given in the tool's description."
    ),
    ("vehicle", "*", "no_doors"): (
        "Name at least one door: driver, passenger, rear_left or rear_right."
    ),
}


def register_hints(domain: str, hints: Mapping[tuple[str, str], str]) -> None:
    """Add hints for a custom domain: ``{(tool or "*", error kind): hint}``."""
    for (tool_name, kind), text in hints.items():
        HINTS[(domain, tool_name, kind)] = text


class ActionableAugmentation:
    """Looks up and applies corrective hints (the tables are shared, not copied).

    Args:
        hints: The ``(domain, tool, kind) -> hint`` table.
        generic: The ``kind -> hint`` table for failures of any tool.
    """

    def __init__(
        self,
        hints: Mapping[tuple[str, str, str], str] = HINTS,
        generic: Mapping[str, str] = GENERIC_HINTS,
    ) -> None:
        self.hints = hints
        self.generic = generic

    def hint(self, domain: str, tool_name: str, kind: str | None) -> str | None:
        """The most specific hint for a failure, or ``None``."""
        if kind is None:
            return None
        for key in ((domain, tool_name, kind), (domain, "*", kind), ("*", "*", kind)):
            text = self.hints.get(key)
            if text is not None:
                return text
        return self.generic.get(kind)

    def rewrite(self, content: str, domain: str, tool_name: str, kind: str | None) -> str:
        """``content`` with the hint appended on its own line (unchanged without a hint)."""
        text = self.hint(domain, tool_name, kind)
        return f"{content}\nHint: {text}" if text else content
