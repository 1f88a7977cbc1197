"""WebShop's pages as text: the state of one browsing session and how each page reads.

A session is on one of six pages: ``search`` (the start), ``results`` (10 hits per page of
the top 50), ``item`` (a product with its option groups), and the item's ``description``,
``features`` and ``reviews`` sub-pages. :func:`render` turns the session into the
observation and the list of buttons the agent may click.

Two observation modes, as in WebShop:

* ``text``: the visible strings joined by ``" [SEP] "``;
* ``text_rich``: the same with ``[button] ... [button_]`` around clickables and
  ``[clicked button] ... [clicked button_]`` around selected options.

Example:
    >>> from agentgym.envs.webshop.catalog import GeneratedCatalog
    >>> session = Session()
    >>> text, buttons = render(session, GeneratedCatalog(10), "i need a hat", "text")
    >>> text
    'WebShop [SEP] Instruction: [SEP] i need a hat [SEP] Search'
    >>> buttons
    []
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agentgym.envs.webshop.catalog import Catalog, Product

__all__ = ["PAGES", "RESULTS_PER_PAGE", "Button", "Session", "render"]

PAGES = ("search", "results", "item", "description", "features", "reviews")
RESULTS_PER_PAGE = 10
SEP = " [SEP] "

BACK_TO_SEARCH = "back to search"
NEXT_PAGE = "next >"
PREV_PAGE = "< prev"
BUY_NOW = "buy now"
SUB_PAGES = ("description", "features", "reviews")


@dataclass(frozen=True, slots=True)
class Button:
    """A clickable: its lower-case label, what it does, and its argument.

    ``kind`` is one of ``back``, ``next``, ``prev``, ``product`` (argument: product index),
    ``option`` (argument: ``(option name, value)``), ``subpage`` (argument: page name),
    ``buy``.
    """

    label: str
    kind: str
    argument: object = None


@dataclass(slots=True)
class Session:
    """The browsing state of one episode.

    Attributes:
        page: One of :data:`PAGES`.
        query: The last search query.
        hits: Product indices of the last search, best first.
        results_page: 1-based page of ``hits`` being shown.
        product: Index of the product being viewed.
        selected: Options selected on the item page, option name -> value.
        searches: How many searches were made in the episode.
        visited: Product ids (upper-case) opened since the last ``back to search`` (the
            official ``text_rich`` layout marks them clicked on results pages).
    """

    page: str = "search"
    query: str = ""
    hits: tuple[int, ...] = ()
    results_page: int = 1
    product: int | None = None
    selected: dict[str, str] = field(default_factory=dict)
    searches: int = 0
    visited: set[str] = field(default_factory=set)

    def snapshot(self) -> tuple:
        """A hashable copy of the state (tests compare sessions with it)."""
        return (self.page, self.query, self.hits, self.results_page, self.product,
                tuple(sorted(self.selected.items())), self.searches,
                tuple(sorted(self.visited)))  # fmt: skip


def _mark(label: str, mode: str, *, clicked: bool = False) -> str:
    if mode != "text_rich":
        return label
    return (
        f"[clicked button] {label} [clicked button_]" if clicked else f"[button] {label} [button_]"
    )


def render(
    session: Session, catalog: Catalog, instruction: str, mode: str
) -> tuple[str, list[Button]]:
    """The observation of ``session`` and the buttons it shows."""
    if session.page == "search":
        return SEP.join(("WebShop", "Instruction:", instruction, _mark("Search", mode))), []
    header = ["Instruction:", instruction, _mark("Back to Search", mode)]
    buttons = [Button(BACK_TO_SEARCH, "back")]
    if session.page == "results":
        return _results(session, catalog, mode, header, buttons)
    assert session.product is not None
    product = catalog.product(session.product)
    header.append(_mark("< Prev", mode))
    buttons.append(Button(PREV_PAGE, "prev"))
    if session.page == "item":
        return _item(session, product, mode, header, buttons)
    if session.page == "description":
        body = [product.description or "(no description)"]
    elif session.page == "features":
        body = list(product.bullets) or ["(no features listed)"]
    else:
        body = [
            part
            for review in product.reviews
            for part in (review.title, f"{review.score} out of 5 stars", review.body)
        ]
        body = body or ["No reviews yet."]  # fmt: skip
    return SEP.join(header + body), buttons


def _results(
    session: Session, catalog: Catalog, mode: str, parts: list[str], buttons: list[Button]
) -> tuple[str, list[Button]]:
    total = len(session.hits)
    parts.append(f"Page {session.results_page} (Total results: {total})")
    if session.results_page > 1:
        parts.append(_mark("< Prev", mode))
        buttons.append(Button(PREV_PAGE, "prev"))
    if session.results_page * RESULTS_PER_PAGE < total:
        parts.append(_mark("Next >", mode))
        buttons.append(Button(NEXT_PAGE, "next"))
    start = (session.results_page - 1) * RESULTS_PER_PAGE
    for index in session.hits[start : start + RESULTS_PER_PAGE]:
        product = catalog.listing(index)
        parts += [_mark(product.asin, mode), product.title, product.price_tag]
        buttons.append(Button(product.asin.lower(), "product", index))
    if not total:
        parts.append("No products match your search; go back to search and try other words.")
    return SEP.join(parts), buttons


def _item(
    session: Session, product: Product, mode: str, parts: list[str], buttons: list[Button]
) -> tuple[str, list[Button]]:
    taken = {button.label for button in buttons}
    for name, values in product.options.items():
        parts.append(name)
        for value in values:
            parts.append(_mark(value, mode, clicked=session.selected.get(name) == value))
            if value not in taken:  # a value in two groups is clicked in the first
                taken.add(value)
                buttons.append(Button(value, "option", (name, value)))
    rating = "N.A." if product.rating is None else f"{product.rating:.1f}"
    parts += [product.title, f"Price: {product.price_tag}", f"Rating: {rating}"]
    for page in SUB_PAGES:
        parts.append(_mark(page.title(), mode))
        buttons.append(Button(page, "subpage", page))
    parts.append(_mark("Buy Now", mode))
    buttons.append(Button(BUY_NOW, "buy"))
    return SEP.join(parts), buttons
