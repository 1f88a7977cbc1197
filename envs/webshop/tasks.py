"""Shopping goals: what the agent is asked to buy, in WebShop's two instruction styles.

A :class:`Goal` names a target product (its asin, title, query and category path, for the
type reward), the attributes and option values the purchase must have, and a price cap.
:func:`make_goal` builds goal ``i`` of a generated catalog from a seeded RNG, in either
style:

* ``human``: free-form requests like the crowd-sourced ones, e.g. "i need a long lasting
  hair spray with a lavender scent, and price lower than 20.00 dollars";
* ``template``: WebShop's synthetic ones, e.g. "Find me long lasting hair spray with
  scent: lavender, and price lower than 20.00 dollars".

The price cap follows the reference: the larger of two draws from the first four
multiples of $10 above the target's price, so many same-type products cost more than the
cap allows. The draw uses the goal's own seed, so prices and
caps are reproducible (the reference draws them unseeded).

Example:
    >>> import numpy as np
    >>> from agentgym.envs.webshop.catalog import GeneratedCatalog
    >>> catalog = GeneratedCatalog(1000, seed=0)
    >>> goal = make_goal(3, np.random.default_rng(3), catalog, style="template")
    >>> goal.instruction_text.startswith("Find me"), goal.price_upper > 0
    (True, True)
    >>> catalog.product(catalog.index_of(goal.asin)).price <= goal.price_upper
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from agentgym.envs.webshop.catalog import Catalog, Product

__all__ = ["GOAL_STYLES", "Goal", "make_goal", "price_cap"]

GOAL_STYLES = ("human", "template", "mixed")

#: No price constraint (the reference's value when no cap is drawn).
NO_PRICE_CAP = 1_000_000.0


@dataclass(frozen=True, slots=True)
class Goal:
    """One instruction with what a perfect purchase must satisfy.

    Attributes:
        id: Task id (``webshop-<index>`` for generated goals).
        asin: The target product's asin.
        instruction_text: The instruction the agent sees.
        attributes: Attributes the purchase must have.
        goal_options: Option values the purchase must have, as ``(option name, value)``
            pairs (the name is ``""`` when the source does not give one).
        price_upper: Highest acceptable price in dollars.
        query: The target's search query (type reward).
        name: The target's title.
        product_category: The target's category path.
        title_nouns: Nouns of the target's title.
        category: The target's top-level category.
        style: ``"human"`` or ``"template"``.
        named_options: Whether the reward compares options with their names, as the
            reference does for goals whose options are a name -> value dict (synthetic
            instructions) but not for a list of values (human instructions); see
            :func:`~agentgym.envs.webshop.judge.goal_option_text`.
        metadata: Extra fields (recorded with trajectories).
    """

    id: str
    asin: str
    instruction_text: str
    attributes: tuple[str, ...]
    goal_options: tuple[tuple[str, str], ...]
    price_upper: float
    query: str
    name: str
    product_category: str
    title_nouns: frozenset[str]
    category: str = ""
    style: str = "human"
    named_options: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def option_values(self) -> tuple[str, ...]:
        """The wanted option values."""
        return tuple(value for _, value in self.goal_options)


def price_cap(price: float, rng: np.random.Generator) -> float:
    """A seeded price cap above ``price``: the larger of two distinct draws from the first
    four multiples of $10 above it (no cap when fewer than two exist below $1000)."""
    ladder = [10.0 * step for step in range(1, 100) if 10.0 * step > price][:4]
    if len(ladder) < 2:
        return NO_PRICE_CAP
    first, second = rng.choice(len(ladder), size=2, replace=False)
    return ladder[max(int(first), int(second))]


def price_text(cap: float) -> str:
    """The instruction's price clause (empty without a cap)."""
    return "" if cap >= NO_PRICE_CAP else f", and price lower than {cap:.2f} dollars"


_HUMAN_OPENINGS = (
    "i need", "i am looking for", "i want", "i'm looking for", "find me", "get me",
    "i would like",
)  # fmt: skip
_OPTION_PHRASES = {
    "color": "in {value} color",
    "size": "in size {value}",
    "scent": "with a {value} scent",
    "flavor": "in {value} flavor",
}


def _is_plural(noun: str) -> bool:
    return noun.endswith("s") and not noun.endswith("ss")


def _article(phrase: str, noun: str) -> str:
    """``"a "``, ``"an "``, or nothing before a plural noun ("i need running shoes")."""
    if _is_plural(noun):
        return ""
    return "an " if phrase[:1] in "aeiou" else "a "


def _option_phrase(name: str, value: str) -> str:
    if value.startswith("pack of"):
        return f"in a {value}"
    return _OPTION_PHRASES.get(name, "with {value} " + name).format(value=value)


def _human_text(attributes: list[str], options: list[tuple[str, str]], noun: str,
                rng: np.random.Generator) -> str:  # fmt: skip
    opening = _HUMAN_OPENINGS[int(rng.integers(len(_HUMAN_OPENINGS)))]
    if rng.random() < 0.5 and attributes:
        text = f"{opening} {_article(attributes[0], noun)}{attributes[0]} {noun}"
        rest = attributes[1:]
    else:
        text = f"{opening} {_article(noun, noun)}{noun}"
        rest = attributes
    if rest:
        joined = rest[0] if len(rest) == 1 else f"{', '.join(rest[:-1])} and {rest[-1]}"
        text += f" that {'are' if _is_plural(noun) else 'is'} {joined}"
    phrases = [_option_phrase(name, value) for name, value in options]
    if phrases:
        text += ", " + " and ".join(phrases)
    return text


def _template_text(attributes: list[str], options: list[tuple[str, str]], noun: str) -> str:
    text = f"Find me {', '.join(attributes)} {noun}" if attributes else f"Find me {noun}"
    option_text = ", and ".join(f"{name}: {value}" for name, value in options)
    return f"{text} with {option_text}" if option_text else text


def make_goal(index: int, rng: np.random.Generator, catalog: Catalog, *, style: str) -> Goal:
    """Goal ``index`` of a generated catalog, drawn with ``rng``.

    Args:
        index: Goal index (the id is ``webshop-<index>``).
        rng: The goal's RNG (seeded from its index).
        catalog: The catalog the target is drawn from.
        style: ``"human"``, ``"template"`` or ``"mixed"`` (either, drawn per goal).
    """
    product = catalog.product(int(rng.integers(len(catalog))))
    if style == "mixed":
        style = "human" if rng.random() < 0.5 else "template"
    count = int(rng.choice([1, 2, 2, 3]))
    chosen = rng.choice(len(product.attributes), size=min(count, len(product.attributes)),
                        replace=False)  # fmt: skip
    attributes = [product.attributes[int(i)] for i in sorted(chosen)]
    options = [
        (name, values[int(rng.integers(len(values)))])
        for name, values in sorted(product.options.items())
    ]
    noun = _noun_phrase(product)
    cap = price_cap(product.price, rng)
    if style == "human":
        text = _human_text(attributes, options, noun, rng)
    else:
        text = _template_text(attributes, options, noun)
    return Goal(
        id=f"webshop-{index}",
        asin=product.asin,
        instruction_text=text + price_text(cap),
        attributes=tuple(attributes),
        goal_options=tuple(options),
        price_upper=cap,
        query=product.query,
        name=product.title,
        product_category=product.product_category,
        title_nouns=product.title_nouns,
        category=product.category,
        style=style,
        named_options=style == "template",
        metadata={"category": product.category, "style": style},
    )


def _noun_phrase(product: Product) -> str:
    """What the instruction calls the product: its query (e.g. "hair spray")."""
    return product.query
