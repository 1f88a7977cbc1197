"""Generation engines: HFEngine on its own, and VLLMEngine checked against it.

The vLLM tests share one in-process engine at a time (starting one takes seconds, and two
in-process engines in one process would share vLLM's distributed state); they are grouped
by model so that the file starts only two. They are skipped when vLLM cannot be imported.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from agentgym.engines import make_engine
from agentgym.engines.base import Completion, SamplingParams
from agentgym.engines.hf import HFEngine

TINY = "tiny-random-llama"
SMOL = "smollm2-135m"
TEXTS = ["Hello there", "The quick brown fox jumps over the lazy", "a"]
QUESTIONS = ["What is 17*23?", "Name three colors."]
GREEDY = SamplingParams(temperature=0.0, max_tokens=12)


def ids(completions: list[list[Completion]]) -> list[list[list[int]]]:
    return [[c.token_ids for c in group] for group in completions]


@pytest.fixture(scope="module")
def hf_tiny() -> HFEngine:
    return HFEngine(TINY)


@pytest.fixture(scope="module")
def tiny_prompts(hf_tiny: HFEngine) -> list[list[int]]:
    prompts = [hf_tiny.tokenizer.encode(text) for text in TEXTS]
    assert len({len(p) for p in prompts}) == len(prompts), "lengths must differ (padding)"
    return prompts


@pytest.fixture(scope="module")
def hf_smol() -> HFEngine:
    return HFEngine(SMOL)


@pytest.fixture(scope="module")
def chat_prompts(hf_smol: HFEngine) -> list[list[int]]:
    return [
        hf_smol.tokenizer.apply_chat_template(
            [{"role": "user", "content": q}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=False,
        )
        for q in QUESTIONS
    ]


# --------------------------------------------------------------------------- HFEngine


def test_hf_greedy_is_deterministic_and_batching_matches_single(hf_tiny, tiny_prompts):
    batched = hf_tiny.generate(tiny_prompts, GREEDY)
    assert ids(hf_tiny.generate(tiny_prompts, GREEDY)) == ids(batched)
    singles = [hf_tiny.generate([prompt], GREEDY)[0] for prompt in tiny_prompts]
    assert ids(singles) == ids(batched)  # left padding + attention mask are right
    for single, batch in zip(singles, batched, strict=True):
        torch.testing.assert_close(single[0].logprobs, batch[0].logprobs, atol=1e-4, rtol=0)
    # A smaller max_batch_size (several generate() chunks) gives the same result.
    chunked = HFEngine(
        TINY, model_instance=hf_tiny.model, tokenizer=hf_tiny.tokenizer, max_batch_size=2
    )
    assert ids(chunked.generate(tiny_prompts, GREEDY)) == ids(batched)


def test_hf_length_finish_and_logprobs(hf_tiny, tiny_prompts):
    out = hf_tiny.generate(tiny_prompts, SamplingParams(temperature=0.0, max_tokens=7))
    for [completion] in out:
        assert completion.finish_reason == "length"
        assert len(completion.token_ids) == 7
        assert len(completion.logprobs) == 7
        assert all(lp <= 0.0 for lp in completion.logprobs)
        assert completion.text == hf_tiny.tokenizer.decode(
            completion.token_ids, skip_special_tokens=True
        )
    [[plain]] = hf_tiny.generate(tiny_prompts[:1], GREEDY.with_(logprobs=False))
    assert plain.logprobs == []


def test_hf_n_and_seeded_sampling(hf_tiny, tiny_prompts):
    greedy = hf_tiny.generate(tiny_prompts, GREEDY.with_(n=2))
    assert [len(group) for group in greedy] == [2] * len(tiny_prompts)
    assert all(group[0].token_ids == group[1].token_ids for group in greedy)

    params = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=8, n=3, seed=1234)
    rng_state = torch.get_rng_state()
    first = hf_tiny.generate(tiny_prompts, params)
    assert torch.equal(torch.get_rng_state(), rng_state), "seeded sampling moved global RNG"
    second = hf_tiny.generate(tiny_prompts, params)
    assert ids(first) == ids(second)
    assert [[c.logprobs for c in g] for g in first] == [[c.logprobs for c in g] for g in second]
    assert len({tuple(c.token_ids) for c in first[0]}) > 1, "n samples should differ"
    other = hf_tiny.generate(tiny_prompts, params.with_(seed=99))
    assert ids(other) != ids(first)
    for group in first:
        for completion in group:
            assert len(completion.logprobs) == len(completion.token_ids) == 8
            assert all(lp <= 0.0 for lp in completion.logprobs)


def test_hf_stop_strings_cut_text_and_ids(hf_tiny, tiny_prompts):
    tokenizer = hf_tiny.tokenizer
    [[full]] = hf_tiny.generate(tiny_prompts[1:2], GREEDY.with_(max_tokens=16))
    # A stop string spanning two tokens in the middle of the completion: the end of token
    # k - 1 and the start of token k, the first token whose text is new.
    texts = [tokenizer.decode([token]) for token in full.token_ids]
    k = next(i for i in range(2, len(texts)) if texts[i] not in "".join(texts[:i]))
    stop = texts[k - 1][-1] + texts[k][:2]
    expected_cut = full.text.find(stop)
    expected_len = next(
        k
        for k in range(1, len(full.token_ids) + 1)
        if stop in tokenizer.decode(full.token_ids[:k], skip_special_tokens=True)
    )
    assert 1 < expected_len < len(full.token_ids)
    [[cut]] = hf_tiny.generate(tiny_prompts[1:2], GREEDY.with_(max_tokens=16, stop=[stop]))
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[:expected_cut]
    assert stop not in cut.text
    assert cut.token_ids == full.token_ids[:expected_len]
    assert cut.logprobs == pytest.approx(full.logprobs[:expected_len], abs=1e-5)
    # A stop string that never occurs changes nothing.
    [[same]] = hf_tiny.generate(tiny_prompts[1:2], GREEDY.with_(max_tokens=16, stop=["§§§"]))
    assert same.token_ids == full.token_ids and same.finish_reason == "length"


def test_hf_shares_a_model_instance_and_restores_training_mode(hf_tiny, tiny_prompts):
    model = hf_tiny.model
    engine = HFEngine(TINY, model_instance=model)
    assert engine.model is model and engine.name == "hf"
    model.train()
    try:
        assert ids(engine.generate(tiny_prompts, GREEDY)) == ids(
            hf_tiny.generate(tiny_prompts, GREEDY)
        )
        assert model.training, "generate must give a training model its mode back"
    finally:
        model.eval()
    engine.update_weights(model)  # same object: a no-op
    assert isinstance(make_engine("hf", model=TINY, max_batch_size=4), HFEngine)


def test_hf_eos_ends_with_stop(hf_smol, chat_prompts):
    out = hf_smol.generate(chat_prompts[:1], SamplingParams(temperature=0.0, max_tokens=48))
    [[completion]] = out
    assert completion.finish_reason == "stop"
    assert completion.token_ids[-1] in hf_smol.eos_token_ids
    assert hf_smol.tokenizer.eos_token not in completion.text
    assert len(completion.logprobs) == len(completion.token_ids)


def test_hf_update_weights_copies_a_trainer_model(hf_tiny, tiny_prompts):
    engine = HFEngine(TINY)
    trainer_model = copy.deepcopy(hf_tiny.model)
    with torch.no_grad():
        trainer_model.lm_head.weight.mul_(-1.0)  # tied with the embeddings
    before = engine.generate(tiny_prompts, GREEDY)
    engine.update_weights(trainer_model)
    after = engine.generate(tiny_prompts, GREEDY)
    reference = HFEngine(TINY, model_instance=trainer_model, tokenizer=engine.tokenizer)
    assert ids(after) == ids(reference.generate(tiny_prompts, GREEDY))
    assert ids(after) != ids(before)


# --------------------------------------------------------------------------- VLLMEngine


def _load_vllm_module_without_vllm(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh copy of agentgym.engines.vllm imported while `import vllm` fails."""
    monkeypatch.setitem(sys.modules, "vllm", None)
    path = Path(__file__).parents[1] / "agentgym" / "engines" / "vllm.py"
    spec = importlib.util.spec_from_file_location("_agentgym_vllm_without_vllm", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("device", "extra"), [("cpu", "vllm-cpu"), ("cuda", "vllm")])
