-- aethel-lsp for Neovim 0.11+: a local LLM (Ollama) in the editor, for Aethel and any code.
--
--   require('aethel').setup({
--     cmd = { 'aethel-lsp' },
--     filetypes = { 'python', 'lua' },           -- AI features here too (aethel is always on)
--     settings = { model = 'qwen2.5-coder:1.5b' }, -- docs/configuration.md
--   })
--
-- The server is declared with vim.lsp.config('aethel', ...) and started by
-- vim.lsp.enable('aethel'); everything else (commands, the streaming preview, ghost
-- text, the statusline) is built on the client Neovim creates.
local actions = require('aethel.actions')
local config = require('aethel.config')
local inline = require('aethel.inline')
local protocol = require('aethel.protocol')
local status = require('aethel.status')

local M = {}

M.inline = inline
M.actions = actions
M.protocol = protocol

local function notify(msg, level)
  vim.notify('aethel: ' .. msg, level or vim.log.levels.INFO)
end

--- The aethel-lsp client attached to `bufnr`, or (when `any`) any running one.
--- @param bufnr integer?
--- @param any boolean?
--- @return vim.lsp.Client?
function M.client(bufnr, any)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local clients = vim.lsp.get_clients({ bufnr = bufnr, name = 'aethel' })
  if #clients == 0 and any then
    clients = vim.lsp.get_clients({ name = 'aethel' })
  end
  return clients[1]
end

local function require_client(bufnr, any)
  local client = M.client(bufnr, any)
  if client then
    return client
  end
  local ft = vim.bo[bufnr or 0].filetype
  notify(string.format(
    'aethel-lsp is not attached to this buffer (filetype %q). Open a .ae file, or add %q to `filetypes` in setup(); :checkhealth aethel explains more.',
    ft,
    ft
  ), vim.log.levels.ERROR)
  return nil
end

--------------------------------------------------------------------------------- ranges

