"""The distiller against the fake Ollama: two models scripted so that candidates fail in
different ways (a syntax error, minted money) and one is valid; the valid one is chosen
with the right explanation, progress is reported per candidate, agreement stops the run
early, and cancelling closes every upstream stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aethel_lsp.distill.candidate import Candidate
from aethel_lsp.distill.run import DistillEvent, DistillOptions, distill
from aethel_lsp.distill.scoring import name_match, rank, words
from aethel_lsp.engine import EngineOffline, OllamaEngine
from aethel_lsp.engine.types import Metrics
from aethel_lsp.language import Diagnostic, Severity
from aethel_lsp.language.spans import Position, Range
from tests.fakes.ollama import FakeOllama, Reply

CODER = "qwen2.5-coder:1.5b"
CHAT = "llama3.2:latest"
EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "aethel" / "examples"
MINTING = (EXAMPLES / "conservation_violation.ae").read_text()
BROKEN = "intent pay(from: Account {\n  guard { x = 1 }\n"
PAY = """intent pay(payer: Account, payee: Account, amount: Balance) {
    guard {
        amount > 0;
        old_payer == payer;
        old_payee == payee;
    }
    solve {
        priority: security;
    }
    verify {
        payer == old_payer - amount;
        payee == old_payee + amount;
    }
}"""
MOVE = PAY.replace("intent pay(", "intent move_value(")
DESCRIPTION = "pay an amount from a payer to a payee"


def fenced(code: str) -> Reply:
    return Reply(text=f"Here it is:\n```aethel\n{code}\n```\n")


@pytest.fixture
async def engine(fake_ollama: FakeOllama) -> AsyncIterator[OllamaEngine]:
    engine = OllamaEngine(fake_ollama.url)
    yield engine
    await engine.aclose()


def options(**overrides: object) -> DistillOptions:
    base: dict[str, object] = {"models": (CHAT, CODER), "candidates": 4, "agree": 0,
                               "concurrency": 1, "repair_rounds": 0}
    base.update(overrides)
    return DistillOptions(**base)  # type: ignore[arg-type]


async def test_the_valid_candidate_wins_and_the_others_are_rejected_for_their_reasons(
    fake_ollama: FakeOllama, engine: OllamaEngine
) -> None:
    fake_ollama.enqueue(fenced(BROKEN), fenced(MINTING), model=CHAT)
    fake_ollama.enqueue(fenced(MOVE), fenced(PAY), model=CODER)
    events: list[DistillEvent] = []
    result = await distill(engine, DESCRIPTION, options(), on_event=events.append)

    assert result.valid and result.best is not None
    assert (result.best.model, result.best.text) == (CODER, PAY)  # names match: pay, payer...
    ranked = [(c.index, c.valid) for c in result.candidates]
    assert ranked[:2] == [(3, True), (1, True)] and {i for i, _ in ranked[2:]} == {0, 2}
    lines = result.explanation.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith(f"Chose #4 ({CODER}): valid, 0 warnings, names match 100%")
    assert lines[1].startswith(f"#2 ({CODER}) ranked lower: valid, 0 warnings, names match 75%")
    syntax = next(line for line in lines if line.startswith(f"#1 ({CHAT})"))
    minting = next(line for line in lines if line.startswith(f"#3 ({CHAT})"))
    assert syntax.startswith(f"#1 ({CHAT}) rejected: syntax: line 1: ")
    assert minting.startswith(f"#3 ({CHAT}) rejected: conservation: line ")
    assert "bad_transfer" in minting and "\n" not in minting  # the checker's own words
    shape = result.to_json()
    assert set(shape) == {"best", "candidates", "explanation"}
    assert set(shape["best"]) == {"model", "provider", "text", "valid", "score",
                                  "diagnostics", "reason", "costUsd", "metrics"}
    assert shape["best"]["provider"] == "local" and shape["best"]["costUsd"] is None
    assert shape["best"]["score"] > shape["candidates"][1]["score"] > 50 > \
        shape["candidates"][2]["score"]
    assert events[-1].message.startswith("4/4 checked, 2 valid")
    assert [e.checked for e in events if "checked" in e.message][-1] == 4
    temperatures = [r["options"]["temperature"] for r in fake_ollama.chat_requests()]
    assert temperatures == [0.2, 0.2, 0.5, 0.5]  # round-robin, then hotter samples


async def test_a_candidate_is_repaired_before_it_is_judged(
    fake_ollama: FakeOllama, engine: OllamaEngine
) -> None:
    fake_ollama.enqueue(fenced(MINTING), fenced(PAY), model=CODER)
    result = await distill(engine, DESCRIPTION,
                           options(models=(CODER,), candidates=1, repair_rounds=2))
    assert result.valid and result.best is not None and result.best.text == PAY
    assert "after 1 repair round" in result.best.reason
    repair = fake_ollama.chat_requests()[-1]["messages"][-1]["content"]
    assert "conservation" in repair and "bad_transfer" in repair


async def test_agreeing_valid_candidates_stop_the_run(
    fake_ollama: FakeOllama, engine: OllamaEngine
) -> None:
    # the same program twice, laid out differently and commented: they agree
    fake_ollama.enqueue(fenced(PAY), fenced("# again\n" + PAY.replace("    ", "  ")),
                        fenced(MOVE), fenced(MOVE), model=CODER)
    result = await distill(engine, DESCRIPTION, options(models=(CODER,), agree=2))
    assert sorted(c.index for c in result.candidates) == [0, 1]
    assert "Stopped after 2 of 4: 2 valid candidates agree." in result.explanation
    assert len(fake_ollama.chat_requests()) == 2


async def test_no_valid_candidate_is_said_plainly(
    fake_ollama: FakeOllama, engine: OllamaEngine
) -> None:
    fake_ollama.set_reply(CHAT, fenced(BROKEN))
    result = await distill(engine, DESCRIPTION, options(models=(CHAT,), candidates=2))
    assert not result.valid and result.best is not None and not result.best.valid
    assert result.explanation.startswith("No candidate of 2 passed the checker.")


async def test_an_engine_that_answers_nobody_is_an_error_not_a_verdict() -> None:
    engine = OllamaEngine("http://127.0.0.1:9")
    try:
        # The engine's own error (aethel/status then says "offline"), not a bare EngineError.
        with pytest.raises(EngineOffline, match="not running"):
            await distill(engine, DESCRIPTION, options(models=(CODER,), candidates=2))
    finally:
        await engine.aclose()


async def test_cancelling_the_run_closes_every_stream(
    fake_ollama: FakeOllama, engine: OllamaEngine
) -> None:
    fake_ollama.set_reply(CODER, Reply(tokens=["x "] * 400, token_delay=0.05))
    fake_ollama.set_reply(CHAT, Reply(tokens=["y "] * 400, token_delay=0.05))
    run = asyncio.ensure_future(
        distill(engine, DESCRIPTION, options(candidates=4, concurrency=2)))
    deadline = time.monotonic() + 20
    while sum(s.tokens_sent > 0 for s in fake_ollama.streams) < 2:
        assert time.monotonic() < deadline, fake_ollama.streams
        await asyncio.sleep(0.02)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    while not all(s.closed_early for s in fake_ollama.streams):
        assert time.monotonic() < deadline, fake_ollama.streams
        await asyncio.sleep(0.02)
    assert not any(s.completed for s in fake_ollama.streams)
    assert len(fake_ollama.streams) == 2  # two at once for the one provider, none after


# -- scoring ----------------------------------------------------------------------------


def _diagnostic(severity: Severity) -> Diagnostic:
    point = Position(0, 0, 0)
    return Diagnostic(Range(point, point), severity, "something", "test")


def _candidate(index: int, *, valid: bool = True, warnings: int = 0, text: str = PAY,
               cost: float | None = None, latency: float | None = None) -> Candidate:
    diagnostics = [_diagnostic(Severity.WARNING)] * warnings
    if not valid:
        diagnostics.append(_diagnostic(Severity.ERROR))
    metrics = Metrics(model="m", latency_ms=latency) if latency is not None else None
    return Candidate(index, "m", "local", text, tuple(diagnostics), 1, metrics, cost)


def test_ranking_precedence_and_stable_ties() -> None:
    order = lambda found: [c.index for c in rank(found, DESCRIPTION)]  # noqa: E731
    assert order([_candidate(0, valid=False), _candidate(1, warnings=3)]) == [1, 0]
    assert order([_candidate(0, warnings=2), _candidate(1, warnings=1)]) == [1, 0]
    assert order([_candidate(0, text=MOVE), _candidate(1, text=PAY)]) == [1, 0]
    assert order([_candidate(0, cost=0.02), _candidate(1, cost=0.01)]) == [1, 0]
    assert order([_candidate(0, latency=900.0), _candidate(1, latency=300.0)]) == [1, 0]
    assert order([_candidate(0), _candidate(1), _candidate(2)]) == [0, 1, 2]
    # a higher score never ranks lower
    mixed = [_candidate(0, valid=False), _candidate(1, warnings=1, cost=0.5),
             _candidate(2, text=MOVE, latency=10.0), _candidate(3, latency=20.0)]
    scores = [c.score for c in rank(mixed, DESCRIPTION)]
    assert scores == sorted(scores, reverse=True)


def test_name_match_reads_intent_and_parameter_names() -> None:
    assert words("transferWithFee to the treasury_account") == {
        "transfer", "fee", "treasury", "account"}
    assert name_match(DESCRIPTION, PAY) == 1.0  # pay, amount, payer, payee
    assert name_match(DESCRIPTION, MOVE) == 0.75
    assert name_match("", PAY) == 0.0
