"""WebShop's own text environment, reproduced: ``observation_format="official"``.

The reference (``web_agent_site/envs/web_agent_text_env.py``) renders each page as HTML,
lists the page's visible strings with BeautifulSoup and joins them; its clickables are the
page's buttons, product links and option radio buttons. This module builds the same
strings without a web server, so that an agent trained here sees exactly what it would
see there:

* the same visible strings in the same order, with the reference's quirks: ``Next >`` on
  every results page (also past the last one), ``< Prev`` from page 2 on, prices as Python
  prints the parsed floats (``$12.5``, ``$100.0``), ``Rating: N.A.`` (the reference never
  loads ratings or reviews, so the Reviews page is empty), and the purchase page's full
  text (its hidden debug fields included);
* the ``text`` layout (strings stripped and joined by ``" [SEP] "``) and the
  ``text_rich`` layout (one string per line, ``[button] ... [button_]`` around buttons and
  product ids, ``[clicked button]`` around selected options and visited products, a
  ``You have clicked <value>.`` line per selected option on top);
* the clickables in the reference's order (buttons and product ids, then option values;
  an option value in two groups belongs to the later one) and its action handling: the
  strict parser below, ``search[...]`` on any page, a click only on a listed clickable
  (never ``search``), and an invalid action returns the page unchanged.

Example:
    >>> parse_official_action("click[Buy Now]")
    ('click', 'buy now')
    >>> parse_official_action("Thought: buy.\\nAction: click[buy now]")  # no match on line 1
    ('Thought: buy.\\nAction: click[buy now]', None)
    >>> official_text([Node("WebShop"), Node("Instruction: "), Node("a hat"),
    ...                Node("Search", "button")], "text")
    'WebShop [SEP] Instruction: [SEP] a hat [SEP] Search'
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from agentgym.envs.webshop.catalog import Catalog, Listing, Product
from agentgym.envs.webshop.pages import (
    BACK_TO_SEARCH,
    BUY_NOW,
    NEXT_PAGE,
    PREV_PAGE,
    RESULTS_PER_PAGE,
    SUB_PAGES,
    Button,
    Session,
)

__all__ = [
    "Node",
    "official_done_page",
    "official_kind",
    "official_price_tag",
    "official_text",
    "parse_official_action",
    "render_official",
]

# The reference's parser: ``re.match`` of ``(.+)\[(.+)\]``; ``.`` stops at a newline, the
# groups are greedy (the argument runs to the last "]" of the line) and text after it is
# ignored.
_ACTION = re.compile(r"(.+)\[(.+)\]")

SEARCH_BUTTON = "search"


def parse_official_action(action: str) -> tuple[str, str | None]:
    """``(name, lower-cased argument)`` as the reference parses an action; the argument is
    ``None`` when the action has no ``name[argument]`` form on its first line.

    >>> parse_official_action("search[Red Shoes] please")
    ('search', 'red shoes')
    >>> parse_official_action("Search[x]"), parse_official_action("search[]")
    (('Search', 'x'), ('search[]', None))
    """
    match = _ACTION.match(action)
    if match is None:
        return action, None
    return match.group(1), match.group(2).lower()


@dataclass(frozen=True, slots=True)
class Node:
    """One visible string of a page and what holds it: ``text``, ``button``, ``label``
    (an option value) or ``link`` (a product id)."""

    text: str
    kind: str = "text"


def _data(text: str, kind: str = "text") -> list[Node]:
    """The node a template variable becomes: none when empty, and a whitespace-only string
    collapsed to one newline or space (as BeautifulSoup stores it)."""
    if not text:
        return []
    if not text.strip():
        text = "\n" if "\n" in text else " "
    return [Node(text, kind)]


def official_text(nodes: list[Node], mode: str, clicked_in: str = "",
                  visited: frozenset[str] | set[str] = frozenset()) -> str:  # fmt: skip
    """The observation of a page's nodes in the reference's ``text`` or ``text_rich`` mode.

    Args:
        nodes: The page's visible strings in document order.
        mode: ``"text"`` or ``"text_rich"``.
        clicked_in: Where ``text_rich`` looks for ``"<value>"`` to mark an option clicked
            (the reference searches its page URL, which holds the selected options as JSON).
        visited: Product ids shown as clicked in ``text_rich``.
    """
    shown = [node for node in nodes if node.text != "\n"]
    if mode == "text":
        return " [SEP] ".join(node.text.strip() for node in shown)
    observation = ""
    for node in shown:
        text = node.text
        if node.kind == "button":
            line = f"[button] {text} [button_]"
        elif node.kind == "label":
            if f'"{text}"' in clicked_in:
                line = f"  [clicked button] {text} [clicked button_]"
                observation = f"You have clicked {text}.\n" + observation
            else:
                line = f"  [button] {text} [button_]"
        elif node.kind == "link":
            marker = "clicked button" if text in visited else "button"
            line = f"\n[{marker}] {text} [{marker}_]"
        else:
            line = text
        observation += line + "\n"
    return observation


def official_price_tag(product: Product | Listing) -> str:
    """The price as the reference shows it: ``$`` and Python's float text, or a range."""
    return " to ".join(f"${price}" for price in product.pricing[:2])