--- LSP character offset of byte column `col` on `line`.
local function char_of(line, col, encoding)
  col = math.max(0, math.min(col, #line))
  local ok, idx = pcall(vim.str_utfindex, line, encoding, col, false)
  return ok and idx or col
end

--- An LSP range from 0-based rows and byte columns (end exclusive).
local function lsp_range(bufnr, srow, scol, erow, ecol, encoding)
  local lines = vim.api.nvim_buf_get_lines(bufnr, srow, erow + 1, false)
  return {
    start = { line = srow, character = char_of(lines[1] or '', scol, encoding) },
    ['end'] = { line = erow, character = char_of(lines[#lines] or '', ecol, encoding) },
  }
end

--- The range a user command acts on:
--- * a charwise visual selection, exactly;
--- * a :range (or a linewise/blockwise selection), whole lines;
--- * no range: the current line (`line`), the paragraph around the cursor (`paragraph`),
---   the cursor (`cursor`), or an empty range at the start of the line to insert at
---   (`insert`: the cursor line when blank, else the line below).
--- @param bufnr integer
--- @param opts table the user command's opts (line1, line2, range)
--- @param default 'line'|'paragraph'|'cursor'|'insert'
--- @param encoding string
function M.range_for(bufnr, opts, default, encoding)
  local function line_text(row)
    return vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
  end
  if opts and opts.range and opts.range > 0 then
    local s = vim.api.nvim_buf_get_mark(bufnr, '<')
    local e = vim.api.nvim_buf_get_mark(bufnr, '>')
    if vim.fn.visualmode() == 'v' and s[1] == opts.line1 and e[1] == opts.line2 then
      local last = line_text(e[1] - 1)
      local ecol = math.min(#last, e[2] + 1)
      if e[2] < #last then
        ecol = e[2] + 1 + vim.str_utf_end(last, e[2] + 1)
      end
      return lsp_range(bufnr, s[1] - 1, s[2], e[1] - 1, ecol, encoding)
    end
    return lsp_range(bufnr, opts.line1 - 1, 0, opts.line2 - 1, #line_text(opts.line2 - 1), encoding)
  end
  local row = vim.api.nvim_win_get_cursor(0)[1] - 1
  if default == 'cursor' then
    local col = vim.api.nvim_win_get_cursor(0)[2]
    return lsp_range(bufnr, row, col, row, col, encoding)
  end
  if default == 'insert' then
    if line_text(row):match('%S') and row + 1 < vim.api.nvim_buf_line_count(bufnr) then
      row = row + 1
    end
    return lsp_range(bufnr, row, 0, row, 0, encoding)
  end
  local first, last = row, row
  if default == 'paragraph' and line_text(row):match('%S') then
    local count = vim.api.nvim_buf_line_count(bufnr)
    while first > 0 and line_text(first - 1):match('%S') do
      first = first - 1
    end
    while last < count - 1 and line_text(last + 1):match('%S') do
      last = last + 1
    end
  end
  return lsp_range(bufnr, first, 0, last, #line_text(last), encoding)
end

------------------------------------------------------------------------------- commands

--- Run one of the streaming commands on a range of the current buffer.
--- @param command string
--- @param opts table? user-command opts
--- @param default 'line'|'paragraph'|'cursor'|'insert'
--- @param extra table? extra fields for the argument object (e.g. description)
--- @return aethel.Run?
function M.run(command, opts, default, extra)
  local bufnr = vim.api.nvim_get_current_buf()
  local client = require_client(bufnr)
  if not client then
    return nil
  end
  local args = {
    uri = vim.uri_from_bufnr(bufnr),
    range = M.range_for(bufnr, opts, default, client.offset_encoding),
  }
  for k, v in pairs(extra or {}) do
    args[k] = v
  end
  return actions.execute(client, bufnr, command, { args })
end

--- A contract command: from the description, the selection, or the comment line under
--- the cursor.
local function run_contract(command, opts)
  local description = opts and opts.args ~= '' and opts.args or nil
  if description and not (opts.range and opts.range > 0) then
    -- insert the contract at the cursor line (below it when the line has text),
    -- never replace what is there
    return M.run(command, opts, 'insert', { description = description })
  end
  return M.run(command, opts, 'line', { description = description })
end

--- :AethelGenerate [description] — a contract from the description, the selection,
--- or the comment line under the cursor.
function M.generate(opts)
  return run_contract(protocol.CMD_GENERATE_CONTRACT, opts)
end

--- :AethelDistill [description] — best of N: several candidate contracts, checked by the
--- server, the best inserted; the preview lists every candidate with its verdict.
function M.distill(opts)
  return run_contract(protocol.CMD_DISTILL_CONTRACT, opts)
end

function M.explain(opts)
  return M.run(protocol.CMD_EXPLAIN_SELECTION, opts, 'paragraph')
end

function M.improve(opts)
  return M.run(protocol.CMD_IMPROVE_SELECTION, opts, 'paragraph')
end

function M.document(opts)
  return M.run(protocol.CMD_DOCUMENT_SELECTION, opts, 'paragraph')
end

--- :AethelFix — ask the model to fix the diagnostics on the cursor line (or range).
function M.fix(opts)
  local bufnr = vim.api.nvim_get_current_buf()
  local client = require_client(bufnr)
  if not client then
    return nil
  end
  local first, last
  if opts and opts.range and opts.range > 0 then
    first, last = opts.line1 - 1, opts.line2 - 1
  else
    first = vim.api.nvim_win_get_cursor(0)[1] - 1
    last = first
  end
  local found = {}
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    if d.lnum >= first and d.lnum <= last then
      local lsp = d.user_data and d.user_data.lsp
      found[#found + 1] = {
        message = d.message,
        range = lsp and lsp.range or lsp_range(bufnr, d.lnum, d.col, d.end_lnum or d.lnum, d.end_col or d.col, client.offset_encoding),
      }
    end
  end
  if #found == 0 then
    notify('no diagnostic here to fix (:AethelImprove rewrites code without one)', vim.log.levels.WARN)
    return nil
  end
  -- the whole lines are rewritten (a fix rarely fits inside the diagnostic's own range);
  -- the diagnostics travel along so the model knows what to fix
  local last_line = vim.api.nvim_buf_get_lines(bufnr, last, last + 1, false)[1] or ''
  local args = {
    uri = vim.uri_from_bufnr(bufnr),
    range = lsp_range(bufnr, first, 0, last, #last_line, client.offset_encoding),
    diagnostics = found,
  }
  return actions.execute(client, bufnr, protocol.CMD_FIX_WITH_AI, { args })
end

--- Send a quick (non-streaming) command to any aethel-lsp client.
--- @param command string
--- @param args table?
--- @param on_result fun(result: any)
function M.request(command, args, on_result)
  local client = require_client(nil, true)
  if not client then
    return
  end
  client:request('workspace/executeCommand', {
    command = command,
    arguments = args and { args } or nil,
  }, function(err, result)
    if err then
      notify(err.message or vim.inspect(err), vim.log.levels.ERROR)
      return
    end
    on_result(result)
  end, vim.api.nvim_get_current_buf())
end

local function val(v)
  if v == vim.NIL then
    return nil
  end
  return v
end

--- The text :AethelStatus prints, from the aethel.modelStatus result and the last
--- aethel/status notification.
--- @param result table aethel.modelStatus result
--- @return string
function M.format_status(result)
  local lines = {}
  local engine = val(result.engine) or '?'
  local host = val(result.host) or '?'
  if val(result.available) then
    local version = val(result.version)
    lines[#lines + 1] = string.format('%s%s at %s: available', engine, version and (' ' .. version) or '', host)
  else
    lines[#lines + 1] = string.format('%s at %s: NOT available', engine, host)
    if val(result.error) then
      lines[#lines + 1] = '  ' .. result.error
    end
  end
  lines[#lines + 1] = 'active model: ' .. (val(result.activeModel) or '(none: pick one with :AethelModels)')
  local names = {}
  for _, m in ipairs(val(result.models) or {}) do
    names[#names + 1] = m.name
  end
  lines[#lines + 1] = 'installed: ' .. (#names > 0 and table.concat(names, ', ') or '(none: :AethelPull {model})')
  local running = {}
  for _, m in ipairs(val(result.running) or {}) do
    running[#running + 1] = m.name
  end
  if #running > 0 then
    lines[#lines + 1] = 'loaded: ' .. table.concat(running, ', ')
  end
  local line = status.statusline()
  if line ~= '' then
    local message = status.current and status.current.message
    if message and message ~= val(result.error) then
      line = line .. ' (' .. message .. ')'
    end
    lines[#lines + 1] = 'status: ' .. line
  end
  return table.concat(lines, '\n')
end

--- :AethelStatus — engine, host, active model, installed models, throughput.
function M.show_status(on_done)
  M.request(protocol.CMD_MODEL_STATUS, nil, function(result)
    local text = M.format_status(type(result) == 'table' and result or {})
    notify(text)
    if on_done then
      on_done(text, result)
    end
  end)
end

local function human_size(bytes)
  bytes = val(bytes)
  if type(bytes) ~= 'number' then
    return ''
  end
  return string.format('%.1f GB', bytes / 1e9)
end

--- Whether a listed model can write text: an engine that reports capabilities and leaves
--- out `completion` (an embedding model such as nomic-embed-text) cannot serve any task.
local function can_generate(model)
  local caps = val(model.capabilities)
  if type(caps) ~= 'table' or #caps == 0 then
    return true -- nothing reported (OpenAI-compatible servers): do not guess
  end
  return vim.tbl_contains(caps, 'completion')
end

--- :AethelModels [task] — pick the model for actions (or `completion`).
function M.select_model(opts)
  local task = opts and opts.args ~= '' and opts.args or nil
  M.request(protocol.CMD_LIST_MODELS, nil, function(models)
    models = type(models) == 'table' and models or {}
    local items = {}
    for _, m in ipairs(models) do
      if can_generate(m) then
        items[#items + 1] = m
      end
    end
    items[#items + 1] = { name = 'Pull a model…', pull = true }
    vim.ui.select(items, {
      prompt = task and ('Model for ' .. task) or 'Aethel model',
      format_item = function(m)
        if m.pull then
          return m.name
        end
        local details = vim.tbl_filter(function(s)
          return s ~= ''
        end, { human_size(m.sizeBytes), val(m.quantization) or '', val(m.family) or '' })
        return #details > 0 and string.format('%s  (%s)', m.name, table.concat(details, ', ')) or m.name
      end,
    }, function(choice)
      if not choice then
        return
      end
      if choice.pull then
        vim.ui.input({ prompt = 'Model to pull (e.g. qwen2.5-coder:1.5b): ' }, function(name)
          if name and name ~= '' then
            M.pull({ args = name })
          end
        end)
        return
      end
      M.request(protocol.CMD_SELECT_MODEL, { model = choice.name, task = task }, function(result)
        local chosen = type(result) == 'table' and val(result.activeModel) or choice.name
        notify(string.format('%s model: %s', type(result) == 'table' and val(result.task) or task or 'chat', chosen))
      end)
    end)
  end)
end

--- :AethelPull {model} — download a model, with progress; :AethelCancel stops it.
function M.pull(opts)
  local model = opts and opts.args or ''
  if model == '' then
    notify('usage: :AethelPull {model}, e.g. :AethelPull qwen2.5-coder:1.5b', vim.log.levels.ERROR)
    return nil
  end
  local client = require_client(nil, true)
  if not client then
    return nil
  end
  notify(string.format('pulling %s… (:AethelCancel to stop)', model))
  return actions.execute(client, vim.api.nvim_get_current_buf(), protocol.CMD_PULL_MODEL, { { model = model } }, {
    preview = false,
    on_report = function(run, value)
      if value.kind == 'end' then
        return
      end
      local pct = run.percentage and string.format(' %d%%', run.percentage) or ''
      vim.api.nvim_echo({ { string.format('aethel: pulling %s%s %s', model, pct, value.message or '') } }, false, {})
    end,
    on_done = function(run)
      if run.state == 'done' then
        notify(string.format('%s pulled', model))
      end
    end,
  })
end

--- :AethelCancel — stop the most recent running generation or pull.
function M.cancel()
  local run = actions.active()
  if not run then
    notify('nothing is running')
    return
  end
  actions.cancel(run)
end

--- :AethelPreview — show the last preview again (after closing it with q), or move
--- the cursor into it when it is already on screen (to scroll, yank, search).
function M.reopen_preview()
  local run
  for i = #actions.history, 1, -1 do
    if actions.history[i].preview and actions.history[i].preview:valid() then
      run = actions.history[i]
      break
    end
  end
  if run then
    local win = run.preview.win
    if win and vim.api.nvim_win_is_valid(win) then
      vim.api.nvim_set_current_win(win)
    else
      run.preview:show()
    end
  else
    notify('no preview to show')
  end
end

--- `aethel ● qwen2.5-coder:1.5b 51.7 tok/s`; empty when the server is not running.
--- Use it in 'statusline' or in lualine: `{ require('aethel').statusline }`.
function M.statusline()
  return status.statusline()
end

local function create_commands()
  local cmd = vim.api.nvim_create_user_command
  cmd('AethelGenerate', M.generate, {
    nargs = '*',
    range = true,
    desc = 'Generate an Aethel contract from a description, the selection or the comment line',
  })
  cmd('AethelDistill', M.distill, {
    nargs = '*',
    range = true,
    desc = 'Best of N: candidate contracts checked by the server, the best inserted',
  })
  cmd('AethelExplain', M.explain, { range = true, desc = 'Explain the selection (streams into a preview)' })
  cmd('AethelImprove', M.improve, { range = true, desc = 'Rewrite the selection better' })
  cmd('AethelDocument', M.document, { range = true, desc = 'Add documentation to the selection' })
  cmd('AethelFix', M.fix, { range = true, desc = 'Fix the diagnostics of the line (or range) with AI' })
  cmd('AethelStatus', function()
    M.show_status()
  end, { desc = 'Show the engine, host and models of aethel-lsp' })
  cmd('AethelModels', M.select_model, {
    nargs = '?',
    complete = function()
      return { 'chat', 'completion' }
    end,
    desc = 'Pick the model aethel-lsp uses',
  })
  cmd('AethelPull', M.pull, { nargs = 1, desc = 'Download a model into Ollama' })
  cmd('AethelCancel', M.cancel, { desc = 'Stop the running Aethel generation or pull' })
  cmd('AethelPreview', M.reopen_preview, { desc = 'Show the last Aethel preview again, or jump into it' })
end

--------------------------------------------------------------------------------- setup

--- Settings as the server should see them: JSON objects, never JSON arrays.
local function as_object(t)
  if type(t) ~= 'table' or next(t) == nil then
    return vim.empty_dict()
  end
  return t
end

--- Configure and enable the aethel-lsp client. Safe to call again to change options.
--- @param opts table? see lua/aethel/config.lua for every option
function M.setup(opts)
  local cfg = config.apply(opts)
  status.icons = cfg.icons
  local filetypes = { 'aethel' }
  for _, ft in ipairs(cfg.filetypes or {}) do
    if ft ~= 'aethel' then
      filetypes[#filetypes + 1] = ft
    end
  end
  local settings = as_object(cfg.settings)
  vim.lsp.config('aethel', {
    cmd = cfg.cmd,
    cmd_env = cfg.cmd_env,
    filetypes = filetypes,
    root_markers = cfg.root_markers,
    settings = { [protocol.CONFIG_SECTION] = settings },
    init_options = settings,
    capabilities = cfg.capabilities,
    handlers = {
      [protocol.NOTIFY_STATUS] = status.on_status,
      ['window/showDocument'] = actions.on_show_document,
    },
    commands = actions.client_commands(),
    on_attach = function(client, bufnr)
      inline.attach(client, bufnr)
      if cfg.on_attach then
        cfg.on_attach(client, bufnr)
      end
    end,
  })
  vim.lsp.enable('aethel')

  local group = vim.api.nvim_create_augroup('aethel', { clear = true })
  vim.api.nvim_create_autocmd('LspProgress', {
    group = group,
    callback = function(ev)
      local client = vim.lsp.get_client_by_id(ev.data and ev.data.client_id or -1)
      if client and client.name == 'aethel' then
        actions.on_progress(ev)
      end
    end,
  })
  vim.api.nvim_create_autocmd('LspDetach', {
    group = group,
    callback = function(ev)
      local client_id = ev.data and ev.data.client_id
      local client = client_id and vim.lsp.get_client_by_id(client_id)
      if client and client.name == 'aethel' then
        inline.detach(ev.buf, client_id)
        if #vim.lsp.get_clients({ name = 'aethel' }) <= 1 then
          status.clear(client_id)
        end
      end
    end,
  })
  vim.api.nvim_set_hl(0, 'AethelGhostText', { link = 'Comment', default = true })
  create_commands()
  M._configured = true
end

return M
