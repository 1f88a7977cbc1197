"""Shared test fixtures."""

from __future__ import annotations

import os

# Tests must never touch a model hub or send telemetry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
