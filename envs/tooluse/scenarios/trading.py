"""Trading-account tasks: market data, account state and user requests."""

from __future__ import annotations

from typing import Any

import numpy as np

from agentgym.envs.tooluse.scenarios.common import Intent, Scene, choice, intent, money, sample

DOMAIN = "trading"
COMPANIES = (
    ("NVTX", "Novatex Systems"), ("QRLM", "Quorelium Energy"), ("BLNK", "Blinkwell Media"),
    ("HRBR", "Harborline Shipping"), ("SOLV", "Solvana Pharma"), ("GRDN", "Gardena Foods"),
    ("PXEL", "Pixelforge Games"), ("TRVL", "Travelo Holdings"), ("CRBN", "Carbonix Materials"),
    ("MEDQ", "Mediquant Health"), ("ZEPH", "Zephyr Aerospace"), ("LUMA", "Lumacore Lighting"),
    ("FINX", "Finexa Bank"), ("AGRO", "Agrona Farms"), ("VOLT", "Voltaris Motors"),
    ("CLDX", "Cloudex Software"), ("MINR", "Minera Resources"), ("TEXL", "Textilo Apparel"),
    ("ROBO", "Robotica Labs"), ("AQUA", "Aquaterra Water"),
)  # fmt: skip


def _account_number(rng: np.random.Generator) -> str:
    return f"{int(rng.integers(10_000_000, 100_000_000))}"


def random_config(rng: np.random.Generator, long_context: bool) -> dict[str, Any]:
    """Market data for 8-12 companies and an account (long: a long history of orders)."""
    listed = sample(rng, COMPANIES, int(rng.integers(8, 13)))
    stocks = {
        symbol: {"company": company, "price": round(float(rng.uniform(5, 400)), 2)}
        for symbol, company in listed
    }
    symbols = list(stocks)
    holdings = {s: int(rng.integers(1, 60)) for s in sample(rng, symbols, int(rng.integers(1, 4)))}
    next_order_id = int(rng.integers(1000, 9000))
    orders = []
    for _ in range(int(rng.integers(0, 3)) + (int(rng.integers(60, 120)) if long_context else 0)):
        orders.append(
            {
                "order_id": next_order_id,
                "symbol": choice(rng, symbols),
                "side": choice(rng, ("buy", "sell")),
                "shares": int(rng.integers(1, 50)),
                "price": round(float(rng.uniform(5, 400)), 2),
                "status": choice(rng, ("filled", "cancelled")),
            }
        )
        next_order_id += 1
    transactions = []
    for index in range(
        int(rng.integers(1, 5)) + (int(rng.integers(60, 120)) if long_context else 0)
    ):
        kind = choice(rng, ("deposit", "withdrawal", "transfer"))
        entry = {"id": index + 1, "type": kind, "amount": round(float(rng.uniform(10, 2000)), 2)}
        if kind == "transfer":
            entry["to_account"] = _account_number(rng)
        transactions.append(entry)
    return {
        "balance": round(float(rng.uniform(2_000, 20_000)), 2),
        "holdings": holdings,
        "orders": orders,
        "watchlist": sample(rng, symbols, int(rng.integers(0, 4))),
        "transactions": transactions,
        "next_order_id": next_order_id,
        "stocks": stocks,
    }


def _account(scene: Scene) -> Any:
    return scene[DOMAIN]


