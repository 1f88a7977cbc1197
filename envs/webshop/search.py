"""Product search: BM25 (Lucene variant, k1=0.9, b=0.4) over WebShop's search documents.

The index is built with :mod:`bm25s` (sparse score matrices in numpy) from
:func:`~agentgym.envs.webshop.catalog.search_document` of every product: title,
description, first bullet point and option values. Text is lower-cased, split into
alphanumeric tokens, stripped of English stop words and reduced with a minimal plural
stemmer (the spirit of Lucene's English analyzer, without its Porter stemmer).

Built indexes are saved under the agentgym cache (``$AGENTGYM_CACHE`` or
``~/.cache/agentgym``) in ``webshop/<catalog key>/``, written to a temporary directory and
renamed into place under a file lock, and loaded memory-mapped: processes on one machine
share one copy of the index through the page cache.

Example:
    >>> from agentgym.envs.webshop.catalog import GeneratedCatalog
    >>> catalog = GeneratedCatalog(200, seed=1)
    >>> index = SearchIndex.build(catalog)
    >>> hits = index.search(catalog.product(5).title)
    >>> 5 in hits[:10], len(hits) <= 50
    (True, True)
    >>> tokenize("The Hair-Sprays, for DRY hair!")
    ['hair', 'spray', 'dry', 'hair']
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from pathlib import Path

import numpy as np

from agentgym.core.durable import file_lock, staged_directory
from agentgym.envs.webshop.catalog import Catalog, Product, search_document
from agentgym.models import cache_dir

__all__ = ["ListingTable", "SearchIndex", "index_cache_dir", "tokenize"]

#: Lucene BM25 parameters used by WebShop's pyserini index.
K1, B = 0.9, 0.4
#: Hits kept per search (WebShop shows the top 50, 10 per page).
TOP_K = 50
INDEX_VERSION = 3

_TOKEN = re.compile(r"[0-9a-z]+")
_STOP_WORD_TEXT = """
a an and are as at be but by for if in into is it no not of on or such that the their then
there these they this to was will with i me my we you your need want looking find get would
like im am
"""
STOP_WORDS = frozenset(_STOP_WORD_TEXT.split())


def _stem(token: str) -> str:
    """Minimal English plural stemming: ``sprays`` -> ``spray``, ``berries`` -> ``berry``."""
    if len(token) < 4 or token[-1] != "s" or token[-2] in "us":
        return token
    if token.endswith("ies") and token[-4] not in "ae":
        return token[:-3] + "y"
    if token.endswith(("ses", "xes", "zes", "ches", "shes")):
        return token[:-2]
    return token[:-1]


@functools.lru_cache(maxsize=65_536)
def _normalize(token: str) -> str:
    return _stem(token)


def tokenize(text: str) -> list[str]:
    """Search tokens of ``text`` (lower-cased, stop words removed, plurals stemmed)."""
    return [_normalize(t) for t in _TOKEN.findall(text.lower()) if t not in STOP_WORDS]


#: Tokens in at least this share of the documents get a dense score column.
DENSE_SHARE = 0.2


def _dense_columns(
    data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, num_documents: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(row of each token or -1, dense score rows)`` for the frequent tokens."""
    frequent = np.flatnonzero(np.diff(indptr) >= max(1.0, DENSE_SHARE * num_documents))
    rows = np.full(len(indptr) - 1, -1, dtype=np.int32)
    rows[frequent] = np.arange(len(frequent), dtype=np.int32)
    dense = np.zeros((len(frequent), num_documents), dtype=np.float32)
    for row, token in enumerate(frequent):
        start, end = indptr[token], indptr[token + 1]
        dense[row, indices[start:end]] = data[start:end]
    return rows, dense


def _listing_row(product: Product) -> tuple[str, tuple[float, ...]]:
    return product.title, product.pricing


def index_cache_dir(cache_key: str) -> Path:
    """Where the index of the catalog with ``cache_key`` is stored."""
    return cache_dir() / "webshop" / f"{cache_key}-bm25v{INDEX_VERSION}"


_ARRAYS = ("data", "indices", "indptr")
_LISTING_ARRAYS = ("title_bytes", "title_offsets", "pricing")


