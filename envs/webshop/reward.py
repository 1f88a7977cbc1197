"""WebShop's reward for a purchase: type, attribute, option and price terms.

::

    reward = (n_attributes_matched + n_options_matched + price_ok)
             / (n_goal_attributes + n_goal_options + 1) * r_type

* ``r_type`` (is it the right kind of product?) is 1.0, lowered to 0.5 when the query, the
  category (>= 2 shared path levels) and the title nouns (> 20% overlap) all differ, to 0.1
  when under 10% of the goal title's nouns are in the bought title, and to 0 with none.
* A goal attribute matches when its fuzzy token-set ratio with a product attribute is
  above 85, or when it appears in the title, the bullet points or the description.
* A goal option matches a selected option by the same fuzzy test, colours normalised first.
* ``price_ok`` is 1 when the price paid is at most the goal's ``price_upper``.

The fuzzy ratio is the token-set ratio of ``thefuzz``/``rapidfuzz`` (lower-cased,
punctuation-free tokens; rounded to an integer), implemented here with a bit-parallel
longest-common-subsequence so that no extra dependency is needed.

Example:
    >>> token_set_ratio("natural looking", "looking natural")
    100
    >>> token_set_ratio("dry skin", "dry hair")
    62
    >>> normalize_color("dark navy blue")
    'navy'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from agentgym.envs.webshop.catalog import Product
from agentgym.envs.webshop.goals import Goal

__all__ = [
    "COLOR_WORDS",
    "RewardBreakdown",
    "attribute_matches",
    "compute_reward",
    "fuzzy_ratio",
    "normalize_color",
    "option_matches",
    "token_set_ratio",
    "type_reward",
]

#: The fuzzy score an attribute or option must exceed to count as matched.
MATCH_THRESHOLD = 85

_NON_ALNUM = re.compile(r"[^0-9a-z]+")

#: Colour words an option is reduced to before fuzzy matching ("dark navy blue" and
#: "navy" both become "navy"); checked in this order, first whole-word hit wins.
COLOR_WORDS: tuple[str, ...] = (
    "navy", "burgundy", "beige", "ivory", "khaki", "teal", "olive", "coral", "plum", "nude",
    "walnut", "oak", "black", "white", "gray", "grey", "silver", "gold", "red", "pink",
    "purple", "yellow", "orange", "green", "blue", "brown", "multicolor", "natural",
)  # fmt: skip
_COLOR_SET = frozenset(COLOR_WORDS)


def _process(text: str) -> str:
    return _NON_ALNUM.sub(" ", text.lower()).strip()


def _lcs_length(a: str, b: str) -> int:
    """Length of the longest common subsequence (bit-parallel, one pass over ``b``)."""
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for position, char in enumerate(a):
        masks[char] = masks.get(char, 0) | (1 << position)
    full = (1 << len(a)) - 1
    row = full
    for char in b:
        matches = row & masks.get(char, 0)
        row = ((row + matches) | (row - matches)) & full
    return len(a) - row.bit_count()


def fuzzy_ratio(a: str, b: str) -> float:
    """Indel similarity in [0, 100]: ``200 * LCS / (len(a) + len(b))``.

    >>> fuzzy_ratio("abc", "abd")
    66.66666666666667
    """
    total = len(a) + len(b)
    return 100.0 if total == 0 else 200.0 * _lcs_length(a, b) / total


def token_set_ratio(a: str, b: str) -> int:
    """Fuzzy similarity of two phrases that ignores word order and repeated words."""
    tokens_a, tokens_b = set(_process(a).split()), set(_process(b).split())
    if not tokens_a or not tokens_b:
        return 0
    common = tokens_a & tokens_b
    only_a, only_b = tokens_a - tokens_b, tokens_b - tokens_a
    if common and (not only_a or not only_b):
        return 100
    common_text = " ".join(sorted(common))
    with_a = " ".join(filter(None, (common_text, " ".join(sorted(only_a)))))
    with_b = " ".join(filter(None, (common_text, " ".join(sorted(only_b)))))
    scores = [fuzzy_ratio(with_a, with_b)]
    if common_text:
        scores += [fuzzy_ratio(common_text, with_a), fuzzy_ratio(common_text, with_b)]
    return round(max(scores))


def normalize_color(option: str) -> str:
    """The first colour word of ``option`` (in :data:`COLOR_WORDS` order), else ``option``."""
    words = set(_process(option).split())
    for color in COLOR_WORDS:
        if color in words:
            return color
    return option


@dataclass(frozen=True, slots=True)
class RewardBreakdown:
    """The reward of a purchase and every term that went into it."""

    reward: float
    r_type: float
    query_match: bool
    category_match: bool
    title_score: float
    r_attribute: float | None
    attributes_matched: int
    r_option: float | None
    options_matched: int
    r_price: bool
    num_attributes: int
    num_options: int

    def as_dict(self) -> dict[str, float | int | bool | None]:
        """The fields as a plain dict (``info["reward_components"]``)."""
        return asdict(self)


def type_reward(product: Product, goal: Goal) -> tuple[float, bool, bool, float]:
    """``(r_type, query_match, category_match, title_score)`` of buying ``product``."""
    query_match = product.query.strip().lower() == goal.query.strip().lower()
    bought_path = {part.strip().lower() for part in product.product_category.split("›")}
    goal_path = {part.strip().lower() for part in goal.product_category.split("›")}
    category_match = len((bought_path & goal_path) - {""}) >= 2
    if goal.title_nouns:
        title_score = len(product.title_nouns & goal.title_nouns) / len(goal.title_nouns)
    else:
        title_score = 0.2  # as the reference: no nouns to compare, neither match nor miss
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return r_type, query_match, category_match, title_score


def attribute_matches(product: Product, attributes: Iterable[str]) -> int:
    """How many goal attributes the product has (fuzzy attribute match or text mention)."""
    title = product.title.lower()
    bullets = " ".join(product.bullets).lower()
    description = product.description.lower()
    matched = 0
    for wanted in attributes:
        mentioned = wanted in title or wanted in bullets or wanted in description
        if mentioned or any(
            token_set_ratio(have, wanted) > MATCH_THRESHOLD for have in product.attributes
        ):
            matched += 1
    return matched


def option_matches(selected: Iterable[str], wanted: Iterable[str]) -> int:
    """How many wanted option values are among the selected ones (fuzzy, colours normalised)."""
    selected = [normalize_color(value) for value in selected]
    matched = 0
    for goal_value in wanted:
        goal_value = normalize_color(goal_value)
        if any(token_set_ratio(value, goal_value) > MATCH_THRESHOLD for value in selected):
            matched += 1
    return matched


def compute_reward(product: Product, selected: Mapping[str, str], goal: Goal) -> RewardBreakdown:
    """The reward of buying ``product`` with options ``selected`` for ``goal``.

    Args:
        product: The bought product (its ``price`` is what was paid).
        selected: Selected options, option name -> value.
        goal: The goal (instruction) of the episode.
    """
    r_type, query_match, category_match, title_score = type_reward(product, goal)
    goal_values = list(goal.option_values)
    n_attributes = attribute_matches(product, goal.attributes)
    n_options = option_matches(selected.values(), goal_values)
    r_price = product.price <= goal.price_upper
    denominator = len(goal.attributes) + len(goal_values) + 1
    reward = (n_attributes + n_options + int(r_price)) / denominator * r_type
    return RewardBreakdown(
        reward=reward,
        r_type=r_type,
        query_match=query_match,
        category_match=category_match,
        title_score=title_score,
        r_attribute=n_attributes / len(goal.attributes) if goal.attributes else None,
        attributes_matched=n_attributes,
        r_option=n_options / len(goal_values) if goal_values else None,
        options_matched=n_options,
        r_price=bool(r_price),
        num_attributes=len(goal.attributes),
        num_options=len(goal_values),
    )
