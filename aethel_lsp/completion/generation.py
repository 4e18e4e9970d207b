"""One upstream generation: its stream, the text produced so far, and whether a later
request may adopt it (stream reuse) or must close it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from aethel_lsp.completion.cache import Anchor
from aethel_lsp.engine.errors import EngineError
from aethel_lsp.engine.types import Chunk, Metrics
from aethel_lsp.prompts.fim import (
    FimMode,
    FimPlan,
)
from aethel_lsp.prompts.postprocess import (
    PostprocessContext,
    strip_leading_fence,
    strip_special_tokens,
)

# --- one upstream generation ----------------------------------------------------------


class Generation:
    """One streamed engine request, shared by every request that extends its prompt."""

    def __init__(
        self,
        *,
        uri: str,
        lane: str,
        model: str,
        plan: FimPlan,
        anchor: Anchor,
        post: PostprocessContext,
        chunks: AsyncIterator[Chunk],
        loading: bool,
        clock: Callable[[], float],
        on_first_token: Callable[[Generation], None],
        on_finish: Callable[[Generation], None],
    ) -> None:
        self.uri = uri
        self.lane = lane
        self.model = model
        self.plan = plan
        self.anchor = anchor
        self.post = post
        self.loading = loading
        self.raw = ""
        self.started_at = clock()
        self.first_token_at: float | None = None
        self.finished = False  # the stream ended (normally, by error, or closed)
        self.completed = False  # the engine sent its final line
        self.closed = False  # closed by us before the engine finished
        self.closed_at: float | None = None
        self.error: BaseException | None = None
        self.metrics: Metrics | None = None
        self.close_on_first_token = False
        self._clock = clock
        self._chunks = chunks
        self._on_first_token = on_first_token
        self._on_finish = on_finish
        self._waiters: list[tuple[asyncio.Future[None], bool]] = []
        self.task: asyncio.Task[None] = asyncio.get_running_loop().create_task(self._run())

    @property
    def chat(self) -> bool:
        return self.plan.mode is FimMode.CHAT

    def visible(self) -> str:
        """The answer so far as the user would see its start (tokens and fence removed)."""
        text = strip_special_tokens(self.raw)
        return strip_leading_fence(text) if self.chat else text

    def changed(self, *, every_token: bool = True) -> asyncio.Future[None]:
        """A future resolved at the next token (or when the stream ends).

        With `every_token=False` only a token that could settle the answer (a newline,
        a special token, a fence) or the end wakes it: a request waiting for a long
        single-line answer is not woken for every token in between.
        """
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.finished:
            fut.set_result(None)
        else:
            self._waiters.append((fut, every_token))
        return fut

    def close(self) -> None:
        """Stop the upstream request now (cancelling the task closes the HTTP stream)."""
        if self.finished or self.closed:
            return
        self.closed = True
        self.closed_at = self._clock()
        self.task.cancel()

    def release(self) -> bool:
        """Close unless the model is still loading; True if closed now."""
        if self.loading and self.first_token_at is None and not self.finished:
            self.close_on_first_token = True
            return False
        self.close()
        return True

    def _notify(self, settling: bool = True) -> None:
        waiters, self._waiters = self._waiters, []
        for fut, every_token in waiters:
            if fut.done():
                continue
            if settling or every_token:
                fut.set_result(None)
            else:
                self._waiters.append((fut, every_token))

    async def _run(self) -> None:
        try:
            async for chunk in self._chunks:
                if self.first_token_at is None and (chunk.text or chunk.thinking or chunk.done):
                    self.first_token_at = self._clock()
                    self._on_first_token(self)
                    if self.close_on_first_token:
                        self.closed = True
                        self.closed_at = self._clock()
                        return
                self.raw += chunk.text
                if chunk.done:
                    self.completed = True
                    self.metrics = chunk.metrics
                self._notify(chunk.done or may_settle(chunk.text))
                if chunk.done:
                    break
        except asyncio.CancelledError:
            pass  # closed by us: the engine closes its HTTP stream on cancellation
        except (EngineError, OSError) as exc:
            self.error = exc
        finally:
            aclose = getattr(self._chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
            self.finished = True
            self._notify()
            self._on_finish(self)


def may_settle(text: str) -> bool:
    """Could a stop rule end this answer?  (Cheap pre-check before `clean`.)"""
    return "\n" in text or "<" in text or "[" in text or "`" in text
