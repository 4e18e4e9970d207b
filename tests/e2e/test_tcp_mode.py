"""End to end: `aethel-lsp --tcp` serves one editor and nobody else.

The real server process on a loopback port, driven by a minimal LSP client over a
socket: an HTTP POST (what a web page can send) and a second client are refused while
the first client keeps working; a token, when required, is checked on `initialize`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import isolated_environ
from tests.fakes.ollama import FakeOllama

SERVER = [sys.executable, "-m", "aethel_lsp"]
TIMEOUT = 20.0


class RawClient:
    """Just enough LSP over a socket: send, and wait for the response to a request."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.next_id = 0
        self.notifications: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        self.writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    async def receive(self) -> dict[str, Any] | None:
        """The next message, or None when the server closed the connection."""
        length = 0
        while True:
            try:
                line = await asyncio.wait_for(self.reader.readline(), TIMEOUT)
            except ConnectionResetError:
                return None
            if not line:
                return None
            if line == b"\r\n":
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        data = await asyncio.wait_for(self.reader.readexactly(length), TIMEOUT)
        message: dict[str, Any] = json.loads(data)
        return message

    async def request(self, method: str, params: Any = None) -> dict[str, Any] | None:
        self.next_id += 1
        wanted = self.next_id
        self.send({"id": wanted, "method": method, "params": params})
        while (message := await self.receive()) is not None:
            if message.get("id") == wanted and "method" not in message:
                return message
            if "method" in message and "id" in message:  # a server request: answer null
                self.send({"id": message["id"], "result": None})
            elif "method" in message:
                self.notifications.append(message)
        return None

    async def initialize(self, options: Any = None) -> dict[str, Any] | None:
        answer = await self.request(
            "initialize",
            {"processId": None, "rootUri": None, "capabilities": {},
             "initializationOptions": options},
        )
        if answer is not None and "result" in answer:
            self.send({"method": "initialized", "params": {}})
        return answer

    async def closed_by_server(self) -> bool:
        """True when the server closes the connection (reads EOF) within the timeout."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), TIMEOUT):
                pass
        except (ConnectionResetError, BrokenPipeError):
            pass
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await self.writer.wait_closed()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _wait_listening(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited early"
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.write_eof()  # an empty connection: harmless, it never held the session
        await asyncio.wait_for(reader.read(), TIMEOUT)  # the server closed it: slot free
        writer.close()
        return
    raise AssertionError("the server never listened")


@pytest.fixture
async def fake() -> AsyncIterator[FakeOllama]:
    server = FakeOllama(models=["llama3.2"])
    server.start()
    yield server
    server.stop()


def _spawn(tmp_path: Path, fake: FakeOllama, port: int, *extra: str) -> subprocess.Popen[bytes]:
    env = isolated_environ(tmp_path / "env", {"OLLAMA_HOST": fake.url})
    return subprocess.Popen(
        [*SERVER, "--tcp", "--port", str(port), *extra],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


async def _start(
    tmp_path: Path, fake: FakeOllama, *extra: str
) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    process = _spawn(tmp_path, fake, port, *extra)
    await _wait_listening(process, port)
    return process, port


def _finish(process: subprocess.Popen[bytes]) -> str:
    """Wait for the server to exit (after `exit`), or stop it; return its stderr."""
    try:
        process.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(TIMEOUT)
    assert process.stderr is not None
    return process.stderr.read().decode(errors="replace")


async def _still_serving(client: RawClient) -> None:
    answer = await client.request(
        "workspace/executeCommand", {"command": "aethel.modelStatus", "arguments": []}
    )
    assert answer is not None and "result" in answer, answer


async def _end(client: RawClient) -> None:
    assert (await client.request("shutdown")) is not None
    client.send({"method": "exit"})
    await client.close()


HTTP_POST = (
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
    b'Content-Length: 33\r\n\r\n{"jsonrpc":"2.0","method":"exit"}'
)


async def test_http_post_is_refused_while_the_client_keeps_working(
    tmp_path: Path, fake: FakeOllama
) -> None:
    process, port = await _start(tmp_path, fake)
    try:
        early = await RawClient.connect(port)  # a web page before the editor connected
        early.writer.write(HTTP_POST)
        assert await early.closed_by_server()

        editor = await RawClient.connect(port)
        answer = await editor.initialize()
        assert answer is not None and "result" in answer
        await _still_serving(editor)

        page = await RawClient.connect(port)  # ... and while it is connected
        page.writer.write(HTTP_POST)
        assert await page.closed_by_server()
        await _still_serving(editor)
        await _end(editor)
    finally:
        stderr = _finish(process)
    assert process.returncode == 0, stderr
    assert "any process on this machine can connect" in stderr
    assert stderr.count("is not an LSP header") == 1  # the first one, logged once
    assert stderr.count("Refused a second connection") == 1
    assert "Traceback" not in stderr


async def test_a_second_client_is_refused_and_cannot_end_the_session(
    tmp_path: Path, fake: FakeOllama
) -> None:
    process, port = await _start(tmp_path, fake)
    try:
        editor = await RawClient.connect(port)
        assert await editor.initialize() is not None
        intruder = await RawClient.connect(port)
        intruder.send({"id": 1, "method": "initialize", "params": {"capabilities": {}}})
        intruder.send({"id": 2, "method": "shutdown"})
        intruder.send({"method": "exit"})
        assert await intruder.receive() is None  # closed without a word
        await _still_serving(editor)
        assert process.poll() is None
        await _end(editor)
    finally:
        _finish(process)
    assert process.returncode == 0


async def test_an_idle_connection_cannot_keep_the_editor_out(
    tmp_path: Path, fake: FakeOllama
) -> None:
    process, port = await _start(tmp_path, fake)
    try:
        idle = await RawClient.connect(port)  # connects, says nothing
        started = time.monotonic()
        assert await idle.closed_by_server()
        assert time.monotonic() - started < TIMEOUT
        editor = await RawClient.connect(port)
        answer = await editor.initialize()
        assert answer is not None and "result" in answer
        await _end(editor)
    finally:
        stderr = _finish(process)
    assert "no `initialize` within" in stderr


async def test_token_file(tmp_path: Path, fake: FakeOllama) -> None:
    token = "c0ffee-5ecret-t0ken-for-tests"
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n", encoding="utf-8")
    process, port = await _start(tmp_path, fake, "--token-file", str(token_file))
    try:
        for options in (None, {"token": "wrong-token-value-123"}, {"aethel": {"token": token}}):
            stranger = await RawClient.connect(port)
            answer = await stranger.initialize(options)
            assert answer is not None and answer["error"]["code"] == -32600, options
            assert "token" in answer["error"]["message"]
            assert await stranger.closed_by_server()

        editor = await RawClient.connect(port)
        answer = await editor.initialize({"token": token, "logLevel": "debug"})
        assert answer is not None and "result" in answer
        await _still_serving(editor)
        texts = json.dumps(editor.notifications)
        assert token not in texts and "Unknown setting" not in texts
        await _end(editor)
    finally:
        stderr = _finish(process)
    assert "any process on this machine can connect" not in stderr
    assert token not in stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--token-file", "/nowhere/token"], "cannot read --token-file"),
        (["--tcp", "--token-file", "/nowhere/token"], "cannot read --token-file"),
    ],
)
def test_token_file_errors(tmp_path: Path, args: list[str], needle: str) -> None:
    env = isolated_environ(tmp_path / "env")
    if "--tcp" not in args:
        needle = "only applies to --tcp"
    done = subprocess.run([*SERVER, *args], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and needle in done.stderr


def test_short_token_is_refused(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("abc\n", encoding="utf-8")
    done = subprocess.run([*SERVER, "--tcp", "--token-file", str(short)],
                          env=isolated_environ(tmp_path / "env"), capture_output=True,
                          text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and "too short" in done.stderr and "abc" not in done.stderr
