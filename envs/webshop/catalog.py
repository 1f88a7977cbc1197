"""WebShop's product schema and the seeded catalog generator.

A :class:`Product` carries the fields of WebShop's scraped products (title, category path,
query, description, bullet points, price or price range, customization options,
attributes). Two catalogs implement the same small interface (:class:`Catalog`):

* :class:`GeneratedCatalog` builds product ``i`` on demand from ``(seed, i)``, so a catalog
  of 100k products costs no memory until products are looked at, and every process sees the
  same products without sharing anything but the seed. Products of one type share category
  levels and title nouns; their attributes, options and prices differ, which gives the
  near-miss distractors of the real data.
* :class:`ProductList` holds explicit products, e.g. read from the original data files by
  :mod:`agentgym.envs.webshop.loaders`.

Example:
    >>> catalog = GeneratedCatalog(1000, seed=0)
    >>> product = catalog.product(7)
    >>> catalog.index_of(product.asin)
    7
    >>> product == GeneratedCatalog(1000, seed=0).product(7)
    True
    >>> product.product_category.count(" › ") >= 2, product.price > 0
    (True, True)
"""

from __future__ import annotations

import functools
import random
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from agentgym.envs.webshop.vocabulary import BRANDS, PRODUCT_TYPES, STYLE_WORDS, ProductType

__all__ = [
    "Catalog",
    "GeneratedCatalog",
    "Listing",
    "Product",
    "ProductList",
    "Review",
    "format_price",
    "search_document",
]

#: Generator version: part of every cache key, bump it when generated products change.
GENERATOR_VERSION = 2


@dataclass(frozen=True, slots=True)
class Review:
    """One customer review shown on the Reviews page."""

    title: str
    body: str
    score: int


@dataclass(frozen=True, slots=True)
class Product:
    """One product, with WebShop's fields.

    Attributes:
        asin: Product id (shown upper-case, clicked lower-case).
        title: WebShop's ``name`` / ``Title``.
        category: Top-level category (beauty, food, fashion, furniture, electronics).
        query: The search query the product belongs to.
        product_category: Category path joined by ``" › "``.
        description: ``full_description``.
        bullets: ``small_description`` (bullet points, the Features page).
        pricing: One price, or the low and high end of a price range.
        price: The price paid at Buy Now (for a range: a seeded draw inside it).
        options: Customization options, option name -> values (lower-case).
        attributes: Product attributes matched against a goal's attributes.
        title_nouns: The nouns of the title (the type reward's title overlap).
        rating: Average rating, ``None`` when there is none ("N.A.").
        reviews: Customer reviews.
    """

    asin: str
    title: str
    category: str
    query: str
    product_category: str
    description: str
    bullets: tuple[str, ...]
    pricing: tuple[float, ...]
    price: float
    options: Mapping[str, tuple[str, ...]]
    attributes: tuple[str, ...]
    title_nouns: frozenset[str]
    rating: float | None = None
    reviews: tuple[Review, ...] = field(default=())

    @property
    def price_tag(self) -> str:
        """The price as shown: ``"$12.99"`` or ``"$10.99 to $15.99"``."""
        return " to ".join(format_price(p) for p in self.pricing[:2])


@dataclass(frozen=True, slots=True)
class Listing:
    """What a results page shows of a product: its id, title and price."""

    asin: str
    title: str
    pricing: tuple[float, ...]

    @property
    def price_tag(self) -> str:
        """The price as shown: ``"$12.99"`` or ``"$10.99 to $15.99"``."""
        return " to ".join(format_price(p) for p in self.pricing[:2])


def format_price(value: float) -> str:
    """``12.5`` -> ``"$12.50"``."""
    return f"${value:,.2f}"


def search_document(product: Product) -> str:
    """The text the search engine indexes, as in WebShop: title, description, first
    bullet point and option values."""
    options = ", and ".join(
        f"{name}: {', '.join(values)}" for name, values in product.options.items()
    )
    first_bullet = product.bullets[0] if product.bullets else ""
    return " ".join((product.title, product.description, first_bullet, options)).lower()


class ListingRows(Protocol):
    """A table with each product's ``(title, pricing)`` (see ``search.ListingTable``)."""

    def row(self, index: int) -> tuple[str, tuple[float, ...]]: ...


class Catalog(ABC):
    """Indexable products with an asin lookup; read-only, shared by all environment copies."""

    #: Identifies the catalog's content (cache keys of the search index).
    cache_key: str

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def product(self, index: int) -> Product:
        """Product at ``index`` (0-based)."""

    @abstractmethod
    def index_of(self, asin: str) -> int | None:
        """Index of the product with ``asin`` (any case), ``None`` when there is none."""

    def listing(self, index: int) -> Listing:
        """What a results page shows of product ``index`` (a catalog may make it cheaper
        than the whole product)."""
        product = self.product(index)
        return Listing(product.asin, product.title, product.pricing)

    def __iter__(self) -> Iterator[Product]:
        return (self.product(i) for i in range(len(self)))