def test_vllm_missing_gives_install_hint(monkeypatch, device, extra):
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "2")
    module = _load_vllm_module_without_vllm(monkeypatch)  # importing it works
    with pytest.raises(ImportError, match=rf"pip install 'agentgym\[{extra}\]'"):
        module.VLLMEngine(TINY, device=device)


class _OneEngineAtATime:
    """Keeps at most one VLLMEngine alive and records torch's threads around its start."""

    def __init__(self) -> None:
        self.engine: Any = None
        self.model: str | None = None
        self.starts: dict[str, float] = {}

    def get(self, model: str) -> Any:
        from agentgym.engines.vllm import VLLMEngine

        if self.model != model:
            self.close()
            self.threads_before = torch.get_num_threads()
            self.set_num_threads_before = torch.set_num_threads
            self.engine = VLLMEngine(model, device="cpu", max_model_len=1024, kv_cache_space_gb=1)
            self.threads_after = torch.get_num_threads()
            self.set_num_threads_after = torch.set_num_threads
            self.model = model
            self.starts[model] = self.engine.start_seconds
        return self.engine

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
        self.engine = self.model = None


@pytest.fixture(scope="module")
def vllm_engines() -> Iterator[_OneEngineAtATime]:
    # Regression: a process that imported llvmlite (numba, pulled in by other libraries)
    # must still start vLLM (its kernel scan used to fail on llvmlite's ffi.lib).
    with contextlib.suppress(ImportError):
        import llvmlite.binding.ffi  # noqa: F401

    try:
        import vllm  # noqa: F401
    except Exception as exc:  # not installed, or a broken install (torchvision clash)
        pytest.skip(f"vllm cannot be imported ({type(exc).__name__}: {exc})")
    engines = _OneEngineAtATime()
    yield engines
    engines.close()


