"""The inline completion scheduler: latest wins, cache, stream reuse, deadline, loads.

Driven by `ScriptedEngine`: every token is fed by the test, so nothing here depends on
timing except generous functional bounds (`wait_for(..., 5)`).
"""

from __future__ import annotations

import asyncio

import pytest

from aethel_lsp.completion.cache import Anchor, CacheEntry, CompletionCache
from aethel_lsp.completion.debounce import TypingRhythm
from aethel_lsp.completion.requests import InlineRequest, Outcome, SchedulerSettings, Source
from aethel_lsp.completion.scheduler import CompletionScheduler
from aethel_lsp.engine.errors import EngineOffline
from aethel_lsp.engine.types import ChatRequest, GenerateRequest, ModelInfo, keep_alive_seconds
from aethel_lsp.prompts.fim import FimMode
from tests.unit.scripted_engine import ScriptedEngine

MODEL = "qwen2.5-coder:1.5b"
URI = "file:///w/main.py"
INSERT_MODEL = ModelInfo(MODEL, family="qwen2", capabilities=("completion", "insert"))


def make(engine: ScriptedEngine, **overrides: object) -> tuple[CompletionScheduler, list[str]]:
    values: dict[str, object] = {"model": MODEL, "deadline_ms": 5000, "other_documents": False}
    values.update(overrides)
    settings = SchedulerSettings(**values)  # type: ignore[arg-type]
    logs: list[str] = []
    return CompletionScheduler(lambda: engine, lambda: settings, log=logs.append), logs


def request(text: str, offset: int | None = None, *, invoked: bool = True) -> InlineRequest:
    return InlineRequest(
        URI, "python", text, len(text) if offset is None else offset, invoked=invoked
    )


async def warm(scheduler: CompletionScheduler, engine: ScriptedEngine, text: str = "w = ") -> None:
    """One finished request, so the model counts as loaded."""
    task = asyncio.ensure_future(scheduler.complete(request(text)))
    stream = await engine.next_stream(len(engine.streams) + 1)
    stream.feed("1")
    stream.finish()
    await asyncio.wait_for(task, 5)


# --- pure parts ---------------------------------------------------------------------


def test_anchor_typed_since() -> None:
    text = "x = compute(\n"
    anchor = Anchor.of(text, 4)
    assert anchor.typed_since(text, 4) == ""
    assert anchor.typed_since("x = comcompute(\n", 7) == "com"
    assert anchor.typed_since("x = com(\n", 7) is None  # text after the cursor changed
    doc = "x = \nend"
    anchor = Anchor.of(doc, 4)
    assert anchor.typed_since("x = foo\nend", 7) == "foo"
    assert anchor.typed_since("y = foo\nend", 7) is None  # text before changed
    assert anchor.typed_since("x = \nend", 3) is None  # cursor moved back


def test_cache_serves_the_rest_of_a_typed_suggestion() -> None:
    cache = CompletionCache(capacity=2)
    doc = "total = \n"
    cache.put(CacheEntry(URI, MODEL, Anchor.of(doc, 8), "sum(values)"))
    assert cache.lookup(URI, MODEL, "total = su\n", 10) == "m(values)"
    assert cache.lookup(URI, MODEL, "total = x\n", 9) is None  # typed something else
    assert cache.lookup(URI, "other-model", "total = su\n", 10) is None
    assert cache.lookup(URI, MODEL, "total = sum(values)\n", 19) is None  # fully accepted
    cache.put(CacheEntry(URI, MODEL, Anchor.of("a\n", 1), "b"))
    cache.put(CacheEntry(URI, MODEL, Anchor.of("c\n", 1), "d"))
    assert len(cache) == 2  # LRU evicted the oldest
    assert cache.lookup(URI, MODEL, "total = su\n", 10) is None
    cache.forget(URI)
    assert len(cache) == 0


