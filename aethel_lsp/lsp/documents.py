"""Turn command arguments (`uri`, `range`) into a validated selection of a document.

Positions use the encoding negotiated with the client (UTF-16 for VS Code, UTF-8 for
Neovim), through pygls' `offset_at_position`; characters past the end of a line are
clamped, as LSP says.  Anything else that is wrong is a `UserError` with a message
that says what to do: the server never crashes on bad input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument

from aethel_lsp.lsp.handlers import Args, UserError
from aethel_lsp.lsp.open_documents import offset_at, open_document
from aethel_lsp.lsp.session import AethelServer

_LANGUAGE_BY_SUFFIX = {
    ".ae": "aethel",
    ".py": "python",
    ".js": "javascript",
    ".ts": "typescript",
    ".rs": "rust",
    ".go": "go",
    ".java": "java",
    ".c": "c",
    ".cpp": "cpp",
    ".lua": "lua",
    ".md": "markdown",
}


@dataclass(frozen=True)
class Selection:
    uri: str
    document: TextDocument
    range: types.Range  # as the client sent it (after clamping)
    start: int  # offsets into document.source
    end: int
    language: str

    @property
    def text(self) -> str:
        return self.document.source[self.start : self.end]

    @property
    def empty(self) -> bool:
        return not self.text.strip()


def language_of(document: TextDocument) -> str:
    if document.language_id:
        return document.language_id
    return _LANGUAGE_BY_SUFFIX.get(Path(document.path or "").suffix.lower(), "text")


# Never read from these, even through a workspace symlink: they are the kernel's view of
# processes and devices (`/proc/self/environ` holds the server's secrets).
_FORBIDDEN_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


def get_document(ls: AethelServer, uri: str) -> TextDocument:
    """An open document, or a file inside a workspace folder; otherwise a clear error.

    Commands send the text to the model, so a URI (which anyone who can send a request
    chooses) must not reach `/etc/...`, `/proc/self/environ` or a file a workspace symlink
    points outside: only what the editor opened or what lies in a workspace folder.
    """
    document = open_document(ls.workspace, uri)
    if document is not None:
        return document
    path = to_fs_path(uri) if uri.startswith("file:") else None
    if path is None or not Path(path).is_file():
        raise UserError(
            f"Unknown document {uri}: open it in the editor first (the server only knows "
            "documents the editor has opened, or files that exist in a workspace folder)."
        )
    if not readable_path(Path(path), ls.session.roots):
        raise UserError(
            f"Refused to read {uri}: it is not open in the editor and not inside a workspace "
            "folder (after following symlinks), so it is not sent to the model. Open it in "
            "the editor to use it."
        )
    return ls.workspace.get_text_document(uri)


def readable_path(path: Path, roots: list[Path]) -> bool:
    """True when `path`, symlinks resolved, lies inside one of `roots` and not in /proc etc."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    if any(real.is_relative_to(forbidden) for forbidden in _FORBIDDEN_ROOTS):
        return False
    for root in roots:
        try:
            real_root = root.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if real_root != Path(real_root.anchor) and real.is_relative_to(real_root):
            return True
    return False


def require_open(ls: AethelServer, uri: str) -> None:
    """Edits are proposed only for documents the editor has open (it shows and owns them)."""
    if open_document(ls.workspace, uri) is None:
        raise UserError(
            f"{uri} is not open in the editor: open it first, then run the action again "
            "(aethel-lsp only proposes edits to documents you can see)."
        )


def _position(raw: Any, what: str) -> types.Position:
    if not isinstance(raw, dict):
        raise UserError(f"Invalid range: `{what}` must be an object {{line, character}}.")
    line, character = raw.get("line"), raw.get("character")
    for name, value in (("line", line), ("character", character)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UserError(f"Invalid range: `{what}.{name}` must be a whole number >= 0.")
    assert isinstance(line, int) and isinstance(character, int)
    return types.Position(line=line, character=character)


def parse_range(raw: Any) -> types.Range:
    if not isinstance(raw, dict):
        raise UserError(
            "Argument `range` must be an object "
            '{"start": {"line", "character"}, "end": {"line", "character"}}.'
        )
    start, end = _position(raw.get("start"), "start"), _position(raw.get("end"), "end")
    if (end.line, end.character) < (start.line, start.character):
        raise UserError("Invalid range: `end` comes before `start`.")
    return types.Range(start=start, end=end)


def selection(
    ls: AethelServer, args: Args, *, allow_empty: bool = False, editable: bool = False
) -> Selection:
    """The validated selection named by `args["uri"]` and `args["range"]`.

    `editable`: the action will propose an edit, so the document must be open.
    """
    uri = args.get("uri")
    if not isinstance(uri, str) or not uri:
        raise UserError("Argument `uri` must be the document's URI, e.g. file:///path/a.py.")
    if editable:
        require_open(ls, uri)
    document = get_document(ls, uri)
    lines = document.lines
    rng = parse_range(args.get("range"))
    last_line = len(lines)  # a position on the line after the last one is the end of text
    for name, pos in (("start", rng.start), ("end", rng.end)):
        if pos.line > last_line:
            raise UserError(
                f"Invalid range: {name} line {pos.line} is past the end of {uri} "
                f"({len(lines)} lines)."
            )
    start = offset_at(document, rng.start)
    end = offset_at(document, rng.end)
    chosen = Selection(uri, document, rng, start, end, language_of(document))
    if not allow_empty and chosen.empty:
        raise UserError("The selection is empty: select the code first, then run the action.")
    return chosen


def full_range(document: TextDocument) -> types.Range:
    """The range of the whole document, in client units."""
    lines = document.lines
    if not lines:
        return types.Range(start=types.Position(0, 0), end=types.Position(0, 0))
    last = lines[-1]
    if last.endswith("\n"):
        end = types.Position(line=len(lines), character=0)
    else:
        end = types.Position(
            line=len(lines) - 1, character=document.position_codec.client_num_units(last)
        )
    return types.Range(start=types.Position(0, 0), end=end)
