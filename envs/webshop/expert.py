"""WebShop's scripted expert: a good query, a matching item, the right options, buy.

The expert reads the episode's goal and the catalog (privileged knowledge) and acts on the
environment's current page, not on a fixed script, so it also continues correctly from a
state reached by replaying another trajectory's actions (EEF restarts that way).

Its plan: search with the instruction's own words (price clause removed); on the results
pages, open the first product whose best purchase scores 1.0 (turning pages up to
``max_result_pages``); if none is found, search again with the target's title; on the item
page, click the option value matching each requested option, then ``buy now``.

Failure injection (``error_rate``: probability that an episode gets one error, drawn per
episode from ``(seed, episode_seed)``):

* ``bad_query``: the first search uses only the requested attributes (no product type),
  and the expert commits to the first hit that is not a perfect purchase;
* ``wrong_item``: after a good search, open a near-miss (a product scoring below 1.0,
  preferably of the right type) instead of a perfect one;
* ``missed_option``: leave one requested option unselected.

Each injected error makes the purchase score below 1.0 whenever the page offers a
near-miss (always, in practice), so ``error_rate`` is the rate of failed episodes.

Example:
    >>> import gymnasium as gym
    >>> import agentgym
    >>> env = gym.make("agentgym/WebShop-v0", num_products=300, index_cache=False)
    >>> observation, info = env.reset(seed=1)
    >>> expert = env.unwrapped.make_expert()
    >>> expert.reset(env, observation, info)
    >>> done = False
    >>> while not done:
    ...     observation, reward, done, truncated, info = env.step(expert.act(observation, info))
    >>> reward, info["success"]
    (1.0, True)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from agentgym.core.policy import ErrorInjectingExpert
from agentgym.envs.webshop.catalog import Product
from agentgym.envs.webshop.judge import (
    MATCH_THRESHOLD,
    compute_reward,
    goal_option_text,
    normalize_color,
    token_set_ratio,
)
from agentgym.envs.webshop.pages import BACK_TO_SEARCH, BUY_NOW, NEXT_PAGE, PREV_PAGE
from agentgym.envs.webshop.tasks import Goal

__all__ = ["WebShopExpert", "best_options"]

_PRICE_CLAUSE = re.compile(r",?\s*and price lower than [\d.,]+ dollars", re.IGNORECASE)
_OPTION_NAME = re.compile(r"\b[a-z]+:\s*")


def best_options(product: Product, goal: Goal) -> dict[str, str]:
    """The product's option values that match the goal's, option name -> value.

    An identical value wins; otherwise the value with the highest fuzzy score above the
    reward's threshold (so "6.5" is chosen for "6.5", not "6", which also passes), scored
    as the reward scores it (a named goal option with its name).
    """
    chosen: dict[str, str] = {}
    for wanted_name, wanted in goal.goal_options:
        target = goal_option_text(wanted_name, wanted, named=goal.named_options)
        best: tuple[tuple[bool, int], str, str] | None = None
        for name, values in product.options.items():
            if name in chosen:
                continue
            for value in values:
                score = token_set_ratio(normalize_color(value), target)
                key = (value == wanted, score)
                if score > MATCH_THRESHOLD and (best is None or key > best[0]):
                    best = (key, name, value)
        if best is not None:
            chosen[best[1]] = best[2]
    return chosen


def instruction_query(goal: Goal) -> str:
    """Search words from the instruction: price clause and option names removed."""
    text = _PRICE_CLAUSE.sub("", goal.instruction_text.lower())
    return " ".join(_OPTION_NAME.sub(" ", text).split())


class WebShopExpert(ErrorInjectingExpert):
    """Scripted WebShop expert with configurable failure injection.

    The error draws (RNG seeded per episode) are :class:`ErrorInjectingExpert`'s.

    Args:
        error_rate: Probability that an episode gets one injected error.
        error_kinds: Kinds to draw from: ``bad_query``, ``wrong_item``, ``missed_option``.
        seed: Seed of the error draws (mixed with each episode's seed).
        max_result_pages: Results pages looked through before searching again.
    """

    name = "webshop-expert"
    ERROR_KINDS = ("bad_query", "wrong_item", "missed_option")

    def __init__(
        self,
        *,
        error_rate: float = 0.0,
        error_kinds: Sequence[str] = ERROR_KINDS,
        seed: int = 0,
        max_result_pages: int = 3,
    ) -> None:
        if max_result_pages < 1:
            raise ValueError(f"max_result_pages must be >= 1, got {max_result_pages}")
        super().__init__(error_rate=error_rate, error_kinds=error_kinds, seed=seed)
        self.max_result_pages = max_result_pages
        self._env: Any = None
        self._queries: list[str] = []
        self._searched: list[str] = []
        self._skipped_option: int | None = None
        self._committed: int | None = None
        self._scores: dict[int, float] = {}

    def plan_episode(self, env: Any, observation: str, info: Mapping[str, Any]) -> None:
        self._env = env.unwrapped
        self._skipped_option = None
        self._set_queries()
        self._searched = []
        self._committed = None
        self._scores = {}

    def inject_error(self) -> str | None:
        goal: Goal = self._env.goal
        kinds = [k for k in self.error_kinds if k != "missed_option" or goal.goal_options]
        if not kinds:
            return None
        injected = kinds[int(self.rng.integers(len(kinds)))]
        if injected == "missed_option":
            self._skipped_option = int(self.rng.integers(len(goal.goal_options)))
        self._set_queries(bad_query=injected == "bad_query")
        return injected

    def _set_queries(self, *, bad_query: bool = False) -> None:
        goal: Goal = self._env.goal
        queries = [instruction_query(goal), goal.name]
        if bad_query:
            queries.insert(0, " ".join(goal.attributes) or "best seller")
        # As the environment will see them: lower-case, single spaces, no brackets.
        self._queries = [" ".join(re.sub(r"[\[\]]", " ", q).lower().split()) for q in queries]

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        env = self._env
        assert env is not None, "reset() the expert after the environment"
        page = env.session.page
        if page == "search":
            return self._search()
        if page == "results":
            return self._on_results()
        if page == "item":
            return self._on_item()
        return f"click[{PREV_PAGE}]"  # description / features / reviews

    # ---------------------------------------------------------------- pages --

    def _search(self) -> str:
        remaining = [q for q in self._queries if q not in self._searched]
        query = remaining[0] if remaining else self._queries[-1]
        self._searched.append(query)
        return f"search[{query}]"

    def _on_results(self) -> str:
        env = self._env
        hits = [b.argument for b in env.buttons if b.kind == "product"]
        labels = {b.label for b in env.buttons}
        erring = self.injected == "wrong_item" or (
            self.injected == "bad_query" and env.session.query == self._queries[0]
        )
        if erring and hits:
            choice = self._near_miss(hits)
            if choice is not None:
                self._committed = choice
                return self._open(choice)
        perfect = [index for index in hits if self._score(index) == 1.0]
        target = env.shop.catalog.index_of(env.goal.asin)
        if perfect:
            return self._open(target if target in perfect else perfect[0])
        if NEXT_PAGE in labels and env.session.results_page < self.max_result_pages:
            return f"click[{NEXT_PAGE}]"
        if hits and not [q for q in self._queries if q not in self._searched]:
            self._committed = hits[0]  # nothing better was found; buy the top hit
            return self._open(hits[0])
        return f"click[{BACK_TO_SEARCH}]"

    def _on_item(self) -> str:
        env = self._env
        index = env.session.product
        if index != self._committed and self._score(index) < 1.0:
            return f"click[{PREV_PAGE}]"  # not the product to buy (e.g. after a restart)
        product = env.shop.catalog.product(index)
        wanted = best_options(product, env.goal)
        skip = self._skipped_name(product)
        for name, value in wanted.items():
            if name != skip and env.session.selected.get(name) != value:
                return f"click[{value}]"
        return f"click[{BUY_NOW}]"

    # ---------------------------------------------------------------- helpers --

    def _open(self, index: int) -> str:
        return f"click[{self._env.shop.catalog.product(index).asin.lower()}]"

    def _score(self, index: int) -> float:
        """The reward of buying product ``index`` with its best options."""
        if index not in self._scores:
            env = self._env
            product = env.shop.catalog.product(index)
            self._scores[index] = compute_reward(
                product, best_options(product, env.goal), env.goal
            ).reward
        return self._scores[index]

    def _near_miss(self, hits: Sequence[int]) -> int | None:
        env = self._env
        misses = [index for index in hits if self._score(index) < 1.0]
        same_type = [
            index for index in misses
            if env.shop.catalog.product(index).query == env.goal.query
        ]  # fmt: skip
        return (same_type or misses or [None])[0]

    def _skipped_name(self, product: Product) -> str | None:
        if self._skipped_option is None:
            return None
        goal = self._env.goal
        wanted_name, wanted = goal.goal_options[self._skipped_option]
        target = goal_option_text(wanted_name, wanted, named=goal.named_options)
        for name, value in best_options(product, goal).items():
            if token_set_ratio(normalize_color(value), target) > MATCH_THRESHOLD:
                return name
        return None