def test_typing_rhythm_follows_the_typist() -> None:
    rhythm = TypingRhythm()
    assert rhythm.debounce_s(30, 200) == pytest.approx(0.115)  # unknown: the midpoint
    t = 0.0
    for _ in range(10):
        rhythm.note(t)
        t += 0.05
    assert rhythm.debounce_s(30, 200) == pytest.approx(0.075)
    rhythm.note(t + 5.0)  # a long pause forgets the rhythm
    assert rhythm.debounce_s(30, 200) == pytest.approx(0.115)
    fast = TypingRhythm()
    for i in range(5):
        fast.note(i * 0.005)
    assert fast.debounce_s(30, 200) == pytest.approx(0.030)  # clamped to the minimum


def test_keep_alive_seconds() -> None:
    assert keep_alive_seconds("30m") == 1800.0
    assert keep_alive_seconds("1h30m") == 5400.0
    assert keep_alive_seconds(90) == 90.0
    assert keep_alive_seconds(-1) is None
    assert keep_alive_seconds("-1m") is None
    assert keep_alive_seconds(None) == 300.0


# --- the scheduler ------------------------------------------------------------------


async def test_native_fim_request_and_answer() -> None:
    engine = ScriptedEngine({MODEL: INSERT_MODEL})
    scheduler, logs = make(engine)
    doc = "def add(a, b):\n    return \n\nprint(add(1, 2))\n"
    offset = doc.index("return ") + len("return ")
    task = asyncio.ensure_future(scheduler.complete(request(doc, offset)))
    stream = await engine.next_stream(1)
    assert isinstance(stream.request, GenerateRequest)
    assert stream.request.suffix == doc[offset:]
    assert stream.request.prompt == doc[:offset]
    assert stream.request.keep_alive == "30m"
    assert stream.request.options.num_predict == 64
    stream.feed("a ", "+ b")
    stream.finish()
    outcome = await asyncio.wait_for(task, 5)
    assert outcome.text == "a + b"
    assert outcome.source is Source.FRESH
    assert outcome.mode is FimMode.NATIVE
    assert any("FIM mode for qwen2.5-coder:1.5b: native" in line for line in logs)


async def test_template_and_chat_modes() -> None:
    engine = ScriptedEngine(
        {
            "codellama:7b-code": ModelInfo("codellama:7b-code", capabilities=("completion",)),
            "llama3.2:1b": ModelInfo("llama3.2:1b", capabilities=("completion",)),
        },
        manual=False,
        auto_tokens=lambda r: (
            ["```python\nresult\n```"] if isinstance(r, ChatRequest) else ["y<EOT>"]
        ),
    )
    scheduler, _ = make(engine, model="codellama:7b-code")
    outcome = await asyncio.wait_for(scheduler.complete(request("x = ")), 5)
    sent = engine.streams[0].request
    assert isinstance(sent, GenerateRequest)
    assert sent.raw and sent.suffix is None
    assert sent.prompt == "<PRE> x =  <SUF> <MID>"
    assert outcome.text == "y"
    chat, _ = make(engine, model="llama3.2:1b")
    outcome = await asyncio.wait_for(chat.complete(request("z = ")), 5)
    assert isinstance(engine.streams[1].request, ChatRequest)
    assert outcome.text == "result"
    assert outcome.mode is FimMode.CHAT


async def test_the_fim_plan_follows_the_engine_that_serves() -> None:
    """A plan depends on the engine as well as the model: `auto` may switch to the
    embedded engine (raw continuation), and new settings build a new engine."""
    name = "llama3.2:1b"
    engine = ScriptedEngine({name: ModelInfo(name, capabilities=("completion",))},
                            manual=False, auto_tokens=lambda r: ["1"])
    current: list[ScriptedEngine] = [engine]
    settings = SchedulerSettings(model=name, deadline_ms=5000, other_documents=False)
    scheduler = CompletionScheduler(lambda: current[0], lambda: settings)
    first = await asyncio.wait_for(scheduler.complete(request("a = ")), 5)
    assert first.mode is FimMode.CHAT
    engine.kind = "embedded"  # auto now serves from the embedded engine
    second = await asyncio.wait_for(scheduler.complete(request("b = ")), 5)
    assert second.mode is FimMode.CONTINUE
    current[0] = ScriptedEngine(
        {name: ModelInfo(name, capabilities=("completion", "insert"))},
        manual=False, auto_tokens=lambda r: ["1"],
    )
    third = await asyncio.wait_for(scheduler.complete(request("c = ")), 5)
    assert third.mode is FimMode.NATIVE


