"""A brokerage account: cash, stock holdings, orders, a watchlist and transfers.

State: ``balance`` (cash in dollars), ``holdings`` (symbol -> shares), ``orders`` (every
order, market orders filled at once, limit orders pending until cancelled), ``watchlist``,
``transactions`` (deposits, withdrawals, transfers), ``next_order_id`` and the read-only
market data ``stocks`` (symbol -> {"company", "price"}).
"""

from __future__ import annotations

from typing import Any, Literal

from agentgym.core.tools import tool
from agentgym.envs.tooluse.backends.base import Backend

__all__ = ["TradingAccount"]


def _money(value: float) -> float:
    return round(float(value), 2)


class TradingAccount(Backend):
    """A cash and stock account with market and limit orders."""

    domain = "trading"

    def load(self, config: dict[str, Any]) -> None:
        self.balance: float = _money(config.get("balance", 0.0))
        self.holdings: dict[str, int] = dict(config.get("holdings", {}))
        self.orders: list[dict[str, Any]] = list(config.get("orders", []))
        self.watchlist: list[str] = list(config.get("watchlist", []))
        self.transactions: list[dict[str, Any]] = list(config.get("transactions", []))
        self.next_order_id: int = int(config.get("next_order_id", 1000))
        self.stocks: dict[str, dict[str, Any]] = dict(config.get("stocks", {}))

    # ---------------------------------------------------------------- helpers --

    def _symbol(self, tool_name: str, symbol: str) -> str:
        if symbol not in self.stocks:
            raise self.fail("unknown_symbol", f"{tool_name}: Invalid symbol")
        return symbol

    def _positive(self, tool_name: str, value: float) -> None:
        if value <= 0:
            raise self.fail("not_positive", f"{tool_name}: Invalid amount")

    def _record(self, kind: str, amount: float, **extra: Any) -> dict[str, Any]:
        entry = {"id": len(self.transactions) + 1, "type": kind, "amount": _money(amount), **extra}
        self.transactions.append(entry)
        return entry

    # ---------------------------------------------------------------- tools --

    @tool
    def get_account_summary(self) -> dict[str, Any]:
        """Cash balance and stock holdings of the account."""
        return {"balance": self.balance, "holdings": dict(sorted(self.holdings.items()))}

    @tool
    def find_symbol(self, company: str) -> dict[str, list[str]]:
        """Ticker symbols of the companies whose name contains a text (case-insensitive).

        Args:
            company: Part of the company's name.
        """
        text = company.strip().casefold()
        if not text:
            raise self.fail("empty_query", "find_symbol: Invalid query")
        return {
            "symbols": [s for s, info in self.stocks.items() if text in info["company"].casefold()]
        }

    @tool
    def get_stock_price(self, symbol: str) -> dict[str, Any]:
        """The current price of a stock.

        Args:
            symbol: Ticker symbol, e.g. 'AAPL'.
        """
        self._symbol("get_stock_price", symbol)
        return {"symbol": symbol, "price": self.stocks[symbol]["price"]}

    @tool
    def buy_stock(self, symbol: str, shares: int) -> dict[str, Any]:
        """Buy shares at the current price (a market order, filled at once).

        Args:
            symbol: Ticker symbol.
            shares: Number of shares (positive).
        """
        self._symbol("buy_stock", symbol)
        self._positive("buy_stock", shares)
        cost = _money(shares * self.stocks[symbol]["price"])
        if cost > self.balance:
            raise self.fail("insufficient_funds", "buy_stock: Order rejected")
        self.balance = _money(self.balance - cost)
        self.holdings[symbol] = self.holdings.get(symbol, 0) + shares
        return self._order(symbol, "buy", shares, self.stocks[symbol]["price"], "filled")

    @tool
    def sell_stock(self, symbol: str, shares: int) -> dict[str, Any]:
        """Sell shares at the current price (a market order, filled at once).

        Args:
            symbol: Ticker symbol.
            shares: Number of shares (positive).
        """
        self._symbol("sell_stock", symbol)
        self._positive("sell_stock", shares)
        if self.holdings.get(symbol, 0) < shares:
            raise self.fail("insufficient_shares", "sell_stock: Order rejected")
        self.holdings[symbol] -= shares
        if self.holdings[symbol] == 0:
            del self.holdings[symbol]
        self.balance = _money(self.balance + shares * self.stocks[symbol]["price"])
        return self._order(symbol, "sell", shares, self.stocks[symbol]["price"], "filled")

    @tool
    def place_limit_order(
        self, symbol: str, side: Literal["buy", "sell"], shares: int, limit_price: float
    ) -> dict[str, Any]:
        """Place a limit order; it stays pending until the price is reached or it is cancelled.

        Args:
            symbol: Ticker symbol.
            side: 'buy' or 'sell'.
            shares: Number of shares (positive).
            limit_price: The price limit in dollars (positive).
        """
        self._symbol("place_limit_order", symbol)
        self._positive("place_limit_order", shares)
        self._positive("place_limit_order", limit_price)
        return self._order(symbol, side, shares, _money(limit_price), "pending")

    def _order(self, symbol: str, side: str, shares: int, price: float, status: str) -> dict:
        order = {
            "order_id": self.next_order_id,
            "symbol": symbol,
            "side": side,
            "shares": shares,
            "price": price,
            "status": status,
        }
        self.next_order_id += 1
        self.orders.append(order)
        return dict(order)

    @tool
    def list_orders(self, status: Literal["pending", "filled", "cancelled", "all"] = "all") -> dict:
        """The account's orders.

        Args:
            status: Only orders with this status ('all' for every order).
        """
        return {"orders": [o for o in self.orders if status in ("all", o["status"])]}

    @tool
    def cancel_order(self, order_id: int) -> dict[str, Any]:
        """Cancel a pending order.

        Args:
            order_id: The order's id.
        """
        for order in self.orders:
            if order["order_id"] == order_id:
                if order["status"] != "pending":
                    raise self.fail("not_pending", "cancel_order: Order cannot be cancelled")
                order["status"] = "cancelled"
                return {"order_id": order_id, "status": "cancelled"}
        raise self.fail("unknown_order", "cancel_order: Invalid order id")

    @tool
    def deposit_funds(self, amount: float) -> dict[str, float]:
        """Add cash to the account.

        Args:
            amount: Amount in dollars (positive).
        """
        self._positive("deposit_funds", amount)
        self.balance = _money(self.balance + amount)
        self._record("deposit", amount)
        return {"new_balance": self.balance}

    @tool
    def withdraw_funds(self, amount: float) -> dict[str, float]:
        """Take cash out of the account.

        Args:
            amount: Amount in dollars (positive).
        """
        self._positive("withdraw_funds", amount)
        if amount > self.balance:
            raise self.fail("insufficient_funds", "withdraw_funds: Transaction declined")
        self.balance = _money(self.balance - amount)
        self._record("withdrawal", amount)
        return {"new_balance": self.balance}

    @tool
    def transfer_funds(self, to_account: str, amount: float) -> dict[str, Any]:
        """Send cash to another account.

        Args:
            to_account: The receiving account number, 8 digits.
            amount: Amount in dollars (positive).
        """
        self._positive("transfer_funds", amount)
        if not (len(to_account) == 8 and to_account.isdigit()):
            raise self.fail("bad_account", "transfer_funds: Invalid account")
        if amount > self.balance:
            raise self.fail("insufficient_funds", "transfer_funds: Transaction declined")
        self.balance = _money(self.balance - amount)
        entry = self._record("transfer", amount, to_account=to_account)
        return {"transaction_id": entry["id"], "new_balance": self.balance}

    @tool
    def list_transactions(self, limit: int = 10) -> dict[str, list[dict[str, Any]]]:
        """The most recent deposits, withdrawals and transfers, newest first.

        Args:
            limit: How many to show (at least 1).
        """
        if limit < 1:
            raise self.fail("bad_count", "list_transactions: Invalid limit")
        return {"transactions": self.transactions[::-1][:limit]}

    @tool
    def add_to_watchlist(self, symbol: str) -> dict[str, list[str]]:
        """Add a stock to the watchlist.

        Args:
            symbol: Ticker symbol.
        """
        self._symbol("add_to_watchlist", symbol)
        if symbol in self.watchlist:
            raise self.fail("exists", "add_to_watchlist: Already present")
        self.watchlist.append(symbol)
        return {"watchlist": list(self.watchlist)}

    @tool
    def remove_from_watchlist(self, symbol: str) -> dict[str, list[str]]:
        """Remove a stock from the watchlist.

        Args:
            symbol: Ticker symbol.
        """
        if symbol not in self.watchlist:
            raise self.fail("not_in_watchlist", "remove_from_watchlist: Not found")
        self.watchlist.remove(symbol)
        return {"watchlist": list(self.watchlist)}

    @tool
    def get_watchlist(self) -> dict[str, list[str]]:
        """The stocks on the watchlist."""
        return {"watchlist": list(self.watchlist)}
