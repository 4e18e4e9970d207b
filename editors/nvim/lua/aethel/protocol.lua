-- Command ids and method names of aethel-lsp, mirrored from aethel_lsp/protocol.py.
-- They are the server's public interface; tests/e2e/test_neovim.py checks that this
-- table and the Python module agree, so a rename on either side fails the suite.
local M = {}

M.SERVER_NAME = 'aethel-lsp'

M.CMD_MODEL_STATUS = 'aethel.modelStatus'
M.CMD_THROUGHPUT = 'aethel.throughput'
M.CMD_LIST_MODELS = 'aethel.listModels'
M.CMD_SELECT_MODEL = 'aethel.selectModel'
M.CMD_PULL_MODEL = 'aethel.pullModel'
M.CMD_EXPLAIN_SELECTION = 'aethel.explainSelection'
M.CMD_GENERATE_CONTRACT = 'aethel.generateContract'
M.CMD_IMPROVE_SELECTION = 'aethel.improveSelection'
M.CMD_DOCUMENT_SELECTION = 'aethel.documentSelection'
M.CMD_FIX_WITH_AI = 'aethel.fixWithAI'
M.CMD_DOCTOR = 'aethel.doctor'
M.CMD_INSPECT_LAST = 'aethel.inspectLast'
M.CMD_RECOMMEND_MODELS = 'aethel.recommendModels'
M.CMD_DISTILL_CONTRACT = 'aethel.distillContract'

M.NOTIFY_STATUS = 'aethel/status'
M.CONFIG_SECTION = 'aethel'

M.TITLE_GENERATE_CONTRACT = 'Generate Aethel contract'
M.TITLE_DISTILL_CONTRACT = 'Generate Aethel contract (best of {n})'
M.TITLE_EXPLAIN = 'Explain selection'
M.TITLE_IMPROVE = 'Improve selection'
M.TITLE_DOCUMENT = 'Add documentation'
M.TITLE_FIX = 'Fix with AI'

--- Commands whose generation streams as $/progress and is worth a live preview.
M.STREAMING_COMMANDS = {
  [M.CMD_EXPLAIN_SELECTION] = true,
  [M.CMD_GENERATE_CONTRACT] = true,
  [M.CMD_DISTILL_CONTRACT] = true,
  [M.CMD_IMPROVE_SELECTION] = true,
  [M.CMD_DOCUMENT_SELECTION] = true,
  [M.CMD_FIX_WITH_AI] = true,
}

return M
