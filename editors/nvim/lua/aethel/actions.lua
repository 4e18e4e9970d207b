-- Running the server's AI commands from Neovim, with the generated text streaming live
-- into a preview window.
--
-- aethel-lsp streams every generation as work-done progress: it creates a token
-- (window/workDoneProgress/create), sends `begin`, then `report`s whose `message` is the
-- text generated since the previous report, then `end` with a summary. The token is
-- chosen by the server, so a run claims the first `begin` that arrives from its client
-- after the request was sent (runs of one client are claimed in order). One command can
-- stream more than once (a generated contract that fails the checker is repaired in a
-- new round, under a new token): a `begin` that no new run is waiting for goes to the
-- latest run of that client whose previous progress has ended and which has not
-- answered yet. Neovim turns every `$/progress` into an `LspProgress` autocmd, which
-- is where we listen.
local config = require('aethel.config')
local preview = require('aethel.preview')
local protocol = require('aethel.protocol')

local M = {}

--- @class aethel.Run
--- @field id integer
--- @field client vim.lsp.Client
--- @field bufnr integer
--- @field command string
--- @field arguments any[]
--- @field state 'running'|'done'|'error'|'cancelled'
--- @field text string         text streamed so far (concatenated report messages)
--- @field reports integer     number of report messages that carried text
--- @field token (string|integer)?
--- @field title string?
--- @field percentage integer?
--- @field summary string?     message of the `end` progress
--- @field result any
--- @field error string?
--- @field preview aethel.Preview?
--- @field on_report fun(run: aethel.Run, value: table)?
--- @field on_done fun(run: aethel.Run)?
--- @field round integer?        1 for the first generation, 2 for the first repair round, ...
--- @field progress_open boolean?  a `begin` was seen and its `end` not yet

local next_id = 0
--- @type aethel.Run[] runs waiting for their `begin`, oldest first
local pending = {}
--- @type table<string, aethel.Run>
local by_token = {}
--- @type aethel.Run[] every run of this session, newest last (bounded)
M.history = {}

--- How each streaming command is presented.
local SPECS = {
  [protocol.CMD_EXPLAIN_SELECTION] = { title = 'Explain selection', filetype = 'markdown' },
  [protocol.CMD_GENERATE_CONTRACT] = { title = 'Generate Aethel contract', filetype = 'aethel' },
  -- progress reports are status lines ("3/6 checked, 2 valid"), not streamed text
  [protocol.CMD_DISTILL_CONTRACT] = { title = 'Generate Aethel contract (best of N)', filetype = 'markdown', status = true },
  [protocol.CMD_IMPROVE_SELECTION] = { title = 'Improve selection', filetype = nil },
  [protocol.CMD_DOCUMENT_SELECTION] = { title = 'Add documentation', filetype = nil },
  [protocol.CMD_FIX_WITH_AI] = { title = 'Fix with AI', filetype = nil },
}

local function token_key(token)
  return type(token) .. ':' .. tostring(token)
end

local function notify(msg, level)
  vim.notify('aethel: ' .. msg, level or vim.log.levels.INFO)
end

local function val(v)
  if v == vim.NIL then
    return nil
  end
  return v
end

