"""Long results (an explanation, a doctor report) as a Markdown file the editor opens.

The file goes to a private folder of the state directory, passes the redactor, and only
the newest few of its kind are kept.  Where the client cannot show documents, or the
state directory cannot be written, the caller shows a message instead.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from lsprotocol import types

from aethel_lsp.lsp.session import AethelServer
from aethel_lsp.paths import private_dir, write_private_text


async def show_markdown(
    ls: AethelServer, kind: str, prefix: str, text: str, *, keep: int, timeout_s: float
) -> str | None:
    """The URI of `text`, shown as a Markdown document from `<state>/<kind>/`; None when
    it could not be shown (then the caller tells the user another way)."""
    state = ls.writable_state_dir()
    if not ls.session.client.show_document or state is None:
        return None
    path = write_rotated(private_dir(state / kind), prefix, ls.redact(text), keep)
    try:
        shown = await asyncio.wait_for(
            ls.window_show_document_async(
                types.ShowDocumentParams(uri=path.as_uri(), take_focus=True)
            ),
            timeout_s,
        )
    except Exception as exc:  # a client that cannot show it still gets the message
        ls.log(f"Could not show {path}: {exc}", types.MessageType.Warning)
        return None
    return path.as_uri() if shown.success else None


def write_rotated(folder: Path, prefix: str, text: str, keep: int) -> Path:
    """Write `text` to a new private `<prefix>-<stamp>.md` in `folder`; keep it and the
    newest `keep - 1` others (names sort by time only to the second: the suffix that
    keeps them apart wraps, so the file just written is never a candidate)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"{prefix}-{stamp}-{time.monotonic_ns() % 1_000_000:06d}.md"
    write_private_text(path, text)
    others = [p for p in sorted(folder.glob(f"{prefix}-*.md")) if p != path]
    for old in others[: max(0, len(others) - (keep - 1))]:
        old.unlink(missing_ok=True)
    return path
