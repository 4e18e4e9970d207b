"""Measured recommendations follow the measured speeds: the fake scripted per model, and
pure cases with synthetic probes."""

from __future__ import annotations

from pathlib import Path

import pytest

from aethel_lsp.engine import ModelInfo, OllamaEngine, UsageStats
from aethel_lsp.engine.measure import (
    ProbeMeasurement,
    measure_installed,
    measured_json,
    probe_model,
    recommend_measured,
)
from tests.fakes.ollama import FakeOllama, Reply
from tests.fakes.ollama_models import CHAT, CODER, EMBEDDING, THINKING

B = 1_000_000_000


def speed(tokens_per_second: float, tokens: int = 8) -> Reply:
    """A reply the fake reports at exactly `tokens_per_second` (engine metrics)."""
    return Reply(tokens=["tok "] * tokens, eval_count=tokens,
                 eval_duration_ns=int(tokens / tokens_per_second * 1e9))


def by_use_case(recs: list) -> dict:  # type: ignore[type-arg]
    return {r.use_case: r for r in recs}


async def measure(fake: FakeOllama, tmp_path: Path, deadline_ms: float = 1500.0):  # type: ignore[no-untyped-def]
    engine = OllamaEngine(fake.url)
    stats = UsageStats(tmp_path / "usage.sqlite3")
    try:
        return await measure_installed(engine, deadline_ms=deadline_ms, stats=stats,
                                       keep_alive="30m"), stats.probes()
    finally:
        await engine.aclose()
        stats.close()


async def test_recommendations_follow_the_scripted_speeds(tmp_path: Path) -> None:
    with FakeOllama([CODER, CHAT, EMBEDDING, THINKING]) as fake:
        fake.set_reply(CODER.name, speed(100.0))
        fake.set_reply(CHAT.name, speed(20.0))
        fake.set_reply(THINKING.name, speed(50.0))
        (models, probes, recs), stored = await measure(fake, tmp_path)
    assert {m.name for m in models} == {CODER.name, CHAT.name, THINKING.name}  # no embedding
    rates = {p.model: p.tokens_per_second for p in probes}
    assert rates == pytest.approx({CODER.name: 100.0, CHAT.name: 20.0, THINKING.name: 50.0})
    got = by_use_case(recs)
    assert got["inlineCompletion"].model == CODER.name and got["inlineCompletion"].fits
    assert "native fill-in-the-middle" in got["inlineCompletion"].reason
    # 300 tokens at 20 tok/s = 15 s fits the 30 s budget; the larger non-thinking model wins.
    assert got["actions"].model == CHAT.name
    assert got["aethelGeneration"].model == CODER.name  # the code model
    assert all(r.pull is None for r in recs)
    # The fixed table's picks, judged by the measurements.
    note = got["inlineCompletion"].fixed_note
    assert note.startswith(f"The fixed table recommends {CODER.name} for coding: measured, "
                           "it fits here (≈2")  # 24 tokens at 100 tok/s + the first token
    assert note.endswith(" ms of 1500 ms) — the same choice.")
    assert got["actions"].fixed_table is not None
    # the table passes over a thinking model when another can answer, like the measured pick
    assert got["actions"].fixed_table.model == CHAT.name
    assert "it fits here" in got["actions"].fixed_note
    assert "the same choice" in got["actions"].fixed_note
    assert sorted(p.model for p in stored) == sorted(rates)  # kept with the usage stats
    data = measured_json(probes, recs)
    assert set(data) == {"measurements", "recommendations"}
    assert data["recommendations"][0]["candidates"][0]["tokensPerSecond"] is not None


async def test_slow_code_model_loses_completion_and_a_pull_is_suggested(tmp_path: Path) -> None:
    with FakeOllama([CODER, CHAT]) as fake:
        fake.set_reply(CODER.name, speed(5.0))  # 24 tokens: 4.8 s > 1.5 s
        fake.set_reply(CHAT.name, speed(100.0))
        (_models, _probes, recs), _ = await measure(fake, tmp_path)
    inline = by_use_case(recs)["inlineCompletion"]
    assert inline.model == CHAT.name and inline.fits
    assert inline.pull == "qwen2.5-coder:3b"  # predicted from the fast chat model
    assert "extrapolated from llama3.2:latest" in inline.pull_reason
    slow = next(c for c in inline.candidates if c.model.name == CODER.name)
    assert not slow.fits and slow.estimate_ms is not None and slow.estimate_ms > 1500


