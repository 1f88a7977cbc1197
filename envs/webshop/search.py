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
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from agentgym.envs.webshop.catalog import Catalog, search_document
from agentgym.models import cache_dir, file_lock

__all__ = ["SearchIndex", "index_cache_dir", "tokenize"]

#: Lucene BM25 parameters used by WebShop's pyserini index.
K1, B = 0.9, 0.4
#: Hits kept per search (WebShop shows the top 50, 10 per page).
TOP_K = 50
INDEX_VERSION = 2

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


def index_cache_dir(cache_key: str) -> Path:
    """Where the index of the catalog with ``cache_key`` is stored."""
    return cache_dir() / "webshop" / f"{cache_key}-bm25v{INDEX_VERSION}"


_ARRAYS = ("data", "indices", "indptr")


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
    ) -> None:
        self._data = data
        self._indices = indices
        self._indptr = indptr
        self._vocabulary = vocabulary
        self.num_documents = num_documents
        self.search = functools.lru_cache(maxsize=4096)(self._search)  # type: ignore[method-assign]

    @classmethod
    def build(cls, catalog: Catalog) -> SearchIndex:
        """Index every product of ``catalog`` in memory."""
        import bm25s

        corpus = [tokenize(search_document(product)) for product in catalog]
        retriever = bm25s.BM25(k1=K1, b=B, method="lucene")
        retriever.index(corpus, show_progress=False)
        scores = retriever.scores
        return cls(
            scores["data"], scores["indices"], scores["indptr"], retriever.vocab_dict, len(corpus)
        )

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
        return cls(data, indices, indptr, meta["vocabulary"], int(meta["num_documents"]))

    def save(self, directory: Path) -> None:
        """Write the index to ``directory`` (numpy arrays and a JSON vocabulary)."""
        for name, array in zip(_ARRAYS, (self._data, self._indices, self._indptr), strict=True):
            np.save(directory / f"{name}.npy", np.ascontiguousarray(array))
        meta = {"num_documents": self.num_documents, "vocabulary": self._vocabulary}
        (directory / "meta.json").write_text(json.dumps(meta))

    @classmethod
    def _build_and_save(cls, catalog: Catalog, target: Path) -> SearchIndex:
        """Build the index, write it to a temporary directory and rename it into place."""
        index = cls.build(catalog)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=target.name, dir=target.parent))
        try:
            index.save(partial)
            (partial / "done").write_text(catalog.cache_key)
            if target.exists():  # an unfinished earlier attempt
                shutil.rmtree(target)
            partial.rename(target)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return index

    def search(self, query: str) -> tuple[int, ...]:  # replaced by a cached version
        return self._search(query)

    def _search(self, query: str) -> tuple[int, ...]:
        """The top :data:`TOP_K` product indices for ``query``, best first (ties: by index)."""
        ids = [self._vocabulary[t] for t in tokenize(query) if t in self._vocabulary]
        if not ids:
            return ()
        scores = np.zeros(self.num_documents, dtype=np.float32)
        for token in ids:
            start, end = self._indptr[token], self._indptr[token + 1]
            # A token's column lists each document once, so plain fancy-index addition is
            # exact (and much faster than np.add.at).
            scores[self._indices[start:end]] += self._data[start:end]
        hits = np.flatnonzero(scores > 0)
        if len(hits) > TOP_K:
            # Keep everything tied with the K-th score, then order by (-score, index).
            kth = np.partition(scores[hits], len(hits) - TOP_K)[len(hits) - TOP_K]
            hits = hits[scores[hits] >= kth]
        order = np.lexsort((hits, -scores[hits]))
        return tuple(int(i) for i in hits[order[:TOP_K]])
