"""`close_all`: one engine failing to close never leaves the others open."""

from __future__ import annotations

from typing import Any, cast

import pytest

from aethel_lsp.engine.base import Engine, close_all


class _Closable:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True
        if self.fail:
            raise OSError("socket already gone")


async def test_every_engine_is_closed_and_the_first_failure_raised() -> None:
    engines = [_Closable(fail=True), _Closable(), _Closable(fail=True), _Closable()]
    with pytest.raises(OSError, match="already gone"):
        await close_all(cast(Any, engines))
    assert all(e.closed for e in engines)
    quiet = [_Closable(), _Closable()]
    await close_all(cast(list[Engine], quiet))
    assert all(e.closed for e in quiet)
