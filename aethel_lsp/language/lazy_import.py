"""`lazy_module(name)`: a stand-in that imports the module at its first attribute access.

Why: z3 costs ~0.1-0.3 s to import and is needed only when an `.ae` document is
checked, while the language server must answer `initialize` quickly.  Code keeps writing
`z3.Int(...)`; type checkers see the real module through an `if TYPE_CHECKING:` import:

    if TYPE_CHECKING:
        import z3
    else:
        z3 = lazy_module("z3")

Each attribute is cached on the stand-in after its first lookup, so later accesses are
plain attribute reads.  Thread-safe: `importlib` serialises the import itself.

>>> json = lazy_module("json")
>>> json.dumps([1])
'[1]'
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["LazyModule", "lazy_module"]


class LazyModule:
    """Forwards attribute reads to the module `name`, importing it on the first one."""

    def __init__(self, name: str) -> None:
        self._lazy_name = name

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(importlib.import_module(self._lazy_name), attribute)
        setattr(self, attribute, value)
        return value

    def __repr__(self) -> str:
        return f"<lazy module {self._lazy_name!r}>"


def lazy_module(name: str) -> Any:
    """A `LazyModule` for `name` (typed `Any`: pair it with a TYPE_CHECKING import)."""
    return LazyModule(name)
