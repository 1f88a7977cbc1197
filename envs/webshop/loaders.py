"""Reader of WebShop's original data files.

Point ``data_dir`` at a directory holding the files of the WebShop release:

* ``items_shuffle*.json`` (required): a list of products with ``asin``, ``name``,
  ``category``, ``query``, ``product_category``, ``full_description``,
  ``small_description`` (bullets: a list or one string), ``pricing`` (``"$12.99"`` or a
  range such as ``"$10.99 - $15.99"``) and ``customization_options`` (option name -> list of
  ``{"value": ..., "image": ...}``);
* ``items_ins_v2*.json`` (required): asin -> ``{"attributes": [...], "instruction": ...,
  "instruction_attributes": [...]}``, the products' attributes and synthetic instructions;
* ``items_human_ins.json`` (optional): asin -> list of ``{"instruction": ...,
  "instruction_attributes": [...], "instruction_options": [...]}``, the human instructions.

When several files match (``items_shuffle.json`` and ``items_shuffle_1000.json``), the
smallest one that holds ``num_products`` products by its name is used, else the full one.
Products are read as the reference does: the first ``num_products`` of the file, asins
longer than 10 characters or ``"nan"`` skipped, duplicates dropped, option values
lower-cased with ``/`` shown as `` | ``. A price range is paid at a price drawn inside it,
seeded by the asin (the reference draws it unseeded). Title nouns, which the reference
tags with spaCy, are approximated by the title's words minus stop words, colours, numbers
and common adjectives.

Goals: every human instruction with attributes becomes a ``human`` goal (ids
``webshop-human-<k>``); every product with a synthetic instruction becomes one
``template`` goal (ids ``webshop-synthetic-<k>``) with one seeded option combination (the
reference makes one goal per combination). Both get the reference's price cap.

Example:
    >>> from pathlib import Path
    >>> fixtures = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "webshop"
    >>> catalog, goals = load_webshop_dir(fixtures)
    >>> len(catalog), catalog.product(0).options["scent"]
    (7, ('lavender', 'citrus | mint'))
    >>> goals[0].instruction_text  # doctest: +NORMALIZE_WHITESPACE
    'i need a long lasting hair spray with a lavender scent in 8 fl oz, and price lower
     than 50.00 dollars'
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agentgym.envs.webshop.catalog import Product, ProductList
from agentgym.envs.webshop.tasks import Goal, price_cap, price_text

__all__ = ["find_data_file", "load_webshop_dir", "parse_pricing", "parse_product", "title_nouns"]

_NOT_NOUN_TEXT = """
a an and the for with of in on to by from or at as is are new pack set pcs piece pieces
inch inches oz ounce ounces lb lbs count size small medium large x xl xxl women men womens
mens kids unisex black white premium natural long short high low soft best compatible
adjustable portable waterproof wireless organic free light dark mini extra super ultra
professional original classic
"""
_COLOR_ADJECTIVES = """
navy burgundy beige ivory khaki teal olive coral plum nude walnut oak gray grey silver gold
red pink purple yellow orange green blue brown multicolor
"""
_NOT_NOUNS = frozenset(_NOT_NOUN_TEXT.split()) | frozenset(_COLOR_ADJECTIVES.split())
_WORD = re.compile(r"[a-z][a-z'-]+")


def title_nouns(title: str) -> frozenset[str]:
    """Approximate nouns of a product title (the reference uses spaCy's POS tags).

    >>> sorted(title_nouns("Aurelle Premium Hair Spray, Long Lasting, 8 oz"))
    ['aurelle', 'hair', 'lasting', 'spray']
    """
    words = (w.strip("'-") for w in _WORD.findall(title.lower()))
    return frozenset(w for w in words if len(w) > 2 and w not in _NOT_NOUNS)


def parse_pricing(pricing: Any) -> tuple[float, ...]:
    """WebShop's ``pricing`` string as one price or a (low, high) range.

    >>> parse_pricing("$12.99"), parse_pricing("$10.99 - $1,015.50"), parse_pricing(None)
    ((12.99,), (10.99, 1015.5), (100.0,))
    """
    if not pricing or not isinstance(pricing, str):
        return (100.0,)
    prices = []
    for part in pricing.split("$")[1:]:
        digits = re.sub(r"[^\d.]", "", part)
        try:
            prices.append(float(digits))
        except ValueError:
            continue
    return tuple(prices[:2]) or (100.0,)


def parse_product(raw: Mapping[str, Any], attributes: Sequence[str]) -> Product:
    """One product of ``items_shuffle*.json`` (with its attributes from ``items_ins_v2``)."""
    asin = str(raw["asin"])
    pricing = parse_pricing(raw.get("pricing"))
    if len(pricing) == 2:
        low, high = sorted(pricing)
        price = round(random.Random(zlib.crc32(asin.encode())).uniform(low, high), 2)
    else:
        price = pricing[0]
    options: dict[str, tuple[str, ...]] = {}
    for name, contents in (raw.get("customization_options") or {}).items():
        if not contents:
            continue
        values = []
        for content in contents:
            value = content.get("value") if isinstance(content, Mapping) else content
            if value is not None:
                values.append(str(value).strip().replace("/", " | ").lower())
        if values:
            options[str(name).lower()] = tuple(dict.fromkeys(values))
    bullets = raw.get("small_description") or []
    if isinstance(bullets, str):
        bullets = [bullets]
    title = str(raw.get("name") or "")
    rating = raw.get("average_rating")
    return Product(
        asin=asin,
        title=title,
        category=str(raw.get("category") or ""),
        query=str(raw.get("query") or "").lower().strip(),
        product_category=str(raw.get("product_category") or ""),
        description=str(raw.get("full_description") or ""),
        bullets=tuple(str(b) for b in bullets if b),
        pricing=pricing,
        price=price,
        options=options,
        attributes=tuple(str(a) for a in attributes),
        title_nouns=title_nouns(title),
        rating=float(rating) if isinstance(rating, int | float) else None,
    )


def find_data_file(data_dir: Path, stem: str, num_products: int | None) -> Path | None:
    """The ``<stem>*.json`` file to read (see the module docstring), ``None`` if absent."""
    candidates = sorted(data_dir.glob(f"{stem}*.json"))
    if not candidates:
        return None
    sized = []
    for path in candidates:
        suffix = path.stem[len(stem) :].lstrip("_")
        if suffix.isdigit():
            sized.append((int(suffix), path))
    if num_products is not None:
        fitting = sorted((size, path) for size, path in sized if size >= num_products)
        if fitting:
            return fitting[0][1]
    full = data_dir / f"{stem}.json"
    if full.exists():
        return full
    return max(sized)[1] if sized else candidates[0]


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def load_webshop_dir(
    data_dir: str | Path, *, num_products: int | None = None
) -> tuple[ProductList, list[Goal]]:
    """Products and goals from WebShop's files in ``data_dir``.

    Raises:
        FileNotFoundError: When a required file is missing (the message lists them).
    """
    data_dir = Path(data_dir).expanduser()
    products_file = find_data_file(data_dir, "items_shuffle", num_products)
    attributes_file = find_data_file(data_dir, "items_ins_v2", num_products)
    if products_file is None or attributes_file is None:
        raise FileNotFoundError(
            f"WebShop data not found in {data_dir}: it needs items_shuffle*.json and "
            "items_ins_v2*.json (items_human_ins.json is optional), as in the WebShop "
            "release's data/ folder."
        )
    human_file = data_dir / "items_human_ins.json"
    raw_products = _read_json(products_file)
    attributes = _read_json(attributes_file)
    human = _read_json(human_file) if human_file.exists() else {}
    if num_products is not None:
        raw_products = raw_products[:num_products]
    products: list[Product] = []
    seen: set[str] = set()
    for raw in raw_products:
        asin = str(raw.get("asin", "nan"))
        if asin == "nan" or len(asin) > 10 or asin in seen:
            continue
        seen.add(asin)
        entry = attributes.get(asin) or {}
        products.append(parse_product(raw, entry.get("attributes") or ()))
    sources = [p for p in (products_file, attributes_file, human_file) if p.exists()]
    fingerprint = json.dumps(
        [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in sources]
        + [num_products]
    )
    key = "files-" + hashlib.sha1(fingerprint.encode()).hexdigest()[:16]
    goals = _human_goals(products, human) + _synthetic_goals(products, attributes)
    return ProductList(products, cache_key=key), goals


def _goal_rng(asin: str, k: int) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(asin.encode()), k])


def _goal(product: Product, goal_id: str, text: str, attributes: Sequence[str],
          options: Sequence[tuple[str, str]], cap: float, style: str,
          named: bool) -> Goal:  # fmt: skip
    return Goal(
        id=goal_id,
        asin=product.asin,
        instruction_text=text.strip().strip(".") + price_text(cap),
        attributes=tuple(str(a) for a in attributes),
        goal_options=tuple((str(n), str(v)) for n, v in options),
        price_upper=cap,
        query=product.query,
        name=product.title,
        product_category=product.product_category,
        title_nouns=product.title_nouns,
        category=product.category,
        style=style,
        named_options=named,
        metadata={"category": product.category, "style": style},
    )


def _human_goals(products: Sequence[Product], human: Mapping[str, Any]) -> list[Goal]:
    goals = []
    for product in products:
        for k, entry in enumerate(human.get(product.asin) or ()):
            wanted = entry.get("instruction_attributes") or []
            if not wanted:
                continue  # the reference skips instructions without attributes
            raw_options = entry.get("instruction_options") or []
            if isinstance(raw_options, Mapping):
                options = [(str(n), str(v)) for n, v in raw_options.items()]
            else:
                options = [("", str(v)) for v in raw_options]
            cap = price_cap(product.price, _goal_rng(product.asin, k))
            goals.append(_goal(product, f"webshop-human-{len(goals)}", str(entry["instruction"]),
                               wanted, options, cap, "human",
                               isinstance(raw_options, Mapping)))  # fmt: skip
    return goals


def _synthetic_goals(products: Sequence[Product], attributes: Mapping[str, Any]) -> list[Goal]:
    goals = []
    for product in products:
        entry = attributes.get(product.asin) or {}
        text, wanted = entry.get("instruction"), entry.get("instruction_attributes") or []
        if not text or not wanted:
            continue
        rng = _goal_rng(product.asin, 1_000_003)
        options = [(name, values[int(rng.integers(len(values)))])
                   for name, values in sorted(product.options.items())]  # fmt: skip
        option_text = ", and ".join(f"{name}: {value}" for name, value in options)
        full_text = f"{str(text).strip().strip('.')} with {option_text}" if options else str(text)
        cap = price_cap(product.price, rng)
        goals.append(_goal(product, f"webshop-synthetic-{len(goals)}", full_text, wanted,
                           options, cap, "template", True))  # fmt: skip
    return goals