def official_kind(button: Button, page: str) -> str:
    """What a click does in the reference, which decides by the label before the element
    (an option value "description" opens the Description page)."""
    label = button.label
    if label == BUY_NOW.lower():
        return "buy"
    if label == BACK_TO_SEARCH:
        return "back"
    if label == NEXT_PAGE and page == "results":
        return "next"
    if label == PREV_PAGE and page != "search":
        return "prev"
    if label in SUB_PAGES:
        return "subpage"
    return button.kind


def render_official(
    session: Session, catalog: Catalog, instruction: str, mode: str
) -> tuple[str, list[Button]]:
    """The reference's observation of ``session`` and its clickables, in order."""
    if session.page == "search":
        nodes = [Node("WebShop"), Node("Instruction: "), *_data(instruction),
                 Node("Search", "button")]  # fmt: skip
        return official_text(nodes, mode), [Button(SEARCH_BUTTON, "search")]
    nodes = [Node("Instruction:"), *_data(instruction), Node("Back to Search", "button")]
    buttons = [Button(BACK_TO_SEARCH, "back")]
    if session.page == "results":
        page = session.results_page
        nodes.append(Node(f"Page {page} (Total results: {len(session.hits)})"))
        if page > 1:
            nodes.append(Node("< Prev", "button"))
            buttons.append(Button(PREV_PAGE, "prev"))
        nodes.append(Node("Next >", "button"))
        buttons.append(Button(NEXT_PAGE, "next"))
        start = (page - 1) * RESULTS_PER_PAGE
        for index in session.hits[max(start, 0) : start + RESULTS_PER_PAGE]:
            product = catalog.listing(index)
            nodes += [*_data(product.asin, "link"), *_data(product.title),
                      *_data(official_price_tag(product))]  # fmt: skip
            buttons.append(Button(product.asin.lower(), "product", index))
        return official_text(nodes, mode, visited=session.visited), buttons
    assert session.product is not None
    product = catalog.product(session.product)
    nodes.append(Node("< Prev", "button"))
    buttons.append(Button(PREV_PAGE, "prev"))
    if session.page == "item":
        return _item(session, product, mode, nodes, buttons)
    if session.page == "description":
        nodes += _data(product.description)
    elif session.page == "features":
        nodes += [node for bullet in product.bullets for node in _data(" " + bullet)]
    return official_text(nodes, mode), buttons  # reviews: the reference loads none


def _item(
    session: Session, product: Product, mode: str, nodes: list[Node], buttons: list[Button]
) -> tuple[str, list[Button]]:
    options: dict[str, Button] = {}
    for name, values in product.options.items():
        nodes += _data(name)
        for value in values:
            nodes += _data(value, "label")
            options[value] = Button(value, "option", (name, value))  # the later group wins
    nodes += [*_data(product.title), Node(f"Price: {official_price_tag(product)}"),
              Node("Rating: N.A.")]  # fmt: skip
    for page in SUB_PAGES:
        nodes.append(Node(page.title(), "button"))
        buttons.append(Button(page, "subpage", page))
    nodes.append(Node("Buy Now", "button"))
    buttons.append(Button(BUY_NOW, "buy"))
    clickable = {button.label: button for button in buttons}
    clickable.update(options)  # an option value equal to a button label replaces it
    # The reference's page URL: ".../<keywords joined by +>/<page>/<options as JSON>".
    url = f"{'+'.join(session.query.split(' '))}/{session.results_page}/"
    url += json.dumps(session.selected)
    return official_text(nodes, mode, clicked_in=url), list(clickable.values())


def _html_safe_json(value: object) -> str:
    """Jinja's ``tojson`` filter as Flask applies it: sorted keys, ASCII, HTML-safe."""
    text = json.dumps(value, sort_keys=True)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("'", "\\u0027")):
        text = text.replace(char, escape)
    return text


def official_done_page(asin: str, selected: dict[str, str], reward: float, mode: str) -> str:
    """The reference's purchase page (its hidden debug fields are visible strings too)."""
    texts = [
        "Thank you for shopping with us!", "Your code: ", "None",
        " (Paste it in your MTurk interface.)", "Purchased", "asin", asin.upper(), "options",
        _html_safe_json(selected), "attrs", "None", "category", "None", "query", "None",
        "product category", "None", "Target", "asin", "options", "attrs", "price upper",
        "instuction text", "category", "product category", "query", "Goal ", "None",
        "Reward", "Your score (min 0.0, max 1.0)", str(reward), "Reward Details ", "None",
    ]  # fmt: skip
    return official_text([Node(text) for text in texts], mode)