class ListingTable:
    """Every product's title and price, as results pages show them, in flat arrays.

    Built with the index (which generates every product anyway) and memory-mapped with
    it, so a results page of a generated catalog reads ten rows instead of generating ten
    products (~27 us each at 100k products).

    Args:
        title_bytes: UTF-8 titles, concatenated.
        title_offsets: Where title ``i`` starts and ends: ``[offsets[i], offsets[i+1])``.
        pricing: ``(n, 2)`` low and high price; high is NaN for a single price.
    """

    def __init__(self, title_bytes: np.ndarray, title_offsets: np.ndarray, pricing: np.ndarray):
        self.title_bytes = title_bytes
        self.title_offsets = title_offsets
        self.pricing = pricing

    @classmethod
    def from_products(cls, products: list[tuple[str, tuple[float, ...]]]) -> ListingTable:
        """A table of ``(title, pricing)`` rows."""
        encoded = [title.encode() for title, _ in products]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        pricing = np.full((len(products), 2), np.nan)
        for row, (_, prices) in enumerate(products):
            pricing[row, : len(prices[:2])] = prices[:2]
        return cls(blob, offsets, pricing)

    def row(self, index: int) -> tuple[str, tuple[float, ...]]:
        """``(title, pricing)`` of product ``index``."""
        start, end = self.title_offsets[index], self.title_offsets[index + 1]
        title = self.title_bytes[start:end].tobytes().decode()
        low, high = self.pricing[index].tolist()
        return title, ((low,) if high != high else (low, high))  # NaN: one price


