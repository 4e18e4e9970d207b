"""Run the examples in every module's docstrings, so they stay true."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import aethel_lsp

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(aethel_lsp.__path__, prefix="aethel_lsp.")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