@pytest.fixture
def vllm_tiny(vllm_engines):
    return vllm_engines.get(TINY)


@pytest.fixture
def vllm_smol(vllm_engines):
    return vllm_engines.get(SMOL)


def test_vllm_restores_torch_threads(vllm_tiny, vllm_engines):
    assert vllm_tiny.name == "vllm"
    assert vllm_engines.threads_after == vllm_engines.threads_before
    # vLLM's CPU worker replaces torch.set_num_threads by a no-op; the engine undoes that.
    assert vllm_engines.set_num_threads_after is vllm_engines.set_num_threads_before
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


def test_vllm_greedy_matches_hf_tiny(vllm_tiny, hf_tiny, tiny_prompts):
    params = SamplingParams(temperature=0.0, max_tokens=16)
    expected = hf_tiny.generate(tiny_prompts, params)
    got = vllm_tiny.generate(tiny_prompts, params)
    assert ids(got) == ids(expected)
    for [g], [e] in zip(got, expected, strict=True):
        assert g.finish_reason == e.finish_reason == "length"
        assert g.text == e.text
        torch.testing.assert_close(g.logprobs, e.logprobs, atol=1e-3, rtol=0)


def test_vllm_n_and_seeded_sampling(vllm_tiny, tiny_prompts):
    params = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=8, n=3, seed=7)
    first = vllm_tiny.generate(tiny_prompts, params)
    assert [len(group) for group in first] == [3] * len(tiny_prompts)
    assert ids(vllm_tiny.generate(tiny_prompts, params)) == ids(first)
    assert len({tuple(c.token_ids) for c in first[0]}) > 1
    for group in first:
        for completion in group:
            assert len(completion.logprobs) == len(completion.token_ids) == 8
            assert all(lp <= 0.0 for lp in completion.logprobs)
    [[plain]] = vllm_tiny.generate(tiny_prompts[:1], GREEDY.with_(logprobs=False))
    assert plain.logprobs == [] and len(plain.token_ids) == GREEDY.max_tokens


