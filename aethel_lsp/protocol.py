"""Every command id and custom method name of aethel-lsp, in one place.

These are a public interface: editors (editors/vscode, editors/nvim) and scripts
depend on them.  Never rename one; add new ones instead.
"""

from __future__ import annotations

from typing import Final

SERVER_NAME: Final = "aethel-lsp"

# workspace/executeCommand ids
CMD_MODEL_STATUS: Final = "aethel.modelStatus"
CMD_THROUGHPUT: Final = "aethel.throughput"
CMD_LIST_MODELS: Final = "aethel.listModels"
CMD_SELECT_MODEL: Final = "aethel.selectModel"
CMD_PULL_MODEL: Final = "aethel.pullModel"
CMD_EXPLAIN_SELECTION: Final = "aethel.explainSelection"
CMD_GENERATE_CONTRACT: Final = "aethel.generateContract"
CMD_IMPROVE_SELECTION: Final = "aethel.improveSelection"
CMD_DOCUMENT_SELECTION: Final = "aethel.documentSelection"
CMD_FIX_WITH_AI: Final = "aethel.fixWithAI"
CMD_DOCTOR: Final = "aethel.doctor"
CMD_INSPECT_LAST: Final = "aethel.inspectLast"
CMD_RECOMMEND_MODELS: Final = "aethel.recommendModels"
CMD_DISTILL_CONTRACT: Final = "aethel.distillContract"

ALL_COMMANDS: Final = (
    CMD_MODEL_STATUS,
    CMD_THROUGHPUT,
    CMD_LIST_MODELS,
    CMD_SELECT_MODEL,
    CMD_PULL_MODEL,
    CMD_EXPLAIN_SELECTION,
    CMD_GENERATE_CONTRACT,
    CMD_IMPROVE_SELECTION,
    CMD_DOCUMENT_SELECTION,
    CMD_FIX_WITH_AI,
    CMD_DOCTOR,
    CMD_INSPECT_LAST,
    CMD_RECOMMEND_MODELS,
    CMD_DISTILL_CONTRACT,
)

# server -> client notifications
# params: {"state", "engine", "host", "model", "tokensPerSecond", "message"}
NOTIFY_STATUS: Final = "aethel/status"

# client -> server request, for benchmarks and tests (not for editors): how many
# entries the server's long-lived maps hold. Result: {"requestFutures", "resultTypes",
# "progressTokens", "openDocuments", "backgroundTasks"}
REQUEST_BOOKKEEPING: Final = "aethel/bookkeeping"

# workspace/configuration section
CONFIG_SECTION: Final = "aethel"

# Code action titles: users filter on these words, keep them in the titles.
TITLE_GENERATE_CONTRACT: Final = "Generate Aethel contract"
TITLE_DISTILL_CONTRACT: Final = "Generate Aethel contract (best of {n})"
TITLE_EXPLAIN: Final = "Explain selection"
TITLE_IMPROVE: Final = "Improve selection"
TITLE_DOCUMENT: Final = "Add documentation"
TITLE_FIX: Final = "Fix with AI"