class ProductList(Catalog):
    """A catalog of explicit products (e.g. loaded from WebShop's files).

    Args:
        products: The products; asins must be unique.
        cache_key: Identifies the content (e.g. a hash of the source files).
    """

    def __init__(self, products: Sequence[Product], cache_key: str) -> None:
        self._products = tuple(products)
        self._index = {p.asin.lower(): i for i, p in enumerate(self._products)}
        if len(self._index) != len(self._products):
            raise ValueError("ProductList: asins must be unique")
        self.cache_key = cache_key

    def __len__(self) -> int:
        return len(self._products)

    def product(self, index: int) -> Product:
        return self._products[index]

    def index_of(self, asin: str) -> int | None:
        return self._index.get(asin.lower())


# ASINs are a bijection of the product index: "B" + 9 base-36 digits of (i * A + offset)
# mod 36**9, with A coprime to 36, so ids look random, never collide, and invert without
# a table.
_ASIN_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASIN_SPACE = 36**9
_ASIN_MULTIPLIER = 2_654_435_761  # odd and not a multiple of 3
_ASIN_INVERSE = pow(_ASIN_MULTIPLIER, -1, _ASIN_SPACE)
_ASIN_PATTERN = re.compile(r"^b[0-9a-z]{9}$")


_PAIRS = [a + b for a in _ASIN_DIGITS for b in _ASIN_DIGITS]  # two base-36 digits


def _base36(value: int) -> str:
    """Nine base-36 digits of ``value`` (two digits per division: half the steps)."""
    high, low = divmod(value, 36**8)
    low, d8 = divmod(low, 36**2)
    low, d6 = divmod(low, 36**2)
    d0, d4 = divmod(low, 36**2)
    return _ASIN_DIGITS[high] + _PAIRS[d0] + _PAIRS[d4] + _PAIRS[d6] + _PAIRS[d8]


class GeneratedCatalog(Catalog):
    """A seeded synthetic catalog; product ``i`` is a pure function of ``(seed, i)``.

    Products are built on first use and kept in an LRU cache shared by every environment
    copy of the process.

    Args:
        num_products: Catalog size (1k for tests, up to ~100k and beyond).
        seed: Catalog seed; different seeds give different catalogs.
        cache_size: Products kept built.
    """

    def __init__(self, num_products: int, *, seed: int = 0, cache_size: int = 4096) -> None:
        if num_products < 1:
            raise ValueError(f"num_products must be >= 1, got {num_products}")
        self.num_products = num_products
        self.seed = seed
        self.cache_key = f"generated-v{GENERATOR_VERSION}-n{num_products}-s{seed}"
        self._offset = (seed * 7_919 + 1_000_003) % _ASIN_SPACE
        self.product = functools.lru_cache(maxsize=cache_size)(self._build)  # type: ignore[method-assign]
        self.listing = functools.lru_cache(maxsize=cache_size)(self._build_listing)  # type: ignore[method-assign]

    def __len__(self) -> int:
        return self.num_products

    def product(self, index: int) -> Product:  # replaced by the cached builder in __init__
        return self._build(index)

    def asin(self, index: int) -> str:
        """The asin of product ``index``."""
        return "B" + _base36((index * _ASIN_MULTIPLIER + self._offset) % _ASIN_SPACE)

    def index_of(self, asin: str) -> int | None:
        asin = asin.lower()
        if not _ASIN_PATTERN.match(asin):
            return None
        code = int(asin[1:], 36)
        index = ((code - self._offset) * _ASIN_INVERSE) % _ASIN_SPACE
        return index if index < self.num_products else None

    def listing(self, index: int) -> Listing:  # replaced by a cached builder in __init__
        return self._build_listing(index)

    def use_listing_table(self, table: ListingRows) -> None:
        """Serve :meth:`listing` from a precomputed table of this catalog's titles and
        prices (the search index's, memory-mapped) instead of generating products."""
        asin = self.asin

        def listing(index: int) -> Listing:
            if not 0 <= index < self.num_products:
                raise IndexError(f"product index {index} out of range [0, {self.num_products})")
            title, pricing = table.row(index)
            return Listing(asin(index), title, pricing)

        self.listing = listing  # type: ignore[method-assign]

    def _start(self, index: int) -> tuple[ProductType, random.Random]:
        if not 0 <= index < self.num_products:
            raise IndexError(f"product index {index} out of range [0, {self.num_products})")
        rng = random.Random(self.seed * 4_294_967_311 + index)
        return PRODUCT_TYPES[rng.randrange(len(PRODUCT_TYPES))], rng

    def _build(self, index: int) -> Product:
        kind, rng = self._start(index)
        return _generate_product(self.asin(index), kind, rng)

    def _build_listing(self, index: int) -> Listing:
        # The first draws of the product only (a results page needs no description,
        # bullets or reviews): a third of the time of the whole product.
        kind, rng = self._start(index)
        head = _generate_head(kind, rng)
        return Listing(self.asin(index), head.title, head.pricing)


