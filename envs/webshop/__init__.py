"""WebShop-v0: a generated catalog, BM25 search, the benchmark's pages and reward."""
