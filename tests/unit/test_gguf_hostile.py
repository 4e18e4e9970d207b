"""Corrupt GGUF headers must be a `GgufError` (a clear "truncated" or "not GGUF"), never
an `OverflowError` or a `MemoryError` from a length field read as a giant allocation."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from aethel_lsp.engine.gguf import GgufError, read_gguf_info

HEADER = b"GGUF" + struct.pack("<IQQ", 3, 0, 1)  # v3, no tensors, one metadata pair


@pytest.mark.parametrize("length", [2**63, 2**40, 2**33, 1_000])
def test_a_key_longer_than_the_file_is_a_truncated_header(tmp_path: Path, length: int) -> None:
    path = tmp_path / f"evil-{length}.gguf"
    path.write_bytes(HEADER + struct.pack("<Q", length) + b"key")
    with pytest.raises(GgufError, match="truncated"):
        read_gguf_info(path)


def test_a_string_value_longer_than_the_file_is_a_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "evil-value.gguf"
    path.write_bytes(HEADER + struct.pack("<Q", 1) + b"k" + struct.pack("<IQ", 8, 2**62))
    with pytest.raises(GgufError, match="truncated"):
        read_gguf_info(path)
