"""Shared test fixtures."""

from __future__ import annotations

import os

import pytest

# Tests must never touch a model hub or send telemetry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster for one test module: 2 CPUs, a 200 MB object store."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20,
             log_to_driver=False)  # fmt: skip
    yield
    ray.shutdown()
