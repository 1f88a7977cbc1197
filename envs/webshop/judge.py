"""WebShop's reward for a purchase: type, attribute, option and price terms.

::

    reward = (n_attributes_matched + n_options_matched + price_ok)
             / (n_goal_attributes + n_goal_options + 1) * r_type

* ``r_type`` (is it the right kind of product?) is 1.0, lowered to 0.5 when the query, the
  category (>= 2 shared path levels) and the title nouns (> 20% overlap) all differ, to 0.1
  when under 10% of the goal title's nouns are in the bought title, and to 0 with none.
* A goal attribute matches when its fuzzy token-set ratio with a product attribute is
  above 85, or when it appears in the title, the bullet points or the description.
* A goal option matches a selected option by the same fuzzy test, colours normalised first
  (see :func:`goal_option_text` for how a named goal option is compared, as the reference
  does).
* ``price_ok`` is 1 when the price paid is at most the goal's ``price_upper``.

The fuzzy ratio is ``thefuzz.fuzz.token_set_ratio`` (which runs on ``rapidfuzz``): strings
with the Latin-1 characters deleted (``force_ascii``), lower-cased, every other
non-alphanumeric character a space; then the token-set comparison with the indel
similarity (a bit-parallel longest common subsequence here, so no dependency is needed),
rounded to an integer.

Example:
    >>> token_set_ratio("natural looking", "looking natural")
    100
    >>> token_set_ratio("dry skin", "dry hair")
    62
    >>> normalize_color("dark navy blue")
    'blue'
    >>> goal_option_text("size", "8 fl oz", named=True)
    "('size', '8 fl oz')"
    >>> option_matches(["4 fl oz"], [("size", "8 fl oz")], named=True)
    0
    >>> option_matches(["4 fl oz"], [("size", "8 fl oz")], named=False)  # "4 fl oz" ~ "8 fl oz"
    1
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from agentgym.envs.webshop.catalog import Product
from agentgym.envs.webshop.tasks import Goal

__all__ = [
    "COLOR_WORDS",
    "RewardBreakdown",
    "attribute_matches",
    "compute_reward",
    "fuzzy_ratio",
    "goal_option_text",
    "normalize_color",
    "option_matches",
    "token_set_ratio",
    "type_reward",
]

#: The fuzzy score an attribute or option must exceed to count as matched.
MATCH_THRESHOLD = 85

#: Characters ``thefuzz`` deletes before matching (``force_ascii``: code points 128-255).
_LATIN1 = dict.fromkeys(range(128, 256))
_NON_ALNUM = re.compile(r"[\W_]+")

#: WebShop's colour words in the order its normaliser scans them: an option becomes the
#: first word of this list that occurs in it, as a substring and case-sensitively, as in
#: the reference ("dark navy blue" -> "blue", "standard" -> "tan", "Grey" unchanged).
COLOR_WORDS: tuple[str, ...] = (
    "alabaster", "apricot", "aqua", "ash", "asphalt", "azure", "banana", "beige", "black",
    "blue", "blush", "bordeaux", "bronze", "brown", "burgundy", "camel", "camo", "caramel",
    "champagne", "charcoal", "cheetah", "chestnut", "chocolate", "christmas", "coffee",
    "cognac", "copper", "coral", "cranberry", "cream", "crystal", "dark", "denim",
    "eggplant", "elephant", "espresso", "fuchsia", "gold", "granite", "grape", "graphite",
    "grass", "gray", "green", "grey", "heather", "indigo", "ivory", "ivy", "khaki",
    "lavender", "lemon", "leopard", "light", "lilac", "lime", "magenta", "maroon", "mauve",
    "merlot", "midnight", "mint", "mocha", "multicolor", "mushroom", "mustard", "natural",
    "navy", "nude", "olive", "orange", "peach", "pewter", "pink", "plum", "purple",
    "rainbow", "red", "rose", "royal", "rust", "sand", "sapphire", "seashell", "silver",
    "skull", "slate", "steel", "stone", "stonewash", "sunflower", "tan", "taupe", "teal",
    "tiger", "turquoise", "violet", "walnut", "wheat", "white", "wine", "yellow",
)  # fmt: skip


def _process(text: str) -> str:
    """``thefuzz``'s preprocessing: Latin-1 deleted, lower-cased, non-alphanumerics spaced."""
    return _NON_ALNUM.sub(" ", text.translate(_LATIN1).lower()).strip()


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
    """The first of :data:`COLOR_WORDS` that occurs in ``option``, else ``option``.

    >>> normalize_color("navy blue heather"), normalize_color("standard"), normalize_color("Grey")
    ('blue', 'tan', 'Grey')
    """
    for color in COLOR_WORDS:
        if color in option:
            return color
    return option


def goal_option_text(name: str, value: str, *, named: bool) -> str:
    """What a goal option is compared with, as in the reference.

    A goal option without a name (human instructions: a list of values) is the value with
    its colour normalised. A named one (synthetic instructions: a dict, whose ``items()``
    the reference passes on) is the ``(name, value)`` pair itself: the colour scan tests
    whether a colour word *equals* the name or the value, and otherwise the fuzzy matcher
    reads the pair's ``str()``, so the option name takes part in the match
    ("size 8 fl oz" against "4 fl oz" scores 83, below the threshold).

    >>> goal_option_text("color", "navy blue", named=True)
    "('color', 'navy blue')"
    >>> goal_option_text("color", "black", named=True)
    'black'
    >>> goal_option_text("", "navy blue", named=False)
    'blue'
    """
    if not named:
        return normalize_color(value)
    for color in COLOR_WORDS:
        if color in (name, value):
            return color
    return str((name, value))


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
    # As the reference: exact query and path-level comparisons (its loader lower-cases
    # and strips queries; path levels keep their case).
    query_match = product.query == goal.query
    bought_path = {part.strip() for part in product.product_category.split("›")}
    goal_path = {part.strip() for part in goal.product_category.split("›")}
    category_match = len(bought_path & goal_path) >= 2
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


def option_matches(
    selected: Iterable[str], wanted: Iterable[tuple[str, str]], *, named: bool
) -> int:
    """How many wanted ``(name, value)`` options match a selected value (fuzzy score above
    :data:`MATCH_THRESHOLD`, colours normalised; see :func:`goal_option_text`)."""
    selected = [normalize_color(value) for value in selected]
    matched = 0
    for name, value in wanted:
        goal_text = goal_option_text(name, value, named=named)
        if any(token_set_ratio(have, goal_text) > MATCH_THRESHOLD for have in selected):
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
    goal_values = list(goal.goal_options)
    n_attributes = attribute_matches(product, goal.attributes)
    n_options = option_matches(selected.values(), goal_values, named=goal.named_options)
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
