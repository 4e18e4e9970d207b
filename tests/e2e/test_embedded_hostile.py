"""The embedded engine inside the real server process, used badly: a model path that does
not exist or is not a model, a request cancelled while the model loads, three requests at
once on two slots, and a best-of-N run on it. Every request gets one clear answer, the
server keeps serving."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from aethel_lsp import protocol
from tests.conftest import isolated_environ
from tests.e2e.lsp_harness import Harness, start_server
from tests.unit.embedded_support import model_env, requires_embedded

pytestmark = [pytest.mark.embedded, requires_embedded]

PY = "def add(a, b):\n    return a + b\n"
SEL = {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}


async def start(base: Path, model: str = "", **embedded: Any) -> Harness:
    settings: dict[str, Any] = {"engine": "embedded", "maxTokens": 16, "temperature": 0.0,
                                "model": model}
    if embedded:
        settings["embedded"] = embedded
    return await start_server(base, None, editor_settings=settings, extra_env=model_env())


def explain_request(lsp: Harness, name: str, msg_id: str | None = None) -> asyncio.Future[Any]:
    uri = lsp.open(name, PY)
    return asyncio.ensure_future(lsp.client.protocol.send_request_async(
        types.WORKSPACE_EXECUTE_COMMAND,
        types.ExecuteCommandParams(command=protocol.CMD_EXPLAIN_SELECTION,
                                   arguments=[{"uri": uri, "range": SEL}]),
        msg_id=msg_id))


@pytest.mark.parametrize("content", [None, b"", b"\x00garbage" * 64])
async def test_a_bad_model_path_is_one_clear_error(
    tmp_path: Path, content: bytes | None
) -> None:
    model = tmp_path / "model.gguf"
    if content is not None:
        model.write_bytes(content)
    lsp = await start(tmp_path, model="model", modelPath=str(model))
    try:
        with pytest.raises(JsonRpcException) as failed:
            await asyncio.wait_for(explain_request(lsp, "a.py"), 60)
        message = str(failed.value)
        assert str(model) in message
        assert "input params" not in message and "Traceback" not in message
        status = await lsp.command(protocol.CMD_MODEL_STATUS)  # a status, not an error
        assert status["engine"] == "embedded"
        assert status["available"] is (content is not None)
        if content is None:
            assert "does not exist" in status["error"]
        with pytest.raises(JsonRpcException) as again:  # still serving, the same answer
            await asyncio.wait_for(explain_request(lsp, "b.py"), 60)
        assert str(again.value) == message
    finally:
        await lsp.stop()


def test_cli_status_json_without_a_usable_engine_prints_the_status(tmp_path: Path) -> None:
    env = isolated_environ(tmp_path / "env", model_env())
    config = Path(env["XDG_CONFIG_HOME"]) / "aethel-lsp" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    missing = tmp_path / "nowhere.gguf"
    config.write_text(f'[embedded]\nmodelPath = "{missing}"\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "aethel_lsp", "status", "--engine", "embedded",
                           "--json"], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 1
    status = json.loads(done.stdout)
    assert status["available"] is False and status["engine"] == "embedded"
    assert str(missing) in status["error"]
    [line] = done.stderr.splitlines()
    assert line.startswith("error: ") and str(missing) in line


async def test_cancel_during_the_load_then_three_requests_on_two_slots(tmp_path: Path) -> None:
    lsp = await start(tmp_path)
    try:
        first = explain_request(lsp, "first.py", msg_id="during-load")
        await asyncio.sleep(0.05)  # the load (about half a second) has begun
        lsp.client.cancel_request(types.CancelParams(id="during-load"))
        with pytest.raises(JsonRpcException):
            await asyncio.wait_for(first, 60)
        together = [explain_request(lsp, f"c{i}.py") for i in range(3)]
        results = await asyncio.wait_for(asyncio.gather(*together), 180)
        assert all(r["metrics"]["tokensGenerated"] > 0 for r in results), results
    finally:
        await lsp.stop()
