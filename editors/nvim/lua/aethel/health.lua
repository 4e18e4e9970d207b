-- :checkhealth aethel — is Neovim recent enough, can the server start, is it attached,
-- and does the engine answer? Each failure says what to do next.
local M = {}

local function val(v)
  if v == vim.NIL then
    return nil
  end
  return v
end

local function check_neovim()
  vim.health.start('aethel: Neovim')
  local v = vim.version()
  local version = string.format('%d.%d.%d', v.major, v.minor, v.patch)
  if vim.fn.has('nvim-0.11') == 1 then
    vim.health.ok('Neovim ' .. version)
  else
    vim.health.error('Neovim ' .. version .. ' is too old', { 'aethel.nvim needs Neovim 0.11 or newer (vim.lsp.config)' })
  end
  if vim.lsp.inline_completion then
    vim.health.ok('inline completion: Neovim\'s own client (vim.lsp.inline_completion)')
  else
    vim.health.ok('inline completion: ghost text drawn by aethel.nvim (Neovim 0.11 has no inline completion client)')
  end
  if not require('aethel')._configured then
    vim.health.warn('require("aethel").setup() has not been called', { 'Add require("aethel").setup({}) to your init.lua' })
  end
end

local function check_server()
  vim.health.start('aethel: server')
  local cfg = require('aethel.config').current
  local cmd = cfg.cmd or {}
  local exe = type(cmd) == 'table' and cmd[1] or nil
  if type(cmd) == 'function' then
    vim.health.info('cmd is a function; cannot check the executable')
  elseif exe and vim.fn.executable(exe) == 1 then
    vim.health.ok(string.format('server command found: %s (%s)', table.concat(cmd, ' '), vim.fn.exepath(exe)))
  else
    vim.health.error(string.format('server command not found: %s', exe or '(empty cmd)'), {
      'Install the server from a clone of the repository: pipx install ./aethel-lsp (docs/editors/neovim.md)',
      'Or point setup() at it: cmd = { "/path/to/venv/bin/aethel-lsp" } or { "python3", "-m", "aethel_lsp" }',
    })
  end
  local clients = vim.lsp.get_clients({ name = 'aethel' })
  if #clients == 0 then
    vim.health.warn('aethel-lsp is not running', {
      'It starts when you open a file of one of these filetypes: '
        .. table.concat(vim.list_extend({ 'aethel' }, vim.deepcopy(cfg.filetypes or {})), ', '),
      'If it exits at once, look at :lua vim.cmd.edit(vim.lsp.log.get_filename())',
    })
    return nil
  end
  local client = clients[1]
  local buffers = vim.tbl_keys(client.attached_buffers or {})
  local server = client.server_info and (client.server_info.name .. ' ' .. (client.server_info.version or '')) or 'aethel-lsp'
  vim.health.ok(string.format('%s running (client id %d), attached to %d buffer(s)', server, client.id, #buffers))
  if client:supports_method('textDocument/inlineCompletion') then
    vim.health.ok('server offers inline completion')
  else
    vim.health.warn('server does not offer inline completion', { 'Check `completion.enabled` in your settings' })
  end
  return client
end

local function check_engine(client)
  vim.health.start('aethel: engine')
  if not client then
    vim.health.info('skipped: the server is not running')
    return
  end
  local resp = client:request_sync('workspace/executeCommand', { command = 'aethel.modelStatus' }, 10000)
  if not resp then
    vim.health.error('aethel.modelStatus did not answer within 10 s')
    return
  end
  if resp.err then
    vim.health.error('aethel.modelStatus failed: ' .. (resp.err.message or vim.inspect(resp.err)))
    return
  end
  local s = resp.result or {}
  local where = string.format('%s at %s', val(s.engine) or '?', val(s.host) or '?')
  if val(s.available) then
    vim.health.ok(string.format('%s answers (version %s)', where, val(s.version) or '?'))
  else
    vim.health.error(where .. ' is not available: ' .. (val(s.error) or 'no answer'), {
      'Start Ollama with `ollama serve`, or set `host` in your settings',
    })
  end
  local models = val(s.models) or {}
  local names = vim.tbl_map(function(m)
    return m.name
  end, models)
  if #models == 0 then
    vim.health.warn('no models installed', { 'Pull one: :AethelPull qwen2.5-coder:1.5b' })
  else
    vim.health.ok('installed models: ' .. table.concat(names, ', '))
  end
  local installed = {}
  for _, m in ipairs(models) do
    installed[m.name] = true
    installed[(m.name:gsub(':latest$', ''))] = true
  end
  local active = val(s.activeModels) or {}
  for _, task in ipairs({ 'chat', 'completion' }) do
    local name = val(active[task])
    if name and #models > 0 and not installed[name] and not installed[name .. ':latest'] then
      local fix = val(s.engine) == 'ollama' and ('Pull it: :AethelPull ' .. name)
        or ('The ' .. (val(s.engine) or '?') .. ' engine cannot pull it: remove `model` from your settings, or set it to one of the installed models')
      vim.health.error(string.format('%s model %s is not installed at %s', task, name, where), {
        fix,
        'Installed: ' .. table.concat(names, ', '),
      })
    elseif name then
      vim.health.ok(string.format('%s model: %s', task, name))
    end
  end
  local line = require('aethel.status').statusline()
  if line ~= '' then
    vim.health.info('status: ' .. line)
  end
end

function M.check()
  check_neovim()
  check_engine(check_server())
end

return M