def test_vllm_seeded_batch_of_long_prompts(vllm_tiny):
    """Seeded requests whose prompts exceed one step's token budget (a ToolUse batch): vLLM
    0.32 on CPU crashed when it prefilled such a prompt in chunks ('CPU Generator does not
    use offset'); the engine prefills whole prompts, and each row keeps its own seed."""
    prompts = [[(7 * row + 13 * i) % 1000 + 10 for i in range(900)] for row in range(12)]
    params = SamplingParams(temperature=1.0, max_tokens=4, prompt_seeds=list(range(12)))
    first = vllm_tiny.generate(prompts, params)
    assert [len(group) for group in first] == [1] * 12
    again = vllm_tiny.generate(prompts[3:5], params.with_(prompt_seeds=[3, 4]))
    assert ids(again) == ids(first[3:5])


def test_vllm_sampled_logprobs_are_the_sampling_distribution(vllm_tiny, hf_tiny, tiny_prompts):
    """Log-probs under temperature + top-p (what was sampled from), as HFEngine reports."""
    from transformers import TopPLogitsWarper

    params = SamplingParams(temperature=0.7, top_p=0.9, max_tokens=6, seed=3)
    prompt = tiny_prompts[1]
    [[sample]] = vllm_tiny.generate([prompt], params)
    with torch.no_grad():
        logits = hf_tiny.model(torch.tensor([prompt + sample.token_ids])).logits[0]
    scores = TopPLogitsWarper(params.top_p)(None, logits[len(prompt) - 1 : -1] / 0.7)
    expected = torch.log_softmax(scores, dim=-1)[range(6), sample.token_ids]
    torch.testing.assert_close(sample.logprobs, expected.tolist(), atol=1e-3, rtol=0)


def test_vllm_greedy_matches_hf_smollm2_chat(vllm_smol, hf_smol, chat_prompts):
    # A real model: the answers end with <|im_end|> well before max_tokens, so this also
    # checks eos handling. fp32 on both sides; the ids match exactly on these prompts (if a
    # near-tie ever made fp32 numerics diverge, only tokens after the first 16 could differ).
    params = SamplingParams(temperature=0.0, max_tokens=48)
    expected = hf_smol.generate(chat_prompts, params)
    got = vllm_smol.generate(chat_prompts, params)
    assert ids(got) == ids(expected)
    for [g], [e] in zip(got, expected, strict=True):
        assert g.finish_reason == e.finish_reason == "stop"
        assert g.token_ids[-1] in hf_smol.eos_token_ids
        assert g.text == e.text
        torch.testing.assert_close(g.logprobs, e.logprobs, atol=1e-3, rtol=0)
    # Stop strings: both cut the text before it and keep the token that completed it.
    stopped = params.with_(stop=["."])
    expected = hf_smol.generate(chat_prompts, stopped)
    got = vllm_smol.generate(chat_prompts, stopped)
    assert ids(got) == ids(expected)
    assert [g.text for [g] in got] == [e.text for [e] in expected]
    assert all(g.finish_reason == "stop" for [g] in got)