async def test_superseded_request_is_answered_at_once_and_its_stream_closed() -> None:
    engine = ScriptedEngine({MODEL: INSERT_MODEL})
    scheduler, _ = make(engine)
    await warm(scheduler, engine)
    first = asyncio.ensure_future(scheduler.complete(request("alpha = ")))
    stream = await engine.next_stream(2)
    stream.feed("1")
    await asyncio.sleep(0)
    # The user moved elsewhere: a request that does not extend the first prompt.
    second = asyncio.ensure_future(scheduler.complete(request("beta = ")))
    outcome = await asyncio.wait_for(first, 5)
    assert outcome == Outcome("", Source.SUPERSEDED)
    await asyncio.wait_for(stream.closed.wait(), 5)
    assert stream.closed_early
    third = await engine.next_stream(3)
    third.feed("2")
    third.finish()
    assert (await asyncio.wait_for(second, 5)).text == "2"


async def test_debounce_burst_makes_no_upstream_request_until_the_pause() -> None:
    engine = ScriptedEngine({MODEL: INSERT_MODEL})
    scheduler, _ = make(engine, debounce_min_ms=1000, debounce_max_ms=1000)
    text = "name = "
    tasks = []
    for ch in "abcde":
        text += ch
        tasks.append(asyncio.ensure_future(scheduler.complete(request(text, invoked=False))))
        await asyncio.sleep(0)
    results = await asyncio.wait_for(asyncio.gather(*tasks[:-1]), 5)
    assert all(r.source is Source.SUPERSEDED for r in results)
    assert engine.streams == []
    tasks[-1].cancel()


async def test_running_stream_is_reused_when_the_user_types_what_it_writes() -> None:
    engine = ScriptedEngine({MODEL: INSERT_MODEL})
    scheduler, _ = make(engine)
    await warm(scheduler, engine)
    first = asyncio.ensure_future(scheduler.complete(request("x = ")))
    stream = await engine.next_stream(2)
    stream.feed("comp")
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(scheduler.complete(request("x = co")))
    assert (await asyncio.wait_for(first, 5)).source is Source.SUPERSEDED
    stream.feed("ute(a)")
    stream.finish()
    outcome = await asyncio.wait_for(second, 5)
    assert outcome.text == "mpute(a)"
    assert outcome.source is Source.REUSED
    assert len(engine.streams) == 2  # no new upstream request
    assert not stream.closed_early


async def test_diverging_stream_is_closed_and_replaced() -> None:
    engine = ScriptedEngine({MODEL: INSERT_MODEL})
    scheduler, _ = make(engine)
    await warm(scheduler, engine)
    first = asyncio.ensure_future(scheduler.complete(request("x = ")))
    stream = await engine.next_stream(2)
    stream.feed("comp")
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(scheduler.complete(request("x = ma")))
    await asyncio.wait_for(first, 5)
    await asyncio.wait_for(stream.closed.wait(), 5)
    assert stream.closed_early
    fresh = await engine.next_stream(3)
    fresh.feed("x(a)")
    fresh.finish()
    assert (await asyncio.wait_for(second, 5)).text == "x(a)"


async def test_typed_through_cache_hit_needs_no_engine_request() -> None:
    engine = ScriptedEngine(
        {MODEL: INSERT_MODEL}, manual=False, auto_tokens=lambda r: ["sum(values)"]
    )
    scheduler, _ = make(engine)
    first = await asyncio.wait_for(scheduler.complete(request("total = ")), 5)
    assert first.text == "sum(values)"
    hit = await asyncio.wait_for(scheduler.complete(request("total = su", invoked=False)), 5)
    assert hit == Outcome("m(values)", Source.CACHE, hit.elapsed_ms)
    assert len(engine.streams) == 1
    assert scheduler.stats.cache_hits == 1