class SearchIndex:
    """A read-only BM25 index over a catalog; ``search`` returns product indices.

    Build with :meth:`build` (in memory) or :meth:`cached` (built once per machine, then
    memory-mapped from disk). The index is bm25s's eager score matrix: for each token, the
    documents containing it (``indices``) and their precomputed BM25 term scores
    (``data``), in compressed sparse columns (``indptr``). Only building needs ``bm25s``
    (whose import also loads numba when it is installed: ~1.5 s and ~70 MB); loading and
    searching use plain numpy.

    Args:
        data, indices, indptr: The score matrix in compressed sparse column form.
        vocabulary: Token -> column.
        num_documents: Number of indexed products.
    """

    def __init__(
        self,
        data: np.ndarray,
        indices: np.ndarray,
        indptr: np.ndarray,
        vocabulary: dict[str, int],
        num_documents: int,
        listings: ListingTable | None = None,
        dense: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self._data = data
        self._indices = indices
        self._indptr = indptr
        self._vocabulary = vocabulary
        self.num_documents = num_documents
        #: Titles and prices of the indexed products (for results pages).
        self.listings = listings
        # Frequent tokens' score columns stored dense too: ``scores += column`` over all
        # documents is ~5x faster than adding the same tokens' postings one by one.
        self._dense_rows, self._dense = dense if dense is not None else _dense_columns(
            data, indices, indptr, num_documents)  # fmt: skip
        self.search = functools.lru_cache(maxsize=4096)(self._search)  # type: ignore[method-assign]

    @classmethod
    def build(cls, catalog: Catalog) -> SearchIndex:
        """Index every product of ``catalog`` in memory."""
        import bm25s

        corpus, rows = [], []
        for product in catalog:
            corpus.append(tokenize(search_document(product)))
            rows.append(_listing_row(product))
        retriever = bm25s.BM25(k1=K1, b=B, method="lucene")
        retriever.index(corpus, show_progress=False)
        scores = retriever.scores
        return cls(scores["data"], scores["indices"], scores["indptr"], retriever.vocab_dict,
                   len(corpus), ListingTable.from_products(rows))  # fmt: skip

    @classmethod
    def cached(cls, catalog: Catalog) -> SearchIndex:
        """The catalog's index from the disk cache, building and saving it on first use.

        Falls back to an in-memory index (with a warning) when the cache is not writable.
        """
        target = index_cache_dir(catalog.cache_key)
        try:
            if not (target / "done").exists():
                with file_lock(target.with_name(target.name + ".lock")):
                    if not (target / "done").exists():
                        return cls._build_and_save(catalog, target)
            return cls.load(target)
        except OSError as exc:
            warnings.warn(
                f"WebShop search index cache {target} is not usable ({exc}); building the "
                "index in memory. Set AGENTGYM_CACHE to a writable directory to share it.",
                stacklevel=2,
            )
            return cls.build(catalog)

    @classmethod
    def load(cls, directory: Path) -> SearchIndex:
        """An index saved by :meth:`save`, memory-mapped."""
        arrays = [np.load(directory / f"{name}.npy", mmap_mode="r") for name in _ARRAYS]
        # Plain ndarray views of the maps: np.memmap's subclass hooks slow every slice.
        data, indices, indptr = (np.asarray(array) for array in arrays)
        meta = json.loads((directory / "meta.json").read_text())
        listings = None
        if (directory / "pricing.npy").exists():
            listings = ListingTable(*(
                np.asarray(np.load(directory / f"{name}.npy", mmap_mode="r"))
                for name in _LISTING_ARRAYS
            ))  # fmt: skip
        dense = None
        if (directory / "dense.npy").exists():
            dense = tuple(np.asarray(np.load(directory / f"{name}.npy", mmap_mode="r"))
                          for name in ("dense_rows", "dense"))  # fmt: skip
        return cls(data, indices, indptr, meta["vocabulary"], int(meta["num_documents"]),
                   listings, dense)  # type: ignore[arg-type]  # fmt: skip

    def save(self, directory: Path) -> None:
        """Write the index to ``directory`` (numpy arrays and a JSON vocabulary)."""
        for name, array in zip(_ARRAYS, (self._data, self._indices, self._indptr), strict=True):
            np.save(directory / f"{name}.npy", np.ascontiguousarray(array))
        np.save(directory / "dense_rows.npy", self._dense_rows)
        np.save(directory / "dense.npy", np.ascontiguousarray(self._dense))
        if self.listings is not None:
            table = self.listings
            for name, array in zip(_LISTING_ARRAYS,
                                   (table.title_bytes, table.title_offsets, table.pricing),
                                   strict=True):  # fmt: skip
                np.save(directory / f"{name}.npy", np.ascontiguousarray(array))
        meta = {"num_documents": self.num_documents, "vocabulary": self._vocabulary}
        (directory / "meta.json").write_text(json.dumps(meta))

    @classmethod
    def _build_and_save(cls, catalog: Catalog, target: Path) -> SearchIndex:
        """Build the index, write it to a temporary directory and rename it into place."""
        index = cls.build(catalog)
        with staged_directory(target) as staging:  # replaces an unfinished earlier attempt
            index.save(staging)
            (staging / "done").write_text(catalog.cache_key)
        return index

    def search(self, query: str) -> tuple[int, ...]:  # replaced by a cached version
        return self._search(query)

    @functools.cached_property
    def _max_term_scores(self) -> np.ndarray:
        """Each token's largest BM25 term score (an upper bound of what it adds)."""
        bounds = np.zeros(len(self._indptr) - 1, dtype=np.float64)
        filled = np.flatnonzero(np.diff(self._indptr) > 0)
        if len(filled):
            bounds[filled] = np.maximum.reduceat(self._data, self._indptr[filled])
        return bounds

    def _search(self, query: str) -> tuple[int, ...]:
        """The top :data:`TOP_K` product indices for ``query``, best first (ties: by index).

        A document's score is the float32 sum, in query-token order, of its BM25 term
        scores (as bm25s sums them).
        """
        ids = [self._vocabulary[t] for t in tokenize(query) if t in self._vocabulary]
        if not ids:
            return ()
        scores = np.zeros(self.num_documents, dtype=np.float32)
        for token in ids:
            row = self._dense_rows[token]
            if row >= 0:  # adding 0.0 to the other documents changes no sum
                scores += self._dense[row]
                continue
            start, end = self._indptr[token], self._indptr[token + 1]
            # np.add.at: one float32 addition per posting, ~3x faster than fancy "+=" in
            # numpy 2 (a token's column lists each document once, so both are exact).
            np.add.at(scores, self._indices[start:end], self._data[start:end])
        hits = self._candidates(scores, ids)
        order = np.lexsort((hits, -scores[hits]))[:TOP_K]
        return tuple(int(i) for i in hits[order])

    def _candidates(self, scores: np.ndarray, ids: list[int]) -> np.ndarray:
        """Documents that may be in the top :data:`TOP_K`, found without scanning every
        score (a scan of 100k scores costs more than the rest of a search).

        Tokens are taken strongest first (largest possible contribution). The K-th best
        score among one token's documents is a lower bound ``theta`` of the K-th best score
        overall; once the tokens not taken could add up to less than ``theta``, every
        document scoring ``theta`` or more has a taken token, so those documents are all
        the candidates (exact, ties included). Without such a bound: every document with a
        positive score.
        """
        counts: dict[int, int] = {}
        for token in ids:
            counts[token] = counts.get(token, 0) + 1
        bounds = self._max_term_scores
        ranked = sorted(counts, key=lambda t: -bounds[t] * counts[t])
        rest = float(sum(bounds[t] * n for t, n in counts.items()))
        theta = 0.0
        taken = []
        for token in ranked:
            rest -= bounds[token] * counts[token]
            start, end = self._indptr[token], self._indptr[token + 1]
            documents = self._indices[start:end]
            taken.append(documents)
            if len(documents) >= TOP_K:
                column = scores[documents]
                theta = max(theta, float(np.partition(column, len(column) - TOP_K)[-TOP_K]))
            # The margins absorb float32 rounding of the sums.
            if theta > 0.0 and theta > rest * (1 + 1e-4) + 1e-5:
                pool = np.concatenate(taken) if len(taken) > 1 else documents
                return np.unique(pool[scores[pool] >= theta])
        return np.flatnonzero(scores > 0)