def test_vllm_update_weights(vllm_smol, hf_smol, chat_prompts):
    params = SamplingParams(temperature=0.0, max_tokens=24)
    prompts = chat_prompts[:1]
    before = vllm_smol.generate(prompts, params)
    trainer_model = copy.deepcopy(hf_smol.model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in trainer_model.parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.add_(noise * 0.1 * parameter.std())
    trainer = HFEngine(SMOL, model_instance=trainer_model, tokenizer=hf_smol.tokenizer)
    expected = trainer.generate(prompts, params)
    try:
        vllm_smol.update_weights(trainer_model)
        assert vllm_smol.last_update_seconds is not None
        after = vllm_smol.generate(prompts, params)
        assert ids(after) == ids(expected)
        assert ids(after) != ids(before)
        [[a]], [[e]] = after, expected
        torch.testing.assert_close(a.logprobs, e.logprobs, atol=1e-3, rtol=0)
    finally:
        vllm_smol.update_weights(hf_smol.model)  # back to the checkpoint's weights
    assert ids(vllm_smol.generate(prompts, params)) == ids(before)
    vllm_smol.sleep()  # CPU: no sleep mode, a no-op
    vllm_smol.wake_up()


def test_vllm_update_weights_from_a_lora_model(vllm_smol, hf_smol, chat_prompts):
    from agentgym.trainers.lora import LoRAConfig, apply_lora

    params = SamplingParams(temperature=0.0, max_tokens=24)
    prompts = chat_prompts[:1]
    before = vllm_smol.generate(prompts, params)
    lora = apply_lora(copy.deepcopy(hf_smol.model), LoRAConfig(enabled=True, rank=8))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # B starts at zero (no change): give the adapters a real update
        for name, parameter in lora.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
    lora.eval()
    trainer = HFEngine(SMOL, model_instance=lora, tokenizer=hf_smol.tokenizer)
    expected = trainer.generate(prompts, params)
    try:
        vllm_smol.update_weights(lora)
        after = vllm_smol.generate(prompts, params)
        assert ids(after) == ids(expected)
        [[a]], [[e]], [[b]] = after, expected, before
        torch.testing.assert_close(a.logprobs, e.logprobs, atol=1e-3, rtol=0)
        # The adapters changed the distribution (greedy ids may or may not change).
        count = min(len(a.logprobs), len(b.logprobs))
        assert max(abs(x - y) for x, y in zip(a.logprobs[:count], b.logprobs[:count],
                                              strict=True)) > 0.01  # fmt: skip
    finally:
        vllm_smol.update_weights(hf_smol.model)
    assert ids(vllm_smol.generate(prompts, params)) == ids(before)


def test_vllm_prompt_seeds_vary_identical_prompts(vllm_smol, chat_prompts):
    prompts = [chat_prompts[0]] * 3
    params = SamplingParams(temperature=1.0, max_tokens=16, prompt_seeds=(1, 2, 3))
    first = ids(vllm_smol.generate(prompts, params))
    assert len({tuple(group[0]) for group in first}) > 1
    assert ids(vllm_smol.generate(prompts, params)) == first
    same = ids(vllm_smol.generate(prompts, params.with_(prompt_seeds=(5, 5, 5))))
    assert same[0] == same[1] == same[2]


def test_vllm_weight_sync_is_verified_and_a_stale_engine_is_caught(vllm_smol, hf_smol):
    """After every sync the engine's probe log-probs must match the trainer's (full and LoRA)."""
    from agentgym.trainers.lora import LoRAConfig, apply_lora
    from agentgym.trainers.sync import WeightSyncError, verify_weight_sync

    tokenizer = hf_smol.tokenizer
    assert verify_weight_sync(vllm_smol, hf_smol.model, tokenizer)["max_abs_diff"] < 1e-3
    trainer_model = copy.deepcopy(hf_smol.model)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in trainer_model.parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.add_(noise * 0.02 * parameter.std())
    lora = apply_lora(copy.deepcopy(hf_smol.model), LoRAConfig(enabled=True, rank=8))
    with torch.no_grad():
        for name, parameter in lora.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
    try:
        for updated in (trainer_model, lora):
            with pytest.raises(WeightSyncError, match="not serving the updated policy"):
                verify_weight_sync(vllm_smol, updated, tokenizer)  # not synced yet: stale
            vllm_smol.update_weights(updated)
            assert verify_weight_sync(vllm_smol, updated, tokenizer)["max_abs_diff"] < 1e-3
    finally:
        vllm_smol.update_weights(hf_smol.model)