async def test_deadline_returns_the_complete_lines_and_keeps_the_stream() -> None:
    engine = ScriptedEngine({MODEL: INSERT_MODEL})
    scheduler, _ = make(engine, deadline_ms=150)
    await warm(scheduler, engine)
    doc = "def f():\n"
    task = asyncio.ensure_future(scheduler.complete(request(doc)))
    stream = await engine.next_stream(2)
    stream.feed("    a = 1\n", "    b = 2\n", "    c = ")
    outcome = await asyncio.wait_for(task, 5)
    assert outcome.partial
    assert outcome.text == "    a = 1\n    b = 2"
    assert not stream.finished  # still running, for the next request / the cache
    # The user accepts the two lines: the next request adopts the same stream.
    doc2 = doc + "    a = 1\n    b = 2\n"
    follow = asyncio.ensure_future(scheduler.complete(request(doc2)))
    await asyncio.sleep(0.01)
    stream.feed("3\n")
    stream.finish()
    outcome = await asyncio.wait_for(follow, 5)
    assert outcome.text == "    c = 3"
    assert len(engine.streams) == 2


async def test_settled_answer_returns_early_and_closes_its_stream() -> None:
    engine = ScriptedEngine({MODEL: INSERT_MODEL})
    scheduler, _ = make(engine)
    await warm(scheduler, engine)
    doc = "print(foo)\n"
    task = asyncio.ensure_future(scheduler.complete(request(doc, doc.index(")"))))
    stream = await engine.next_stream(2)
    stream.feed("_bar", "\nwasted")
    outcome = await asyncio.wait_for(task, 5)
    assert outcome.text == "_bar"
    await asyncio.wait_for(stream.closed.wait(), 5)
    assert stream.closed_early


async def test_a_model_load_is_not_cancelled_by_a_keystroke() -> None:
    engine = ScriptedEngine({MODEL: INSERT_MODEL})
    scheduler, logs = make(engine)
    first = asyncio.ensure_future(scheduler.complete(request("alpha = ")))
    loading = await engine.next_stream(1)  # cold model: no token yet
    second = asyncio.ensure_future(scheduler.complete(request("beta = ")))
    assert (await asyncio.wait_for(first, 5)).source is Source.SUPERSEDED
    replacement = await engine.next_stream(2)
    await asyncio.sleep(0.01)
    assert not loading.finished  # kept open while the model loads
    assert scheduler.stats.loads_protected == 1
    assert any("until the model has loaded" in line for line in logs)
    loading.feed("1")  # loaded: the first token arrives, now it is closed
    await asyncio.wait_for(loading.closed.wait(), 5)
    assert loading.closed_early
    replacement.feed("2")
    replacement.finish()
    assert (await asyncio.wait_for(second, 5)).text == "2"


async def test_cancelled_request_closes_its_stream_when_no_successor_comes() -> None:
    engine = ScriptedEngine({MODEL: INSERT_MODEL})
    scheduler, _ = make(engine)
    await warm(scheduler, engine)
    task = asyncio.ensure_future(scheduler.complete(request("gamma = ")))
    stream = await engine.next_stream(2)
    stream.feed("1")
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(stream.closed.wait(), 5)
    assert stream.closed_early


async def test_engine_error_is_an_empty_answer_with_a_message() -> None:
    engine = ScriptedEngine({MODEL: INSERT_MODEL})
    scheduler, _ = make(engine)
    task = asyncio.ensure_future(scheduler.complete(request("x = ")))
    stream = await engine.next_stream(1)
    stream.fail(EngineOffline("Ollama is not running at scripted"))
    outcome = await asyncio.wait_for(task, 5)
    assert outcome.source is Source.ERROR
    assert outcome.text == ""
    assert "not running" in outcome.message


async def test_no_model_configured() -> None:
    engine = ScriptedEngine({})
    scheduler, _ = make(engine, model="")
    outcome = await scheduler.complete(request("x = "))
    assert outcome.source is Source.EMPTY
    assert "No model" in outcome.message


