"""Providers through the language server: a hosted model chosen as `provider/model`, its
cost in the progress end message, `aethel/status` and `aethel.throughput`, and a 429 wait
shown in the progress (fake Anthropic; real server process over stdio)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from lsprotocol import types

from aethel_lsp import protocol
from tests.e2e.lsp_harness import Harness, start_server
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.hosted import Fault, Reply
from tests.fakes.ollama import FakeOllama

pytestmark = pytest.mark.asyncio(loop_scope="module")
PY = "def add(a, b):\n    return a + b\n"
SEL = {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}
KEY = "sk-ant-server-secret"
MODEL = "claude/claude-haiku-5-5"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lsp(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[
        tuple[Harness, FakeAnthropic]]:
    claude = FakeAnthropic(api_key=KEY)
    claude.start()
    fake = FakeOllama(token_delay=0.002)
    fake.start()
    user_config = f'''
engine = "ollama"
[providers.claude]
kind = "anthropic"
hosts = ["{claude.url}"]
apiKeyEnv = "SERVER_ANTHROPIC_KEY"
prices = {{ "claude-haiku-5-5" = {{ input = 1.0, output = 5.0 }} }}
'''
    harness = await start_server(tmp_path_factory.mktemp("providers"), fake,
                                 user_config=user_config,
                                 extra_env={"SERVER_ANTHROPIC_KEY": KEY})
    yield harness, claude
    await harness.stop()
    claude.stop()


async def test_hosted_model_cost_reaches_status_progress_and_throughput(
        lsp: tuple[Harness, FakeAnthropic]) -> None:
    harness, claude = lsp
    selected = await harness.command(protocol.CMD_SELECT_MODEL, {"model": MODEL})
    assert selected == {"activeModel": MODEL, "task": "chat"}
    claude.enqueue(Reply(text="It adds.", input_tokens=1000, output_tokens=200))
    uri = harness.open("a.py", PY)
    await harness.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
    assert claude.bodies("/v1/messages")[0]["model"] == "claude-haiku-5-5"
    end = harness.progress_for_title("Explaining selection")[-1][-1]
    assert isinstance(end, types.WorkDoneProgressEnd) and end.message is not None
    assert "$0.002" in end.message and "via claude" in end.message
    status = await harness.wait_for(lambda: [s for s in harness.statuses
                                             if s.get("costUsd") is not None])
    assert status[-1]["costUsd"] == pytest.approx(0.002)
    assert status[-1]["provider"] == "claude"
    throughput = await harness.command(protocol.CMD_THROUGHPUT)
    assert throughput["models"][MODEL]["costUsd"] == pytest.approx(0.002)
    assert throughput["totalCostUsd"] == pytest.approx(0.002)
    assert throughput["last"]["provider"] == "claude"
    model_status = await harness.command(protocol.CMD_MODEL_STATUS)
    assert [p["name"] for p in model_status["providers"]] == ["claude"]
    assert KEY not in str(throughput) + str(model_status) + str(harness.statuses)


async def test_a_429_wait_shows_in_the_progress(lsp: tuple[Harness, FakeAnthropic]) -> None:
    harness, claude = lsp
    await harness.command(protocol.CMD_SELECT_MODEL, {"model": MODEL})
    claude.inject(Fault.http(429, retry_after="1"), path="/v1/messages")
    uri = harness.open("b.py", PY)
    await harness.command(protocol.CMD_EXPLAIN_SELECTION, {"uri": uri, "range": SEL})
    reports = harness.progress_for_title("Explaining selection")[-1]
    messages = [r.message for r in reports if isinstance(r, types.WorkDoneProgressReport)]
    assert any(m and m.startswith("waiting for rate limit (") for m in messages), messages