@dataclass(frozen=True, slots=True)
class _Head:
    attributes: tuple[str, ...]
    options: dict[str, tuple[str, ...]]
    brand: str
    title: str
    pricing: tuple[float, ...]
    price: float


def _generate_head(kind: ProductType, rng: random.Random) -> _Head:
    """The product's first draws: attributes, options, brand, title, price."""
    attributes = tuple(rng.sample(kind.attributes, rng.randint(2, min(4, len(kind.attributes)))))
    options: dict[str, tuple[str, ...]] = {}
    for name, pool in kind.options:
        if rng.random() < 0.15:
            continue  # some products offer no choice in this group
        chosen = set(rng.sample(pool, rng.randint(2, min(5, len(pool)))))
        options[name] = tuple(v for v in pool if v in chosen)
    brand = rng.choice(BRANDS)
    style = rng.choice(STYLE_WORDS)
    shown = attributes[: rng.randint(1, 2)]
    title = (
        f"{brand} {style.title()} {_title_case(kind.noun)} - {' & '.join(map(_title_case, shown))}"
    )
    if options and rng.random() < 0.5:
        name = rng.choice(sorted(options))
        title += f", {len(options[name])} {name.title()} Options"
    low = round(rng.uniform(*kind.price) - 0.01, 2)
    low = max(low, 0.99)
    if rng.random() < 0.25:
        high = round(low * rng.uniform(1.1, 1.6), 2)
        pricing: tuple[float, ...] = (low, high)
        price = round(rng.uniform(low, high), 2)
    else:
        pricing, price = (low,), low
    return _Head(attributes, options, brand, title, pricing, price)


def _generate_product(asin: str, kind: ProductType, rng: random.Random) -> Product:
    head = _generate_head(kind, rng)
    attributes, options, brand = head.attributes, head.options, head.brand
    title, pricing, price = head.title, head.pricing, head.price
    description = _description(kind, brand, attributes, rng)
    bullets = _bullets(kind, attributes, options, rng)
    rating = round(rng.uniform(3.0, 5.0), 1) if rng.random() < 0.8 else None
    reviews = tuple(_review(kind, attributes, rng) for _ in range(rng.randint(0, 3)))
    return Product(
        asin=asin,
        title=title,
        category=kind.category,
        query=kind.query,
        product_category=" › ".join(kind.path),
        description=description,
        bullets=bullets,
        pricing=pricing,
        price=price,
        options=options,
        attributes=attributes,
        title_nouns=frozenset(kind.nouns),
        rating=rating,
        reviews=reviews,
    )


def _title_case(text: str) -> str:
    return " ".join(word[:1].upper() + word[1:] for word in text.split())


_OPENINGS = (
    "Meet the {brand} {noun}, made for everyday use.",
    "The {brand} {noun} is designed with care and tested for quality.",
    "Upgrade your routine with this {noun} from {brand}.",
    "{brand} brings you a {noun} that customers come back to.",
)
_CLOSINGS = (
    "Backed by a 30-day satisfaction guarantee.",
    "Makes a thoughtful gift for friends and family.",
    "Ships in recyclable packaging.",
    "Customer support is available seven days a week.",
)
_FILLER_BULLETS = (
    "Quality checked before shipping",
    "Easy returns within 30 days",
    "Designed by {brand}",
    "Great value for the price",
)


def _description(
    kind: ProductType, brand: str, attributes: Sequence[str], rng: random.Random
) -> str:
    parts = [rng.choice(_OPENINGS).format(brand=brand, noun=kind.noun)]
    parts.append(f"This {kind.noun} is {', '.join(attributes[:-1])} and {attributes[-1]}.")
    parts.append(rng.choice(_CLOSINGS))
    return " ".join(parts)


def _bullets(
    kind: ProductType,
    attributes: Sequence[str],
    options: Mapping[str, Sequence[str]],
    rng: random.Random,
) -> tuple[str, ...]:
    bullets = [
        f"{attribute.upper()}: a {kind.noun} that is {attribute}" for attribute in attributes
    ]
    for name, values in options.items():
        bullets.append(f"AVAILABLE {name.upper()}S: {', '.join(values)}")
    bullets.append(rng.choice(_FILLER_BULLETS).format(brand="the brand"))
    rng.shuffle(bullets)
    return tuple(bullets)


_REVIEW_TITLES = ("Love it", "Works as described", "Not bad", "Would buy again", "Okay")
_REVIEW_BODIES = (
    "Really {attribute}, exactly what I wanted from a {noun}.",
    "The {noun} arrived quickly. I like that it is {attribute}.",
    "Decent {noun}; I expected it to be more {attribute}.",
)


def _review(kind: ProductType, attributes: Sequence[str], rng: random.Random) -> Review:
    body = rng.choice(_REVIEW_BODIES).format(attribute=rng.choice(attributes), noun=kind.noun)
    return Review(title=rng.choice(_REVIEW_TITLES), body=body, score=rng.randint(2, 5))
