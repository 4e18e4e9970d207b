"""The GGUF header reader: metadata and exact parameter counts without loading a model."""

from __future__ import annotations

from pathlib import Path

import pytest

from aethel_lsp.engine.gguf import (
    GgufArray,
    GgufError,
    is_gguf,
    parameter_size,
    read_gguf_info,
)
from tests.unit.embedded_support import (
    SHIPPED_MODEL,
    TINY_METADATA,
    TINY_TENSORS,
    requires_shipped_model,
    write_gguf,
)


def test_reads_metadata_and_counts_parameters(tmp_path: Path) -> None:
    info = read_gguf_info(write_gguf(tmp_path / "tiny.gguf", TINY_METADATA, TINY_TENSORS))

    assert info.version == 3
    assert info.tensor_count == 2
    assert info.parameter_count == 4 * 8 + 8
    assert info.architecture == "llama"
    assert info.name == "Tiny"
    assert info.context_length == 2048
    assert info.quantization == "Q4_K_M"
    assert info.metadata["tokenizer.ggml.tokens"] == GgufArray(item_type=8, length=4)
    assert info.metadata["tokenizer.ggml.token_type"] == GgufArray(item_type=5, length=4)
    assert info.metadata["tokenizer.ggml.add_bos_token"] is True
    assert info.metadata["llama.rope.freq_base"] == pytest.approx(10000.0)
    assert info.chat_template is None
    assert not info.has_fill_in_the_middle


def test_unknown_file_type_is_named_by_number(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "odd.gguf", {**TINY_METADATA, "general.file_type": 99}, {})
    assert read_gguf_info(path).quantization == "file type 99"


def test_context_length_needs_the_architecture(tmp_path: Path) -> None:
    metadata = {k: v for k, v in TINY_METADATA.items() if k != "general.architecture"}
    info = read_gguf_info(write_gguf(tmp_path / "noarch.gguf", metadata, TINY_TENSORS))
    assert info.architecture is None
    assert info.context_length is None


def test_not_a_gguf_file(tmp_path: Path) -> None:
    path = tmp_path / "licence.txt"
    path.write_text("Apache License 2.0, and then some more text")
    assert not is_gguf(path)
    with pytest.raises(GgufError, match="not a GGUF model file"):
        read_gguf_info(path)


def test_truncated_header(tmp_path: Path) -> None:
    whole = write_gguf(tmp_path / "whole.gguf", TINY_METADATA, TINY_TENSORS).read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[: len(whole) // 2])
    assert is_gguf(cut)
    with pytest.raises(GgufError, match="truncated"):
        read_gguf_info(cut)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(GgufError, match="Cannot read the model file"):
        read_gguf_info(tmp_path / "absent.gguf")
    assert not is_gguf(tmp_path / "absent.gguf")


@pytest.mark.parametrize(
    ("count", "human"),
    [(134_515_008, "134.52M"), (7_615_616_512, "7.62B"), (1_000_000_000, "1B"),
     (40, "40"), (1_500, "1.5K")],
)
def test_parameter_size_reads_like_ollama(count: int, human: str) -> None:
    assert parameter_size(count) == human


@pytest.mark.embedded
@requires_shipped_model
def test_the_shipped_smollm2_model() -> None:
    assert SHIPPED_MODEL is not None
    info = read_gguf_info(SHIPPED_MODEL)
    assert info.architecture == "llama"
    assert info.context_length == 8192
    assert info.quantization == "Q4_1"
    assert info.parameter_count == 134_515_008
    assert info.chat_template is not None and "<|im_start|>" in info.chat_template
    assert info.metadata["tokenizer.ggml.tokens"] == GgufArray(item_type=8, length=49152)


@pytest.mark.parametrize(
    ("names", "expected"),
    [(("fim_pre", "fim_suf", "fim_mid"), (151659, 151661, 151660)),
     (("prefix", "suffix", "middle"), (151659, 151661, 151660))],
)
def test_fill_in_the_middle_tokens(
    tmp_path: Path, names: tuple[str, str, str], expected: tuple[int, int, int]
) -> None:
    ids = dict(zip(names, expected, strict=True))
    metadata = {**TINY_METADATA, **{f"tokenizer.ggml.{n}_token_id": i for n, i in ids.items()}}
    info = read_gguf_info(write_gguf(tmp_path / "coder.gguf", metadata, TINY_TENSORS))
    assert info.fim_tokens == expected
    assert info.has_fill_in_the_middle


def test_fill_in_the_middle_needs_all_three_tokens(tmp_path: Path) -> None:
    metadata = {**TINY_METADATA, "tokenizer.ggml.fim_pre_token_id": 5,
                "tokenizer.ggml.fim_suf_token_id": 6}
    info = read_gguf_info(write_gguf(tmp_path / "half.gguf", metadata, TINY_TENSORS))
    assert info.fim_tokens is None
    assert not info.has_fill_in_the_middle