def _affordable(rng: np.random.Generator, scene: Scene) -> tuple[str, int] | None:
    account = _account(scene)
    options = [s for s, info in account.stocks.items() if info["price"] * 1 <= account.balance]
    if not options:
        return None
    symbol = choice(rng, options)
    most = int(account.balance // account.stocks[symbol]["price"])
    return symbol, int(rng.integers(1, max(2, min(most, 40) + 1)))


def _company_word(company: str) -> str:
    return company.split()[0]


@intent(DOMAIN, level=1)
def stock_price(rng: np.random.Generator, scene: Scene) -> Intent | None:
    symbol = choice(rng, list(_account(scene).stocks))
    price = scene.run("get_stock_price", symbol=symbol)["price"]
    return Intent(
        choice(
            rng, (f"What's the current price of {symbol}?", f"How much is {symbol} trading at?")
        ),
        answer=f"{symbol} is at {money(price)}.",
    )


@intent(DOMAIN, level=2)
def price_by_company(rng: np.random.Generator, scene: Scene) -> Intent | None:
    symbol, info = choice(rng, list(_account(scene).stocks.items()))
    word = _company_word(info["company"])
    scene.run("find_symbol", company=word)
    price = scene.run("get_stock_price", symbol=symbol)["price"]
    return Intent(
        f"Look up the ticker symbol of {word} and tell me its current share price.",
        answer=f"{info['company']} ({symbol}) trades at {money(price)}.",
    )


@intent(DOMAIN, level=1, missing=True)
def buy_shares(rng: np.random.Generator, scene: Scene) -> Intent | None:
    picked = _affordable(rng, scene)
    if picked is None:
        return None
    symbol, shares = picked
    order = scene.run("buy_stock", symbol=symbol, shares=shares)
    return Intent(
        choice(
            rng, (f"Buy {shares} shares of {symbol}.", f"Please purchase {shares} {symbol} shares.")
        ),
        answer=f"Bought {shares} {symbol} at {money(order['price'])} (order {order['order_id']}).",
        vague=f"I'd like to buy some {symbol} shares.",
        ask=f"How many shares of {symbol} would you like to buy?",
        supply=f"{shares} shares, please.",
    )


@intent(DOMAIN, level=2)
def buy_by_company(rng: np.random.Generator, scene: Scene) -> Intent | None:
    picked = _affordable(rng, scene)
    if picked is None:
        return None
    symbol, shares = picked
    word = _company_word(_account(scene).stocks[symbol]["company"])
    scene.run("find_symbol", company=word)
    scene.run("buy_stock", symbol=symbol, shares=shares)
    return Intent(
        f"Find the ticker for {word} and buy {shares} shares of it.",
        answer=f"{word} is {symbol}; I bought {shares} shares.",
    )


@intent(DOMAIN, level=1, missing=True)
def sell_shares(rng: np.random.Generator, scene: Scene) -> Intent | None:
    holdings = _account(scene).holdings
    if not holdings:
        return None
    symbol = choice(rng, sorted(holdings))
    shares = int(rng.integers(1, holdings[symbol] + 1))
    scene.run("sell_stock", symbol=symbol, shares=shares)
    return Intent(
        f"Sell {shares} of my {symbol} shares.",
        answer=f"Sold {shares} {symbol} shares.",
        vague=f"Sell some of my {symbol} shares.",
        ask=f"How many {symbol} shares should I sell?",
        supply=f"Sell {shares}.",
    )


@intent(DOMAIN, level=2)
def sell_everything_of(rng: np.random.Generator, scene: Scene) -> Intent | None:
    holdings = _account(scene).holdings
    if not holdings:
        return None
    symbol = choice(rng, sorted(holdings))
    shares = holdings[symbol]
    scene.run("get_account_summary")
    scene.run("sell_stock", symbol=symbol, shares=shares)
    return Intent(
        f"Check my account summary and sell all of my {symbol} shares.",
        answer=f"You held {shares} {symbol} shares; all are sold.",
    )


@intent(DOMAIN, level=1, missing=True)
def deposit(rng: np.random.Generator, scene: Scene) -> Intent | None:
    amount = float(int(rng.integers(10, 300)) * 10)
    balance = scene.run("deposit_funds", amount=amount)["new_balance"]
    return Intent(
        f"Deposit {money(amount)} into my account.",
        answer=f"Deposited {money(amount)}; the balance is now {money(balance)}.",
        vague="I want to deposit some money into my account.",
        ask="How much would you like to deposit?",
        supply=f"{money(amount)}.",
    )


@intent(DOMAIN, level=1)
def withdraw(rng: np.random.Generator, scene: Scene) -> Intent | None:
    balance = _account(scene).balance
    if balance < 20:
        return None
    amount = float(int(rng.integers(1, max(2, int(min(balance, 2000) // 10)))) * 10)
    scene.run("withdraw_funds", amount=amount)
    return Intent(f"Withdraw {money(amount)} from my account.", answer=f"Withdrew {money(amount)}.")


@intent(DOMAIN, level=1, missing=True)
def transfer(rng: np.random.Generator, scene: Scene) -> Intent | None:
    balance = _account(scene).balance
    if balance < 20:
        return None
    amount = float(int(rng.integers(1, max(2, int(min(balance, 1500) // 10)))) * 10)
    account = _account_number(rng)
    who = choice(rng, ("my landlord", "my sister", "the plumber", "my business partner"))
    scene.run("transfer_funds", to_account=account, amount=amount)
    return Intent(
        f"Transfer {money(amount)} to {who}'s account {account}.",
        answer=f"Sent {money(amount)} to account {account}.",
        vague=f"Transfer {money(amount)} to {who}.",
        ask=f"What is {who}'s account number?",
        supply=f"It's {account}.",
    )


@intent(DOMAIN, level=1)
def watch_stock(rng: np.random.Generator, scene: Scene) -> Intent | None:
    account = _account(scene)
    options = [s for s in account.stocks if s not in account.watchlist]
    if not options:
        return None
    symbol = choice(rng, options)
    scene.run("add_to_watchlist", symbol=symbol)
    return Intent(f"Add {symbol} to my watchlist.", answer=f"{symbol} is on your watchlist.")


@intent(DOMAIN, level=1)
def unwatch_stock(rng: np.random.Generator, scene: Scene) -> Intent | None:
    watchlist = _account(scene).watchlist
    if not watchlist:
        return None
    symbol = choice(rng, watchlist)
    scene.run("remove_from_watchlist", symbol=symbol)
    return Intent(
        f"Take {symbol} off my watchlist.", answer=f"{symbol} is no longer on your watchlist."
    )


@intent(DOMAIN, level=2, missing=True)
def limit_order(rng: np.random.Generator, scene: Scene) -> Intent | None:
    account = _account(scene)
    symbol = choice(rng, list(account.stocks))
    side = choice(rng, ("buy", "sell"))
    shares = int(rng.integers(1, 50))
    factor = 0.9 if side == "buy" else 1.1
    limit = round(account.stocks[symbol]["price"] * factor, 0)
    if limit <= 0:
        return None
    order = scene.run(
        "place_limit_order", symbol=symbol, side=side, shares=shares, limit_price=float(limit)
    )
    return Intent(
        f"Place a limit order to {side} {shares} shares of {symbol} at {money(limit)}.",
        answer=f"Limit order {order['order_id']} is pending.",
        vague=f"Place a limit order to {side} {shares} shares of {symbol}.",
        ask="What limit price should I use?",
        supply=f"Use a limit of {money(limit)}.",
    )


@intent(DOMAIN, level=2)
def cancel_pending(rng: np.random.Generator, scene: Scene) -> Intent | None:
    pending = [o for o in _account(scene).orders if o["status"] == "pending"]
    counts: dict[str, int] = {}
    for order in pending:
        counts[order["symbol"]] = counts.get(order["symbol"], 0) + 1
    unique = [o for o in pending if counts[o["symbol"]] == 1]
    if not unique:
        return None
    order = choice(rng, unique)
    scene.run("list_orders", status="pending")
    scene.run("cancel_order", order_id=order["order_id"])
    return Intent(
        f"Check my pending orders and cancel the one for {order['symbol']}.",
        answer=f"Cancelled order {order['order_id']} for {order['symbol']}.",
    )


@intent(DOMAIN, level=1)
def account_summary(rng: np.random.Generator, scene: Scene) -> Intent | None:
    summary = scene.run("get_account_summary")
    return Intent(
        "What's my cash balance, and which stocks do I hold?",
        answer=f"Your cash balance is {money(summary['balance'])}; holdings: "
        + (", ".join(f"{k} x{v}" for k, v in summary["holdings"].items()) or "none")
        + ".",
    )


@intent(DOMAIN, level=1)
def recent_transactions(rng: np.random.Generator, scene: Scene) -> Intent | None:
    limit = int(rng.integers(2, 6))
    found = scene.run("list_transactions", limit=limit)["transactions"]
    return Intent(
        f"Show me my last {limit} transactions.",
        answer=f"Here are your {len(found)} most recent transactions.",
    )