--- `212 tokens · 4.1 s · 51.7 tok/s` from a result's `metrics` object (camelCase, as the CLI prints it).
local function metrics_summary(metrics)
  if type(metrics) ~= 'table' then
    return nil
  end
  local parts = {}
  if val(metrics.tokensGenerated) then
    parts[#parts + 1] = string.format('%d tokens', metrics.tokensGenerated)
  end
  if val(metrics.latencyMs) then
    parts[#parts + 1] = string.format('%.1f s', metrics.latencyMs / 1000)
  end
  if val(metrics.tokensPerSecond) then
    parts[#parts + 1] = string.format('%.1f tok/s', metrics.tokensPerSecond)
  end
  return #parts > 0 and table.concat(parts, ' · ') or nil
end

local function remove_pending(run)
  for i, r in ipairs(pending) do
    if r == run then
      table.remove(pending, i)
      return
    end
  end
end

local function fire_done(run)
  if run.on_done then
    pcall(run.on_done, run)
  end
  vim.api.nvim_exec_autocmds('User', {
    pattern = 'AethelDone',
    modeline = false,
    data = { id = run.id, command = run.command, state = run.state, text = run.text, result = run.result, error = run.error },
  })
end

--- Send `command` with `arguments` to the server and stream its progress.
--- @param client vim.lsp.Client
--- @param bufnr integer
--- @param command string
--- @param arguments any[]
--- @param opts { preview: boolean?, title: string?, filetype: string?, on_report: fun(run, value)?, on_done: fun(run)? }?
--- @return aethel.Run
function M.execute(client, bufnr, command, arguments, opts)
  opts = opts or {}
  next_id = next_id + 1
  local spec = SPECS[command] or {}
  --- @type aethel.Run
  local run = {
    id = next_id,
    client = client,
    bufnr = bufnr,
    command = command,
    arguments = arguments,
    state = 'running',
    text = '',
    reports = 0,
    on_report = opts.on_report,
    on_done = opts.on_done,
  }
  M.history[#M.history + 1] = run
  if #M.history > 20 then
    local old = table.remove(M.history, 1)
    if old.preview and old.state ~= 'running' then
      old.preview:destroy()
    end
  end
  local want_preview = opts.preview
  if want_preview == nil then
    want_preview = protocol.STREAMING_COMMANDS[command] == true
  end
  if want_preview then
    for _, other in ipairs(M.history) do
      if other.preview then
        other.preview:close() -- one preview on screen at a time; the older ones stay in history
      end
    end
    local ft = opts.filetype or spec.filetype or vim.bo[bufnr].filetype
    run.preview = preview.open('Aethel: ' .. (opts.title or spec.title or command), ft, config.current.preview, function()
      M.cancel(run)
    end, bufnr)
  end
  pending[#pending + 1] = run
  local ok, request_id = client:request('workspace/executeCommand', {
    command = command,
    arguments = arguments,
  }, function(err, result)
    M._on_response(run, err, result)
  end, bufnr)
  if not ok then
    remove_pending(run)
    run.state = 'error'
    run.error = 'the aethel-lsp server is not running'
    notify(run.error .. ' (see :checkhealth aethel)', vim.log.levels.ERROR)
    fire_done(run)
  else
    run.request_id = request_id
  end
  return run
end

--- The response to workspace/executeCommand: final text, or an error.
function M._on_response(run, err, result)
  remove_pending(run)
  if run.state == 'cancelled' then
    return
  end
  if err then
    run.state = 'error'
    run.error = err.message or vim.inspect(err)
    if run.preview then
      local shown = run.text ~= '' and (run.text .. '\n\n') or ''
      run.preview:set_text(shown .. '**Error:** ' .. run.error)
      run.preview:set_footer('failed')
      run.preview.running = false
    end
    notify(run.error, vim.log.levels.ERROR)
  else
    run.state = 'done'
    run.result = result
    local final = type(result) == 'table' and val(result.text) or nil
    if run.command == protocol.CMD_DISTILL_CONTRACT and type(result) == 'table' then
      final = M.verdicts(result)
    end
    if run.preview then
      if type(final) == 'string' then
        run.preview:set_text(final)
      end
      local footer = run.summary or metrics_summary(type(result) == 'table' and result.metrics) or 'done'
      if type(result) == 'table' and val(result.valid) == false then
        footer = 'still invalid · ' .. footer
      end
      run.preview:set_footer(footer)
      run.preview.running = false
    end
    M._report_outcome(run, result)
  end
  fire_done(run)
end

--- The distiller's answer as Markdown: every candidate with its verdict, best first, the
--- explanation, and the chosen contract.
--- @param result table
--- @return string
function M.verdicts(result)
  local out = { '# Candidates, best first', '' }
  for i, c in ipairs(val(result.candidates) or {}) do
    out[#out + 1] = string.format('%d. %s **%s** (%s) · score %s · %s', i,
      val(c.valid) and '✓' or '✗', c.model, c.provider, tostring(c.score), c.reason)
  end
  vim.list_extend(out, { '', '# Why', '' })
  vim.list_extend(out, vim.split(val(result.explanation) or '', '\n', { plain = true }))
  local best = val(result.best)
  if type(best) == 'table' and val(best.valid) then
    vim.list_extend(out, { '', '# Chosen contract', '', '```aethel' })
    vim.list_extend(out, vim.split(best.text or '', '\n', { plain = true }))
    out[#out + 1] = '```'
  end
  return table.concat(out, '\n')
end

--- One line telling the user what happened to their buffer.
function M._report_outcome(run, result)
  if type(result) ~= 'table' then
    return
  end
  local applied = val(result.applied)
  if run.command == protocol.CMD_DISTILL_CONTRACT then
    local best = val(result.best)
    local chosen = type(best) == 'table' and val(best.valid) == true
    notify(chosen and string.format('best of %d: %s chose', #(val(result.candidates) or {}), best.model)
      or 'no candidate contract passed the checker (see the preview)',
      chosen and vim.log.levels.INFO or vim.log.levels.WARN)
  elseif run.command == protocol.CMD_GENERATE_CONTRACT then
    local validity = val(result.valid) == false and 'still INVALID after repair' or 'valid'
    local attempts = val(result.attempts)
    notify(string.format(
      'contract %s%s%s',
      validity,
      attempts and string.format(' (%d attempt%s)', attempts, attempts == 1 and '' or 's') or '',
      applied and ', inserted' or ', not inserted (see the preview)'
    ), val(result.valid) == false and vim.log.levels.WARN or vim.log.levels.INFO)
  elseif applied ~= nil then
    notify(applied and 'edit applied' or 'edit not applied (see the preview)')
  end
end

--- LspProgress autocmd callback: route $/progress of aethel-lsp to the run it belongs to.
function M.on_progress(ev)
  local data = ev.data or {}
  local params = data.params or {}
  local value = params.value
  if type(value) ~= 'table' or params.token == nil then
    return
  end
  local key = token_key(params.token)
  local run = by_token[key]
  if run == nil and value.kind == 'begin' then
    run = M._claim(data.client_id)
    if run then
      if run.token ~= nil and run.state == 'running' then
        run.round = (run.round or 1) + 1 -- a new round: the preview restarts with it
        run.text = ''
      end
      run.token = params.token
      run.progress_open = true
      by_token[key] = run
    end
  end
  if run == nil then
    return
  end
  if run.state == 'cancelled' then
    -- cancelled before its progress began: stop the server side now that we know the token
    run.client:notify('window/workDoneProgress/cancel', { token = params.token })
    by_token[key] = nil
    return
  end
  if value.kind == 'begin' then
    run.title = value.title
  end
  if type(value.percentage) == 'number' then
    run.percentage = value.percentage
  end
  if value.kind == 'begin' and run.preview and (run.round or 1) > 1 then
    run.preview:set_text('') -- a repair round streams a whole new contract
  end
  if value.kind == 'report' and type(value.message) == 'string' and value.message ~= '' and run.preview then
    local spec = SPECS[run.command] or {}
    run.text = spec.status and value.message or (run.text .. value.message)
    run.reports = run.reports + 1
    run.preview:set_text(run.text)
  end
  if value.kind == 'end' then
    run.summary = value.message
    run.progress_open = false
    by_token[key] = nil
  end
  if run.preview and run.state == 'running' then
    if value.kind == 'end' then
      run.preview:set_footer(value.message or 'done')
    else
      local round = (run.round or 1) > 1 and run.title and (run.title .. ' · ') or ''
      local pct = run.percentage and string.format('%d%% · ', run.percentage) or ''
      run.preview:set_footer(round .. pct .. '<C-c> cancel · q close')
    end
  end
  if run.on_report then
    pcall(run.on_report, run, value)
  end
end

--- The run a new `begin` from `client_id` belongs to: the oldest run still waiting for
--- its first progress, else the newest running run between two rounds.
--- @return aethel.Run?
function M._claim(client_id)
  for i, r in ipairs(pending) do
    if r.client.id == client_id then
      table.remove(pending, i)
      return r
    end
  end
  for i = #M.history, 1, -1 do
    local r = M.history[i]
    if r.client.id == client_id and r.state == 'running' and r.token ~= nil and not r.progress_open then
      return r
    end
  end
  return nil
end

--- Stop a running generation: both routes the server honours, so the model stops at once.
--- @param run aethel.Run
function M.cancel(run)
  if run.state ~= 'running' then
    return
  end
  run.state = 'cancelled'
  if run.token ~= nil then
    run.client:notify('window/workDoneProgress/cancel', { token = run.token })
    by_token[token_key(run.token)] = nil
  else
    -- no `begin` yet: keep it claimable for a moment so its late `begin` is cancelled too
    vim.defer_fn(function()
      remove_pending(run)
    end, 2000)
  end
  if run.request_id then
    run.client:cancel_request(run.request_id)
  end
  if run.preview then
    run.preview:set_footer('cancelled')
    run.preview.running = false
  end
  notify('cancelled')
  fire_done(run)
end

--- The most recent run still going, if any.
--- @return aethel.Run?
function M.active()
  for i = #M.history, 1, -1 do
    if M.history[i].state == 'running' then
      return M.history[i]
    end
  end
  return nil
end

--- The most recent run, whatever its state.
--- @return aethel.Run?
function M.last()
  return M.history[#M.history]
end

--- Client-side handlers for the server's command ids. Neovim runs a code action's
--- command through these (Client:exec_cmd looks here first), so an action picked from
--- `vim.lsp.buf.code_action()` streams into the same preview as `:AethelExplain`.
--- @return table<string, fun(command: lsp.Command, ctx: table)>
function M.client_commands()
  local handlers = {}
  for command in pairs(protocol.STREAMING_COMMANDS) do
    handlers[command] = function(cmd, ctx)
      local client = vim.lsp.get_client_by_id(ctx.client_id)
      if client then
        M.execute(client, ctx.bufnr or vim.api.nvim_get_current_buf(), cmd.command, cmd.arguments or {})
      end
    end
  end
  return handlers
end

--- window/showDocument from aethel-lsp: while a run with a preview is going (or has
--- just finished), the explanation is already on screen, so show the document in that
--- preview instead of replacing the user's window. Anything else goes to Neovim's handler.
function M.on_show_document(err, params, ctx)
  local run = M.last()
  local uri = type(params) == 'table' and params.uri or nil
  if run and run.preview and run.state == 'running' and run.client.id == ctx.client_id and uri and not params.external then
    local fname = vim.uri_to_fname(uri)
    if vim.fn.filereadable(fname) == 1 then
      run.preview:set_text(table.concat(vim.fn.readfile(fname), '\n'))
      run.preview:show()
      run.shown_document = uri
      return { success = true }
    end
  end
  return vim.lsp.handlers['window/showDocument'](err, params, ctx)
end

return M
