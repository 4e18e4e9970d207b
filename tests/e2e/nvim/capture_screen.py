"""Text capture of the Neovim screen while an explanation streams (for the docs).

Not a test: run it by hand to refresh the picture in docs/editors/neovim.md.
It attaches a minimal UI to `nvim --embed` (msgpack-RPC, `ext_linegrid`), lets the
driver (scenario `capture`) run `:AethelExplain` against the real server and the fake
Ollama, and prints the screen grid when the driver says so: once mid-stream, once at
the end.

    .venv/bin/pip install msgpack     # only this script needs it
    .venv/bin/python -m tests.e2e.nvim.capture_screen
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-not-found]

from tests.e2e.test_neovim import ACTION_MODEL, CONTRACT, DRIVER, EXPLANATION, NVIM, _driver_env
from tests.fakes.ollama import FakeOllama, Reply

WIDTH, HEIGHT = 100, 26


class Grid:
    """The default grid (floats are composed into it without ext_multigrid)."""

    def __init__(self) -> None:
        self.rows = [[" "] * WIDTH for _ in range(HEIGHT)]

    def handle(self, name: str, args: list[Any]) -> None:
        if name == "grid_resize":
            _, width, height = args
            self.rows = [[" "] * width for _ in range(height)]
        elif name == "grid_clear":
            self.rows = [[" "] * len(r) for r in self.rows]
        elif name == "grid_line":
            _, row, col, cells = args[:4]
            for cell in cells:
                text = cell[0]
                repeat = cell[2] if len(cell) > 2 else 1
                for _ in range(repeat):
                    if col < len(self.rows[row]):
                        self.rows[row][col] = text
                    col += 1
        elif name == "grid_scroll":
            _, top, bot, left, right, rows, _cols = args
            old = [r[:] for r in self.rows]
            for r in range(top, bot):
                src = r + rows
                if top <= src < bot:
                    self.rows[r][left:right] = old[src][left:right]

    def text(self) -> str:
        return "\n".join("".join(r).rstrip() for r in self.rows)


def main() -> int:
    if NVIM is None:
        print("no Neovim 0.11+ found", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp, FakeOllama(token_delay=0.05) as fake:
        work = Path(tmp)
        (work / "contract.ae").write_text(CONTRACT)
        fake.enqueue(Reply(text=EXPLANATION), model=ACTION_MODEL)
        env = _driver_env(work, fake.url, AETHEL_NVIM_SCENARIO="capture")
        proc = subprocess.Popen(
            [NVIM, "--embed", "-n", "-i", "NONE", "-u", str(DRIVER), "contract.ae"],
            cwd=work,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(
            msgpack.packb(
                [0, 1, "nvim_ui_attach", [WIDTH, HEIGHT, {"rgb": True, "ext_linegrid": True}]]
            )
        )
        proc.stdin.flush()
        grid = Grid()
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        while True:
            data = proc.stdout.read1(65536)  # type: ignore[attr-defined]
            if not data:
                break
            unpacker.feed(data)
            for msg in unpacker:
                if msg[0] != 2:
                    continue
                method, params = msg[1], msg[2]
                if method == "aethel_capture":
                    # the driver redraws before it notifies, and messages keep their order
                    print(f"--- {params[0]} ---")
                    print(grid.text())
                elif method == "redraw":
                    for batch in params:
                        for args in batch[1:]:
                            grid.handle(batch[0], args)
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