async def test_nothing_fits_picks_the_fastest_and_says_why(tmp_path: Path) -> None:
    with FakeOllama([CODER, CHAT]) as fake:
        fake.set_reply(CODER.name, speed(4.0))
        fake.set_reply(CHAT.name, speed(2.0))
        (_m, _p, recs), _ = await measure(fake, tmp_path)
    inline = by_use_case(recs)["inlineCompletion"]
    assert inline.model == CODER.name and not inline.fits
    assert "No installed model is fast enough" in inline.reason
    assert inline.pull == "qwen2.5-coder:0.5b"
    actions = by_use_case(recs)["actions"]
    # The smallest suitable model for actions is already installed: nothing to pull.
    assert not actions.fits and actions.pull is None
    assert "too slow here" in actions.pull_reason


async def test_a_raised_deadline_changes_the_verdict(tmp_path: Path) -> None:
    with FakeOllama([CODER]) as fake:
        fake.set_reply(CODER.name, speed(10.0))  # 24 tokens: 2.4 s
        (_m, _p, tight), _ = await measure(fake, tmp_path, deadline_ms=1500)
        (_m, _p, relaxed), _ = await measure(fake, tmp_path, deadline_ms=3000)
    assert not by_use_case(tight)["inlineCompletion"].fits
    assert by_use_case(relaxed)["inlineCompletion"].fits


async def test_probe_of_a_missing_model_fails_cleanly(fake_ollama: FakeOllama) -> None:
    engine = OllamaEngine(fake_ollama.url)
    try:
        probe = await probe_model(engine, "nothere:1b")
    finally:
        await engine.aclose()
    assert not probe.ok and probe.error and "ollama pull nothere:1b" in probe.error
    assert probe.estimate_ms(24) is None


async def test_probe_asks_for_a_tiny_deterministic_generation(fake_ollama: FakeOllama) -> None:
    engine = OllamaEngine(fake_ollama.url)
    try:
        await probe_model(engine, CODER.name, keep_alive="10m")
    finally:
        await engine.aclose()
    body = fake_ollama.generate_requests()[-1]
    assert body["options"] == {"temperature": 0.0, "num_predict": 16, "seed": 0}
    assert body["keep_alive"] == "10m" and body["think"] is False and "suffix" not in body


def test_warm_ttft_and_effective_rate() -> None:
    probe = ProbeMeasurement("m", True, load_ms=800.0, ttft_ms=900.0, tokens_per_second=40.0,
                             wall_tokens_per_second=20.0)
    assert probe.warm_ttft_ms == 100.0
    assert probe.effective_tokens_per_second == 20.0  # what the user waits for
    assert probe.estimate_ms(20) == pytest.approx(1100.0)


def test_no_models_means_pull_the_fixed_choice() -> None:
    recs = recommend_measured([], [])
    assert all(r.model is None and not r.fits for r in recs)
    assert by_use_case(recs)["inlineCompletion"].pull == "qwen2.5-coder:3b"
    assert "nothing installed could be measured" in by_use_case(recs)["actions"].pull_reason


def test_larger_model_preferred_when_both_fit_for_aethel() -> None:
    small = ModelInfo("qwen2.5-coder:1.5b", parameters=int(1.5 * B),
                      capabilities=("completion", "insert"))
    big = ModelInfo("qwen2.5-coder:7b", parameters=int(7.6 * B),
                    capabilities=("completion", "insert"))
    probes = [ProbeMeasurement(small.name, True, 1.0, 10.0, 120.0),
              ProbeMeasurement(big.name, True, 1.0, 30.0, 25.0)]
    got = by_use_case(recommend_measured([small, big], probes))
    assert got["aethelGeneration"].model == big.name  # 400 tokens in 16 s: fits, better
    # For completion, both fit, but 24 tokens at 25 tok/s (~1 s) is not comfortable.
    assert got["inlineCompletion"].model == small.name