async def test_unknown_model_capabilities_are_guessed_and_logged() -> None:
    engine = ScriptedEngine({}, manual=False, auto_tokens=lambda r: ["1"])
    scheduler, logs = make(engine, model="starcoder2:3b")
    outcome = await asyncio.wait_for(scheduler.complete(request("x = ")), 5)
    assert outcome.mode is FimMode.TEMPLATE
    assert any("guessing from its name" in line for line in logs)


async def test_forget_document_answers_and_closes() -> None:
    engine = ScriptedEngine({MODEL: INSERT_MODEL})
    scheduler, _ = make(engine)
    await warm(scheduler, engine)
    task = asyncio.ensure_future(scheduler.complete(request("delta = ")))
    stream = await engine.next_stream(2)
    stream.feed("1")
    await asyncio.sleep(0.01)
    scheduler.forget_document(URI)
    assert (await asyncio.wait_for(task, 5)).source is Source.SUPERSEDED
    await asyncio.wait_for(stream.closed.wait(), 5)


def test_scheduler_settings_follow_the_completion_section() -> None:
    from aethel_lsp.completion.scheduler import scheduler_settings
    from aethel_lsp.config import CompletionSettings, Settings

    settings = Settings(
        keep_alive="10m",
        context_size=4096,
        completion=CompletionSettings(max_tokens=32, deadline_ms=800, debounce_min_ms=10),
    )
    mapped = scheduler_settings(settings, "m")
    assert mapped.model == "m"
    assert (mapped.max_tokens, mapped.deadline_ms, mapped.debounce_min_ms) == (32, 800, 10)
    assert mapped.keep_alive == "10m"
    assert mapped.num_ctx == 4096  # same as the actions: no model reload between them


async def test_model_choice_asks_once_per_settings() -> None:
    from aethel_lsp.completion.scheduler import ModelChoice

    calls: list[int] = []

    async def find() -> str:
        calls.append(1)
        return "best"

    choice = ModelChoice()
    assert await choice.get("configured", "k", find) == "configured"
    assert await choice.get("", "k", find) == "best"
    assert await choice.get("", "k", find) == "best"
    assert len(calls) == 1
    await choice.get("", "other settings", find)
    assert len(calls) == 2


async def test_offline_engine_is_not_asked_at_every_keystroke() -> None:
    engine = ScriptedEngine({MODEL: INSERT_MODEL})
    scheduler, _ = make(engine)
    task = asyncio.ensure_future(scheduler.complete(request("x = ")))
    stream = await engine.next_stream(1)
    stream.fail(EngineOffline("Ollama is not running at scripted"))
    assert (await asyncio.wait_for(task, 5)).source is Source.ERROR
    again = await asyncio.wait_for(scheduler.complete(request("x = 1")), 5)
    assert again.source is Source.EMPTY
    assert "not running" in again.message
    assert len(engine.streams) == 1  # backing off: no new upstream request


async def test_a_slow_show_is_bounded_by_the_deadline() -> None:
    engine = ScriptedEngine(
        {"starcoder2:3b": ModelInfo("starcoder2:3b")}, manual=False, auto_tokens=lambda r: ["1"]
    )
    engine.show_delay = 10.0
    scheduler, logs = make(engine, model="starcoder2:3b", deadline_ms=100)
    outcome = await asyncio.wait_for(scheduler.complete(request("x = ")), 5)
    assert any("no answer before the deadline" in line for line in logs)
    assert outcome.mode is FimMode.TEMPLATE  # guessed from the name, for this request


async def test_an_engine_that_cannot_be_built_is_an_error_answer() -> None:
    from aethel_lsp.engine.errors import EngineNotInstalled

    def broken() -> ScriptedEngine:
        raise EngineNotInstalled("xllamacpp is not installed")

    scheduler = CompletionScheduler(broken, lambda: SchedulerSettings(model=MODEL))
    outcome = await asyncio.wait_for(scheduler.complete(request("x = ")), 5)
    assert outcome.source is Source.ERROR
    assert "not installed" in outcome.message
