"""Actionable augmentation for BFCL (Environment Tuning): vague errors become corrective hints.

BFCL's backends fail tersely ("No available route for the given airports.", "cd: x:
Unsupported path. ..."). With ``augment=True`` the environment appends one line
``Hint: ...`` to a failed call's observation: which constraint was violated and which
function gives valid values or fixes the precondition. The checker never sees the hint (it
compares the result itself), and hints are fixed texts chosen by the error message alone:
they never contain argument values or anything from the entry's ground truth.

The table, first match wins (``backend`` ``*`` matches any; ``pattern`` is searched in the
error text, case-insensitively; ``functions`` empty matches any function):

.. list-table::
   :header-rows: 1

   * - failure
     - hint (abridged)
   * - calling a function withheld until a later turn (miss_func)
     - a function this request needs is missing: do not work around it; tell the user and
       wait, it may be provided later
   * - unknown function
     - call only listed functions, spelled as listed; if none fits, say so
   * - invalid arguments (unknown, missing, or with ``strict``, mistyped)
     - use the parameter names and types of the signature shown
   * - file system: a path (``a/b``) or a ``/`` in a name
     - paths are not allowed: a name in the current directory; cd one level at a time
   * - file system: no such file or directory
     - ls / pwd to see where you are; cd into the right directory; find locates a name
   * - travel: unknown route or airport code
     - invalid airport code(s): list_all_airports or get_nearest_airport_by_city
   * - travel / trading / ticket / posting / messaging: not logged in, bad token
     - the backend's login function first (authenticate_travel, trading_login, ...)
   * - vehicle: engine start preconditions (doors, brake pedal), cruise control
     - lockDoors / pressBrakePedal fully / startEngine first

and more for ids that do not exist (which function lists them), enums, insufficient
funds, and units; :data:`HINTS` has every entry. Calls that fail without a matching entry
get :data:`GENERIC_EXCEPTION_HINT` when the backend raised, and nothing otherwise.

Example:
    >>> from agentgym.core.parsing import ToolCall
    >>> from agentgym.envs.bfcl.execution import CallOutcome
    >>> failed = CallOutcome(ToolCall("get_flight_cost", {}),
    ...     "Error during execution: No available route for the given airports.", "exception")
    >>> print(hint_for(failed, "TravelAPI"))  # doctest: +ELLIPSIS
    Invalid airport code(s) or a route that does not exist. Airports are 3-letter codes: ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agentgym.envs.bfcl.execution import CallOutcome

__all__ = ["GENERIC_EXCEPTION_HINT", "HINTS", "KIND_HINTS", "Hint", "hint_for"]


@dataclass(frozen=True)
class Hint:
    """One row of the hint table.

    Attributes:
        backend: The backend class whose function failed, or ``"*"`` for any.
        pattern: Regular expression searched (case-insensitively) in the error text.
        text: The hint.
        functions: Only for these functions (empty: any function of ``backend``).
    """

    backend: str
    pattern: str
    text: str
    functions: tuple[str, ...] = ()

    def matches(self, backend: str, function: str, error: str) -> bool:
        return (
            self.backend in ("*", backend)
            and (not self.functions or function in self.functions)
            and re.search(self.pattern, error, re.IGNORECASE) is not None
        )


#: Hints by outcome kind, for calls that never reached a backend.
KIND_HINTS: dict[str, str] = {
    "withheld_function": (
        "A function this request needs is not available in this turn. Do not work around "
        "it with other functions and do not change anything: tell the user which function "
        "or value is missing and wait; it may be provided in a later turn."
    ),
    "unknown_function": (
        "Call only functions from the list of available functions, spelled exactly as "
        "listed, without a class prefix. If none of them can do what the user asked, say "
        "so instead of inventing a function."
    ),
    "invalid_arguments": (
        "Compare the call with the function's signature shown above: use exactly its "
        "parameter names, give every required one, and use the declared types (numbers "
        "without quotes, True/False for booleans, lists in [...])."
    ),
}

#: For a backend exception that no row of :data:`HINTS` explains.
GENERIC_EXCEPTION_HINT = (
    "The function failed on its arguments. Check each value against the function's "
    "description: its type, its format, and the values it allows."
)

_FS = "GorillaFileSystem"
_NOT_LOGGED_IN = r"not authenticated|not logged in|no user is currently logged in"

#: The hint table (first match wins).
HINTS: tuple[Hint, ...] = (
    # -- file system
    Hint(
        _FS,
        r"Unsupported path|path not allowed|Invalid character",
        "Paths are not allowed. Give only the name of a file or directory in the current "
        "directory (no '/'), and move with cd one level at a time ('..' goes up).",
    ),
    Hint(
        _FS,
        r"already the root",
        "You are in the root directory; there is no parent. Use ls to see its contents.",
    ),
    Hint(
        _FS,
        r"Is a directory",
        "That name is a directory, not a file: cd into it, or use ls to find the file.",
    ),
    Hint(
        _FS,
        r"Directory not empty",
        "rmdir removes only empty directories: remove what is inside first (rm), or leave it.",
    ),
    Hint(
        _FS,
        r"Not a directory",
        "The destination exists and is a file, not a directory: check the name with ls.",
    ),
    Hint(
        _FS,
        r"File exists",
        "Something with that name already exists here (see ls). Use the exact name the "
        "user asked for, and do not overwrite entries they did not mention.",
    ),
    Hint(
        _FS,
        r"No such (file|directory)",
        "Nothing with that name is in the current directory. Use pwd to see where you are "
        "and ls to see what is here; cd into the right directory first (find locates a "
        "name below the current directory).",
    ),
    Hint(_FS, r"invalid mode", "wc counts lines ('l'), words ('w') or characters ('c')."),
    # -- math
    Hint(
        "MathAPI",
        r"must be (a )?numbers?|must be an integer",
        "Pass numbers as numbers (no quotes), and lists of numbers as [...].",
    ),
    Hint(
        "MathAPI",
        r"Conversion from .* is not supported",
        "That unit pair is not supported: use the unit names listed in the function's "
        "description (si_unit_conversion for metric units, imperial_si_conversion between "
        "imperial and metric).",
    ),
    Hint("MathAPI", r"empty list", "Pass a non-empty list of numbers."),
    Hint("MathAPI", r"divide by zero|cannot be zero", "The divisor (or whole) must not be zero."),
    # -- messaging
    Hint(
        "MessageAPI",
        _NOT_LOGGED_IN,
        "Log in first with message_login, passing the user's id (get_user_id gives a "
        "user's id from their name).",
    ),
    Hint(
        "MessageAPI",
        r"Receiver ID .* not found",
        "receiver_id must be a user id, not a name: look it up with get_user_id (or see "
        "every user with list_users).",
    ),
    Hint(
        "MessageAPI",
        r"User '.*' not found",
        "No user has that name: see the names with list_users and use one exactly.",
    ),
    Hint(
        "MessageAPI",
        r"already exists",
        "That person is already a contact; there is no need to add them.",
    ),
    # -- posting (Twitter)
    Hint(
        "TwitterAPI",
        _NOT_LOGGED_IN,
        "Authenticate first with authenticate_twitter (username and password from the "
        "user or the conversation); posting_get_login_status tells whether you are in.",
    ),
    Hint(
        "TwitterAPI",
        r"Tweet with ID .* not found",
        "No tweet has this id: find tweet ids with get_user_tweets or search_tweets (ids "
        "are integers).",
    ),
    # -- ticketing
    Hint(
        "TicketAPI",
        _NOT_LOGGED_IN,
        "Log in first with ticket_login (username and password from the user or the "
        "conversation); ticket_get_login_status tells whether you are in.",
    ),
    Hint(
        "TicketAPI",
        r"Ticket with ID .* not found",
        "No ticket has this id: list the user's tickets with get_user_tickets.",
    ),
    Hint("TicketAPI", r"already (closed|resolved)", "The ticket is already in that state."),
    Hint("TicketAPI", r"Invalid priority", "Priority is an integer from 1 to 5."),
    Hint(
        "TicketAPI",
        r"Invalid fields for update",
        "edit_ticket updates only the fields listed in its description.",
    ),
    # -- trading
    Hint(
        "TradingBot",
        _NOT_LOGGED_IN,
        "Log in first with trading_login (username and password from the user or the "
        "conversation); trading_get_login_status tells whether you are in.",
    ),
    Hint(
        "TradingBot",
        r"symbol .* not found|Invalid stock symbol",
        "That is not a listed ticker symbol: get it from the company's name with "
        "get_symbol_by_name, or list a sector's symbols with get_available_stocks.",
    ),
    Hint(
        "TradingBot",
        r"not found in watchlist",
        "The symbol is not on the watchlist: see it with get_watchlist.",
    ),
    Hint(
        "TradingBot",
        r"Order with ID .* not found",
        "No order has this id: order ids are in get_order_history (integers).",
    ),
    Hint(
        "TradingBot",
        r"already completed",
        "Only orders that are not completed can be cancelled (see get_order_details).",
    ),
    Hint(
        "TradingBot",
        r"Insufficient funds",
        "The balance does not cover this: check it with get_account_info; change the "
        "amount (or fund the account) only if the user asks.",
    ),
    Hint("TradingBot", r"must be positive", "Amounts, prices and share counts must be positive."),
    Hint(
        "TradingBot",
        r"Market is closed",
        "Transactions are refused while the market is closed (see get_current_time); tell "
        "the user.",
    ),
    # -- travel booking
    Hint(
        "TravelAPI",
        r"Token expired|Invalid access token|Token not initialized",
        "The access token is missing, expired or wrong: get a fresh one with "
        "authenticate_travel and pass it exactly as returned.",
    ),
    Hint(
        "TravelAPI",
        r"No available route|airport code",
        "Invalid airport code(s) or a route that does not exist. Airports are 3-letter "
        "codes: get them with list_all_airports or get_nearest_airport_by_city.",
    ),
    Hint(
        "TravelAPI",
        r"Card not registered|Credit card not registered|Balance not found",
        "Use the id of a registered card: see them with get_all_credit_cards (register a "
        "new one with register_credit_card only if the user asks).",
    ),
    Hint(
        "TravelAPI",
        r"Booking not found",
        "No booking has this id: see booking ids with get_booking_history.",
    ),
    Hint("TravelAPI", r"date format", "Dates are written YYYY-MM-DD."),
    Hint("TravelAPI", r"travel class", "The travel class is economy, business or first."),
    Hint(
        "TravelAPI",
        r"exchange rate",
        "Use currency codes from compute_exchange_rate's description (e.g. USD, EUR).",
    ),
    Hint(
        "TravelAPI",
        r"Insufficient funds",
        "The card's balance is too low: check it with get_credit_card_balance; tell the "
        "user rather than picking another card on your own.",
    ),
    Hint(
        "TravelAPI",
        r"budget limit",
        "The cost is above the travel budget: see get_budget_fiscal_year; change the limit "
        "with set_budget_limit only if the user asks.",
    ),
    Hint("TravelAPI", r"Card already registered", "This card is already registered."),
    # -- vehicle
    Hint(
        "VehicleControlAPI",
        r"doors must be locked",
        "Lock every door listed (lockDoors with unlock=False) before starting the engine.",
    ),
    Hint(
        "VehicleControlAPI",
        r"Brake pedal needs to be pressed|press the brake fully",
        "Press the brake pedal fully (pressBrakePedal, full pedal position) before startEngine.",
    ),
    Hint(
        "VehicleControlAPI",
        r"Start the engine",
        "The engine must be running first: startEngine (doors locked, brake pressed).",
    ),
    Hint(
        "VehicleControlAPI",
        r"Fuel tank is empty|fill gas above|cannot be negative",
        "Check fuel level and capacity with displayCarStatus('fuel'); the amount is in "
        "gallons and must fit in the tank.",
    ),
    Hint(
        "VehicleControlAPI",
        r"^404$",
        "This weather service is unavailable; get_outside_temperature_from_google gives "
        "the outside temperature.",
        ("get_outside_temperature_from_weather_com",),
    ),
    Hint(
        "VehicleControlAPI",
        r"distance not found",
        "estimate_distance takes zip codes, not city names: get them with "
        "get_zipcode_based_on_city.",
    ),
    Hint(
        "VehicleControlAPI",
        r"Invalid (ignition mode|headlight mode|mode|option|speed)|must be between",
        "Use one of the values the function's description lists (its [Enum] or range).",
    ),
)


def hint_for(outcome: CallOutcome, backend: str | None) -> str | None:
    """The hint for a failed call (``None`` for a success or a failure without hint).

    Args:
        outcome: The call's outcome.
        backend: The class of the function's backend (``None`` if unknown).
    """
    if outcome.kind in KIND_HINTS:
        return KIND_HINTS[outcome.kind]
    if outcome.kind == "exception":
        error = outcome.content
    elif outcome.backend_error is not None:
        error = outcome.backend_error
    else:
        return None
    for hint in HINTS:
        if backend is not None and hint.matches(backend, outcome.call.name, error):
            return hint.text
    return GENERIC_EXCEPTION_HINT if outcome.kind == "exception" else None
