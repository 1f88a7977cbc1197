"""``agentgym/WebShop-v0``: a generated catalog, BM25 search, the benchmark's pages and reward.

Parts, each usable on its own:

* :mod:`~agentgym.envs.webshop.catalog`: the product schema and the seeded catalog
  generator (products built on demand from ``(seed, index)``);
* :mod:`~agentgym.envs.webshop.tasks`: the goals (instructions in the human and template
  styles);
* :mod:`~agentgym.envs.webshop.search`: BM25 search (``bm25s``), cached on disk;
* :mod:`~agentgym.envs.webshop.judge`: WebShop's reward formula and its fuzzy matching;
* :mod:`~agentgym.envs.webshop.pages`: the pages as text;
* :mod:`~agentgym.envs.webshop.official`: WebShop's own text environment's pages, clickables
  and action handling (``observation_format="official"``);
* :mod:`~agentgym.envs.webshop.loaders`: reader of the original data files;
* :mod:`~agentgym.envs.webshop.store`: the data shared by every environment copy;
* :class:`WebShopEnv` and its expert :class:`WebShopExpert`.
"""

from agentgym.envs.webshop.env import WebShopEnv
from agentgym.envs.webshop.expert import WebShopExpert

__all__ = ["WebShopEnv", "WebShopExpert"]
