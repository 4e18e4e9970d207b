-- Plugin options: defaults, and the merged result of require('aethel').setup(opts).
local M = {}

--- @class aethel.Config
M.defaults = {
  -- How to start the server. `{ 'python3', '-m', 'aethel_lsp' }` works without the script on PATH.
  cmd = { 'aethel-lsp' },
  -- Extra environment for the server process (e.g. { OLLAMA_HOST = 'http://127.0.0.1:11434' }).
  cmd_env = nil,
  -- Filetypes where the AI features run, besides `aethel` (always included).
  -- e.g. { 'python', 'lua', 'rust', 'typescript' }
  filetypes = {},
  root_markers = { 'aethel.toml', 'pyproject.toml', '.git' },
  -- Server settings (docs/configuration.md), answered to workspace/configuration as the
  -- `aethel` section, e.g. { model = 'qwen2.5-coder:1.5b', completion = { model = '...' } }.
  settings = {},
  -- Extra LSP client capabilities, merged into Neovim's defaults.
  capabilities = nil,
  -- Called as on_attach(client, bufnr) after the plugin's own attach logic.
  on_attach = nil,
  inline = {
    enabled = true,
    -- Neovim 0.11 (ghost text drawn by this plugin): wait this long after the last
    -- keystroke before asking the server. The server debounces and caches too.
    debounce_ms = 75,
    keymaps = {
      accept = '<Tab>', -- only when a suggestion is visible; otherwise the key does what it did
      dismiss = '<C-]>',
      trigger = '<M-\\>', -- ask now, without waiting for the debounce
    },
  },
  preview = {
    kind = 'float', -- 'float' | 'split' | 'vsplit'
    width = 0.5,
    height = 0.6,
    border = 'rounded',
    enter = false, -- keep the cursor where it is while the text streams in
  },
  icons = { ready = '●', busy = '◐', offline = '○', error = '✗' },
}

--- @type aethel.Config
M.current = vim.deepcopy(M.defaults)

--- Deep merge where lists (cmd, filetypes, root_markers, ...) are replaced, not merged
--- index by index as vim.tbl_deep_extend would do.
local function is_list(t)
  return next(t) ~= nil and vim.islist(t)
end

local function merge(base, override)
  if override == nil then
    return base
  end
  if type(base) ~= 'table' or type(override) ~= 'table' or is_list(base) or is_list(override) then
    return override
  end
  local out = vim.deepcopy(base)
  for k, v in pairs(override) do
    out[k] = merge(base[k], v)
  end
  return out
end

--- @param opts table?
--- @return aethel.Config
function M.apply(opts)
  M.current = merge(vim.deepcopy(M.defaults), opts or {})
  return M.current
end

return M
