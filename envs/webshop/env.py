"""``agentgym/WebShop-v0``: shop for an instruction with ``search[...]`` and ``click[...]``.

Example:
    >>> import gymnasium as gym
    >>> import agentgym
    >>> env = gym.make("agentgym/WebShop-v0", num_products=300, index_cache=False)
    >>> observation, info = env.reset(seed=0)
    >>> observation.startswith("WebShop [SEP] Instruction: [SEP] ")
    True
    >>> info["available_actions"]
    {'has_search_bar': True, 'clickables': []}
    >>> observation, reward, terminated, truncated, info = env.step("click[buy now]")
    >>> info["action_valid"], reward, terminated
    (False, 0.0, False)
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from agentgym.core.env import Evaluation, TextEnv, Transition
from agentgym.core.registry import check_choice
from agentgym.envs.webshop.expert import WebShopExpert
from agentgym.envs.webshop.judge import RewardBreakdown, compute_reward
from agentgym.envs.webshop.official import (
    official_done_page,
    official_kind,
    parse_official_action,
    render_official,
)
from agentgym.envs.webshop.pages import Button, Session, render
from agentgym.envs.webshop.store import SPLITS, Shop, get_shop
from agentgym.envs.webshop.tasks import GOAL_STYLES, Goal

__all__ = ["OBSERVATION_FORMATS", "OBSERVATION_MODES", "WebShopEnv", "parse_action"]

OBSERVATION_MODES = ("text", "text_rich")
#: ``agentgym``: this package's pages and lenient actions with explanatory errors;
#: ``official``: WebShop's own text environment (see :mod:`~agentgym.envs.webshop.official`).
OBSERVATION_FORMATS = ("agentgym", "official")

SYSTEM_PROMPT = (
    "You are shopping on WebShop for the user. The page shows the instruction and what you "
    "can do. Answer each turn with exactly one action:\n"
    "- search[keywords] on a page with a search bar;\n"
    "- click[button] with a button shown on the page: a product id (e.g. click[b0abc12345]), "
    "an option value, next >, < prev, back to search, description, features, reviews or "
    "buy now.\n"
    "Search with the product type and its key features, open a matching product, click "
    "every option the instruction asks for, then click[buy now]. Buying ends the episode "
    "and is scored on how well the product matches the instruction (1.0 = perfect)."
)
OFFICIAL_SYSTEM_PROMPT = (
    "You are shopping on WebShop for the user. Answer each turn with exactly one action: "
    "search[keywords] (on any page) or click[button] with a clickable shown on the page "
    "(a product id, an option value, next >, < prev, back to search, description, "
    "features, reviews or buy now). Open a matching product, click every option the "
    "instruction asks for, then click[buy now]; buying ends the episode and is scored on "
    "how well the product matches the instruction (1.0 = perfect)."
)

_EXACT_ACTION = re.compile(r"^\s*(search|click)\s*\[(.*)\]\s*$", re.IGNORECASE | re.DOTALL)
_ANY_ACTION = re.compile(r"(search|click)\s*\[([^\[\]]*)\]", re.IGNORECASE)


def parse_action(action: str) -> tuple[str, str] | None:
    """``(verb, lower-cased argument)`` of an action, or ``None`` when there is none.

    The whole text may be the action, or the action may follow a thought ("Thought: ...
    Action: click[buy now]"), in which case the last well-formed action counts.

    >>> parse_action("search[Red Shoes]")
    ('search', 'red shoes')
    >>> parse_action("Thought: buy it.\\nAction: click[Buy Now]")
    ('click', 'buy now')
    >>> parse_action("search[") is None
    True
    """
    match = _EXACT_ACTION.match(action)
    if match is None:
        found = list(_ANY_ACTION.finditer(action))
        if not found:
            return None
        match = found[-1]
    return match.group(1).lower(), " ".join(match.group(2).split()).lower()


class WebShopEnv(TextEnv):
    """Web shopping: find, configure and buy the product an instruction asks for.

    ## Description
    WebShop (Yao et al., 2022) over a seeded synthetic catalog (or the original data files).
    The agent reads an instruction ("i need a long lasting hair spray with a lavender scent,
    and price lower than 20.00 dollars"), searches the catalog (BM25, top 50 hits, 10 per
    page), opens products, selects options and buys one. Pages: search, results, item,
    and the item's Description / Features / Reviews.

    ## Action Space
    Text: ``search[keywords]`` (only where there is a search bar) or ``click[button]``
    naming a current clickable (``info["available_actions"]["clickables"]``); arguments
    are lower-cased. A thought before the action is allowed; the last action counts.
    Invalid actions leave the page unchanged, give reward 0 and say what was wrong.

    ## Observation Space
    Text: the page's visible strings joined by ``" [SEP] "`` (``observation_mode="text"``)
    or with ``[button] ... [button_]`` markers (``"text_rich"``). With
    ``observation_format="official"``, observations, clickables and action handling are
    those of WebShop's own text environment (search on any page, ``Next >`` on every
    results page, a strict action parser, invalid actions return the page unchanged with
    no message); see :mod:`agentgym.envs.webshop.official`.

    ## Rewards
    Only ``click[buy now]`` is rewarded: WebShop's formula (attribute, option and price
    terms times the type term, see :mod:`agentgym.envs.webshop.judge`), in [0, 1]; the
    components are in ``info["reward_components"]`` and ``info["verdicts"]``.

    ## Episode End
    Terminated by ``click[buy now]``; truncated at ``max_episode_steps`` (15).
    ``info["success"]`` is True when the reward is 1.0.

    ## Arguments
    * ``split``: ``"train"`` (10,000 generated goals) or ``"test"`` (500 disjoint goals).
    * ``num_products``: catalog size (default 10,000); with ``data_dir``, how many of the
      file's products to read (``None``: all).
    * ``catalog_seed``: seed of the generated catalog and its goals.
    * ``data_dir``: directory with WebShop's ``items_shuffle*.json``,
      ``items_ins_v2*.json`` and (optional) ``items_human_ins.json``.
    * ``goal_style``: ``"human"``, ``"template"`` or ``"mixed"``.
    * ``num_goals``: use only the first ``num_goals`` goals of the split.
    * ``observation_mode``: ``"text"`` or ``"text_rich"``.
    * ``observation_format``: ``"agentgym"`` (default) or ``"official"``.
    * ``index_cache``: keep the search index in the disk cache (memory-mapped, shared by
      processes); ``False`` builds it in memory.

    ## Version History
    * v0: initial version.
    """

    def __init__(
        self,
        *,
        split: str = "train",
        num_products: int | None = 10_000,
        catalog_seed: int = 0,
        data_dir: str | None = None,
        goal_style: str = "mixed",
        num_goals: int | None = None,
        observation_mode: str = "text",
        observation_format: str = "agentgym",
        index_cache: bool = True,
        max_observation_length: int = 8192,
        max_action_length: int = 2048,
        render_mode: str | None = None,
    ) -> None:
        check_choice("split", split, list(SPLITS))
        check_choice("goal_style", goal_style, list(GOAL_STYLES))
        check_choice("observation_mode", observation_mode, list(OBSERVATION_MODES))
        check_choice("observation_format", observation_format, list(OBSERVATION_FORMATS))
        if num_goals is not None and num_goals < 1:
            raise ValueError(f"num_goals must be >= 1 or None, got {num_goals}")
        super().__init__(
            max_observation_length=max_observation_length,
            max_action_length=max_action_length,
            render_mode=render_mode,
        )
        self.shop: Shop = get_shop(
            num_products=num_products, seed=catalog_seed, data_dir=data_dir,
            index_cache=index_cache,
        )  # fmt: skip
        self.tasks = self.shop.goals(split, goal_style, num_goals)
        self.split = split
        self.observation_mode = observation_mode
        self.official = observation_format == "official"
        self.session = Session()
        self.task: Goal | None = None
        self._buttons: list[Button] = []
        self._page_text = ""
        self._result: RewardBreakdown | None = None

    # ------------------------------------------------------------------ hooks --

    def _start(self, task: Goal) -> tuple[str, dict[str, Any]]:
        self.session = Session()
        self._result = None
        self._refresh()
        prompt = OFFICIAL_SYSTEM_PROMPT if self.official else SYSTEM_PROMPT
        return self._page_text, {"system_prompt": prompt, **self._page_info()}

    def _act(self, action: str) -> Transition:
        if self.official:
            return self._act_official(action)
        parsed = parse_action(action)
        if parsed is None:
            return self._reject(
                f"expected search[keywords] or click[button], got {_quote(action)}."
            )
        verb, argument = parsed
        if verb == "search":
            if self.session.page != "search":
                return self._reject(
                    "there is no search bar on this page; click[back to search] first."
                )
            if not argument:
                return self._reject("the search query is empty; write search[keywords].")
            return self._search(argument)
        if self.session.page == "search":
            return self._reject("this page has no buttons; use search[keywords].")
        button = next((b for b in self._buttons if b.label == argument), None)
        if button is None:
            return self._reject(self._unknown_button(argument))
        return self._click(button)

    def _act_official(self, action: str) -> Transition:
        """WebShop's own action handling: anything else leaves the page as it was."""
        name, argument = parse_official_action(action)
        if name == "search" and argument:
            return self._search(argument)
        if name == "click" and argument is not None and argument != "search":
            button = next((b for b in self._buttons if b.label == argument), None)
            if button is not None:
                kind = official_kind(button, self.session.page)
                argument = button.label if kind == "subpage" else button.argument
                return self._click(Button(button.label, kind, argument))
        # The reference answers an invalid action with the unchanged page and no message;
        # the reason is still in info["feedback"].
        reason = (
            f"expected search[keywords] or click[clickable], got {_quote(action)}."
            if name not in ("search", "click") or argument is None
            else f"{_quote(argument)} is not a clickable of this page."
        )
        return Transition(observation=self._page_text, action_valid=False,
                          feedback=f"Invalid action: {reason}", info=self._page_info())  # fmt: skip

    def make_expert(self, **kwargs: Any) -> WebShopExpert:
        """The scripted expert with optional failure injection (see :class:`WebShopExpert`)."""
        return WebShopExpert(**kwargs)

    def evaluate(self) -> Evaluation:
        """An episode that did not buy anything scores 0 (as in WebShop)."""
        if self._result is not None:
            return _evaluation(self._result)
        return Evaluation(success=False, reward=0.0, verdicts={"bought": False},
                          feedback="Nothing was bought.", progress=0.0)  # fmt: skip

    # ------------------------------------------------------------------ pages --

    @property
    def goal(self) -> Goal:
        """The current episode's goal."""
        assert self.task is not None, "reset() first"
        return self.task

    @property
    def buttons(self) -> list[Button]:
        """The clickables of the current page."""
        return list(self._buttons)

    def _refresh(self) -> None:
        draw = render_official if self.official else render
        self._page_text, self._buttons = draw(
            self.session, self.shop.catalog, self.goal.instruction_text, self.observation_mode
        )

    def _page_info(self) -> dict[str, Any]:
        return {
            "available_actions": {
                "has_search_bar": self.session.page == "search",
                "clickables": [button.label for button in self._buttons],
            },
            "page": self.session.page,
        }

    def _moved(self, feedback: str) -> Transition:
        self._refresh()
        return Transition(observation=self._page_text, feedback=feedback, info=self._page_info())

    def _reject(self, reason: str) -> Transition:
        page = self.session.page
        clickables = ", ".join(b.label for b in self._buttons)
        valid = "search[keywords]" if page == "search" else f"click[...] with one of: {clickables}"
        message = f"Invalid action: {reason} Valid actions on this page: {valid}."
        return Transition(
            observation=f"{message}\n\n{self._page_text}",
            action_valid=False,
            feedback=message,
            info=self._page_info(),
        )

    def _unknown_button(self, label: str) -> str:
        labels = [b.label for b in self._buttons]
        close = difflib.get_close_matches(label, labels, n=1)
        hint = f" Did you mean click[{close[0]}]?" if close else ""
        return f"{_quote(label)} is not a button on this page.{hint}"

    def _search(self, query: str) -> Transition:
        session = self.session
        session.page, session.query = "results", query
        session.hits = self.shop.index.search(query)
        session.results_page, session.product, session.searches = 1, None, session.searches + 1
        session.selected = {}
        return self._moved(f"Searched for {_quote(query)}: {len(session.hits)} results.")

    def _click(self, button: Button) -> Transition:
        session = self.session
        if button.kind == "back":
            session.page, session.product, session.selected = "search", None, {}
            session.visited = set()
            return self._moved("Back to the search page.")
        if button.kind == "next":
            session.results_page += 1
            return self._moved(f"Results page {session.results_page}.")
        if button.kind == "prev":
            if session.page == "results":
                session.results_page -= 1
            elif session.page == "item":
                session.page, session.product, session.selected = "results", None, {}
            else:
                session.page = "item"
            return self._moved(f"Back to the {session.page} page.")
        if button.kind == "product":
            session.page, session.product, session.selected = "item", int(button.argument), {}
            session.visited.add(button.label.upper())
            return self._moved(f"Opened product {button.label}.")
        if button.kind == "option":
            name, value = button.argument  # type: ignore[misc]
            session.selected[name] = value
            session.page = "item"
            return self._moved(f"Selected {name}: {value}.")
        if button.kind == "subpage":
            session.page = str(button.argument)
            return self._moved(f"Opened the {session.page} page.")
        return self._buy()

    def _buy(self) -> Transition:
        assert self.session.product is not None
        product = self.shop.catalog.product(self.session.product)
        result = compute_reward(product, self.session.selected, self.goal)
        self._result = result
        evaluation = _evaluation(result)
        if self.official:
            observation = official_done_page(
                product.asin, self.session.selected, result.reward, self.observation_mode
            )
        else:
            score = f"Your score (min 0.0, max 1.0): {result.reward:.4f}"
            observation = " [SEP] ".join(
                ("Thank you for shopping with us!", score, evaluation.feedback)
            )
        return Transition(
            observation=observation,
            reward=result.reward,
            terminated=True,
            feedback=evaluation.feedback,
            progress=result.reward,
            evaluation=evaluation,
            info={
                "reward_components": result.as_dict(),
                "page": "done",
                "available_actions": {"has_search_bar": False, "clickables": []},
                "purchased": product.asin,
            },
        )


def _evaluation(result: RewardBreakdown) -> Evaluation:
    problems = []
    if result.r_type < 1.0:
        problems.append(f"wrong kind of product (type score {result.r_type})")
    if result.attributes_matched < result.num_attributes:
        problems.append(
            f"{result.attributes_matched}/{result.num_attributes} requested attributes matched"
        )
    if result.options_matched < result.num_options:
        problems.append(f"{result.options_matched}/{result.num_options} requested options selected")
    if not result.r_price:
        problems.append("the price is above the limit")
    success = abs(result.reward - 1.0) < 1e-9
    feedback = (
        "A perfect match." if success else "Not a perfect match: " + "; ".join(problems) + "."
    )
    verdicts = {"bought": True, **result.as_dict()}
    return Evaluation(success=success, reward=result.reward, verdicts=verdicts,
                      feedback=feedback, progress=result.reward)  # fmt: skip


def _quote(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
