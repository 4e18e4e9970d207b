-- Headless Neovim driver for tests/e2e/test_neovim.py.
--
-- Loads the real plugin (editors/nvim) on the runtimepath, starts the real server
-- against the fake Ollama, plays a user's session step by step and writes what it saw
-- as JSON for pytest to assert on. It never asserts itself, except that each awaited
-- event happens within its deadline (a timeout is recorded and the run exits non-zero).
--
-- The session runs in a coroutine that yields to Neovim's main loop between steps, so
-- typed keys (nvim_feedkeys), autocmds, timers and LSP messages are processed exactly as
-- in an interactive editor.
--
-- Environment: AETHEL_NVIM_PLUGIN (plugin dir), AETHEL_NVIM_OUT (result JSON),
-- AETHEL_NVIM_PYTHON (interpreter that has aethel_lsp), AETHEL_NVIM_OLLAMA (fake URL),
-- AETHEL_NVIM_MODEL (action model), AETHEL_NVIM_COMPLETION_MODEL, AETHEL_NVIM_PULL,
-- AETHEL_NVIM_CMD (optional JSON list: the server command, to try another build by hand),
-- AETHEL_NVIM_SCENARIO (`session`, the default, `offline` or `capture`), AETHEL_NVIM_SIGNAL.
local env = vim.env
vim.opt.runtimepath:prepend(assert(env.AETHEL_NVIM_PLUGIN, 'AETHEL_NVIM_PLUGIN not set'))
vim.o.swapfile = false
vim.o.shortmess = vim.o.shortmess .. 'IF'

local OUT = assert(env.AETHEL_NVIM_OUT)
local R = { steps = {}, notifications = {}, progress = {}, errors = {} }
local T0 = vim.uv.hrtime()
local function ms()
  return math.floor((vim.uv.hrtime() - T0) / 1e6)
end
local function step(name, value)
  R.steps[name] = value == nil and vim.NIL or value
end

local finished = false
local function finish(code)
  if finished then
    return
  end
  finished = true
  R.elapsed_ms = ms()
  R.messages = vim.fn.execute('messages')
  local f = assert(io.open(OUT, 'w'))
  f:write(vim.json.encode(R))
  f:close()
  vim.cmd(code == 0 and 'qa!' or 'cq!')
end

-- Whatever happens, write what we have before the test's own timeout.
vim.defer_fn(function()
  R.errors[#R.errors + 1] = 'driver deadline reached'
  finish(1)
end, tonumber(env.AETHEL_NVIM_DEADLINE_MS or '50000'))

-- What the user would see as messages.
local orig_notify = vim.notify
vim.notify = function(msg, level, opts)
  R.notifications[#R.notifications + 1] = { t = ms(), level = level or vim.log.levels.INFO, msg = tostring(msg) }
  return orig_notify(msg, level, opts)
end

-------------------------------------------------------------------------- the plugin
local aethel = require('aethel')
aethel.setup({
  -- AETHEL_NVIM_CMD (a JSON list) runs another server build by hand; the test never sets it
  cmd = env.AETHEL_NVIM_CMD and vim.json.decode(env.AETHEL_NVIM_CMD)
    or { env.AETHEL_NVIM_PYTHON or 'python3', '-m', 'aethel_lsp' },
  filetypes = { 'python' },
  settings = {
    host = env.AETHEL_NVIM_OLLAMA,
    engine = 'ollama',
    model = env.AETHEL_NVIM_MODEL,
    completion = { model = env.AETHEL_NVIM_COMPLETION_MODEL },
  },
  inline = { debounce_ms = 20 },
  preview = { width = 60, height = 12 },
})
local actions = require('aethel.actions')
local inline = require('aethel.inline')
local status = require('aethel.status')

-- Registered after setup(), so it runs after the plugin's own LspProgress handler and
-- sees the preview as the user sees it right after each report.
vim.api.nvim_create_autocmd('LspProgress', {
  callback = function(ev)
    local v = ev.data.params.value
    local run = actions.last()
    R.progress[#R.progress + 1] = {
      t = ms(),
      kind = v.kind,
      title = v.title,
      token = ev.data.params.token,
      message = v.message,
      percentage = v.percentage,
      run = run and run.id,
      command = run and run.command,
      preview_chars = run and run.preview and #run.preview:get_text() or vim.NIL,
      run_state = run and run.state,
    }
  end,
})

------------------------------------------------------------------------ coroutine glue
local main_co

local function resume(...)
  local ok, err = coroutine.resume(main_co, ...)
  if not ok then
    R.errors[#R.errors + 1] = debug.traceback(main_co, tostring(err))
    finish(1)
  end
end

local function sleep(n)
  vim.defer_fn(resume, n)
  coroutine.yield()
end

local function wait_for(what, timeout, cond)
  local start = ms()
  while true do
    local ok, v = pcall(cond)
    if ok and v then
      return v
    end
    if ms() - start > timeout then
      error('timeout waiting for ' .. what .. (ok and '' or (': ' .. tostring(v))))
    end
    sleep(15)
  end
end

local function lines(buf)
  return vim.api.nvim_buf_get_lines(buf, 0, -1, false)
end

local function run_done(run)
  return run and run.state ~= 'running' and (run.state ~= 'done' or run.result ~= nil)
end

local function run_info(run)
  return {
    id = run.id,
    command = run.command,
    state = run.state,
    text = run.text,
    reports = run.reports,
    title = run.title or vim.NIL,
    summary = run.summary or vim.NIL,
    result = run.result or vim.NIL,
    error = run.error or vim.NIL,
    preview_text = run.preview and run.preview:get_text() or vim.NIL,
    preview_footer = run.preview and run.preview.footer or vim.NIL,
    preview_is_float = run.preview and run.preview.win and vim.api.nvim_win_is_valid(run.preview.win)
      and vim.api.nvim_win_get_config(run.preview.win).relative ~= '' or false,
    preview_filetype = run.preview and vim.api.nvim_buf_is_valid(run.preview.buf) and vim.bo[run.preview.buf].filetype or vim.NIL,
  }
end

------------------------------------------------------------------------------ session
local function main()
  local buf = vim.api.nvim_get_current_buf()
  step('filetype', vim.bo[buf].filetype)
  step('syntax', vim.b[buf].current_syntax or vim.NIL)
  step('commentstring', vim.bo[buf].commentstring)
  local syn_ids = {}
  for _, probe in ipairs({ { 2, 1 }, { 6, 9 }, { 1, 1 } }) do -- `intent`, `old_from_balance`, comment
    local id = vim.fn.synID(probe[1], probe[2], 1)
    syn_ids[#syn_ids + 1] = vim.fn.synIDattr(id, 'name')
  end
  step('syntax_groups', syn_ids)

  -- 0. ranges sent to the server: exact characters of a charwise selection in every
  -- position encoding (é is 2 bytes / 1 UTF-16 unit, 𝔸 is 4 bytes / 2 UTF-16 units)
  local scratch = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_set_current_buf(scratch)
  vim.api.nvim_buf_set_lines(scratch, 0, -1, false, { 'aé𝔸b', 'second line', '', 'after blank' })
  vim.api.nvim_win_set_cursor(0, { 1, 1 })
  vim.cmd('normal! vl')
  vim.cmd('normal! \27')
  local ranges = {}
  for _, enc in ipairs({ 'utf-8', 'utf-16', 'utf-32' }) do
    ranges[enc] = aethel.range_for(scratch, { range = 2, line1 = 1, line2 = 1 }, 'line', enc)
  end
  ranges.linewise = aethel.range_for(scratch, { range = 2, line1 = 1, line2 = 2 }, 'line', 'utf-16')
  vim.fn.setpos("'<", { 0, 0, 0, 0 }) -- forget the selection
  vim.api.nvim_win_set_cursor(0, { 2, 3 })
  ranges.paragraph = aethel.range_for(scratch, { range = 0 }, 'paragraph', 'utf-16')
  ranges.insert_below = aethel.range_for(scratch, { range = 0 }, 'insert', 'utf-16')
  vim.api.nvim_win_set_cursor(0, { 3, 0 })
  ranges.insert_blank = aethel.range_for(scratch, { range = 0 }, 'insert', 'utf-16')
  step('ranges', ranges)
  vim.api.nvim_set_current_buf(buf)
  vim.api.nvim_buf_delete(scratch, { force = true })

  -- 1. attach
  local client = wait_for('attach', 15000, function()
    local c = aethel.client(buf)
    return c and c.initialized and c
  end)
  step('attach_ms', ms())
  step('server_info', client.server_info or vim.NIL)
  local caps = client.server_capabilities
  step('capabilities', {
    codeActionProvider = caps.codeActionProvider or vim.NIL,
    inlineCompletionProvider = caps.inlineCompletionProvider or vim.NIL,
    commands = caps.executeCommandProvider and caps.executeCommandProvider.commands or vim.NIL,
  })
  step('protocol', require('aethel.protocol'))
  step('native_inline', inline.native())
  step('inline_attached', inline.attached(buf))

  -- 2. code actions: listed at once, without the model
  local t = vim.uv.hrtime()
  local resp = client:request_sync('textDocument/codeAction', {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    range = { start = { line = 1, character = 0 }, ['end'] = { line = 16, character = 1 } },
    context = { diagnostics = {} },
  }, 5000, buf)
  step('code_action_ms', (vim.uv.hrtime() - t) / 1e6)
  step('code_actions', resp and (resp.err or vim.tbl_map(function(a)
    local cmd = a.command and a.command.command or (type(a.data) == 'table' and a.data.command) or vim.NIL
    return { title = a.title, kind = a.kind or vim.NIL, command = cmd }
  end, resp.result or {})) or 'no response')

  -- 3. explain: the preview fills while the progress reports arrive
  vim.cmd('2,17AethelExplain')
  local run = actions.last()
  wait_for('explain result', 20000, function()
    return run_done(run)
  end)
  sleep(100) -- let a late `end` arrive
  step('explain', run_info(run))
  step('statusline_after_explain', aethel.statusline())

  -- 3b. the same action picked from Neovim's own code action menu (codeAction/resolve,
  -- then the command runs through the plugin's client-side handler: same live preview)
  local before_menu = #actions.history
  vim.lsp.buf.code_action({
    apply = true,
    range = { start = { 2, 0 }, ['end'] = { 17, 1 } },
    filter = function(a)
      return a.title:find('Explain', 1, true) ~= nil
    end,
  })
  local menu_run = wait_for('code action run', 10000, function()
    return #actions.history > before_menu and actions.last()
  end)
  wait_for('code action result', 20000, function()
    return run_done(menu_run)
  end)
  sleep(100)
  step('menu_explain', run_info(menu_run))

  -- 3c. the preview opened without focus: `q` in the code window closes it (no macro)
  local code_win = vim.api.nvim_get_current_win()
  local preview_win = menu_run.preview and menu_run.preview.win
  local preview_was_open = preview_win ~= nil and vim.api.nvim_win_is_valid(preview_win)
  vim.api.nvim_feedkeys('q', 'x', false)
  sleep(50)
  step('q_from_code', {
    preview_was_open = preview_was_open,
    cursor_stayed = vim.api.nvim_get_current_win() == code_win,
    preview_open = preview_win ~= nil and vim.api.nvim_win_is_valid(preview_win),
    recording = vim.fn.reg_recording(),
    q_mapped_after = vim.fn.maparg('q', 'n', false, true).desc or vim.NIL,
  })

  -- 4. cancel a long explanation from the editor (:AethelCancel)
  vim.cmd('2,17AethelExplain')
  local slow = actions.last()
  wait_for('slow explain reports', 10000, function()
    return slow.reports >= 2
  end)
  local ctrl_c = vim.fn.maparg('<C-c>', 'n', false, true).desc or vim.NIL
  vim.cmd('AethelCancel')
  local cancelled_at = ms()
  sleep(300)
  step('cancel', { state = slow.state, reports_at_cancel = slow.reports, t = cancelled_at, token = slow.token or vim.NIL, ctrl_c_in_code = ctrl_c })

  -- 5. generate: the server applies the contract to the buffer
  vim.cmd.edit('new.ae')
  local gbuf = vim.api.nvim_get_current_buf()
  wait_for('attach new.ae', 10000, function()
    return aethel.client(gbuf) ~= nil
  end)
  local before = lines(gbuf)
  vim.api.nvim_win_set_cursor(0, { 1, 0 })
  vim.cmd('AethelGenerate')
  local gen = actions.last()
  wait_for('generate result', 20000, function()
    return run_done(gen)
  end)
  wait_for('buffer changed', 5000, function()
    return table.concat(lines(gbuf), '\n') ~= table.concat(before, '\n')
  end)
  step('generate', run_info(gen))
  step('generate_buffer_before', before)
  step('generate_buffer_after', lines(gbuf))

  -- 5b. :AethelFix on a line the server flags, then :AethelImprove: edits applied
  vim.cmd.edit('drift.ae')
  local dbuf = vim.api.nvim_get_current_buf()
  wait_for('diagnostics on drift.ae', 15000, function()
    return #vim.diagnostic.get(dbuf, { lnum = 4 }) > 0
  end)
  step('fix_diagnostics', vim.tbl_map(function(d)
    return d.message
  end, vim.diagnostic.get(dbuf, { lnum = 4 })))
  vim.api.nvim_win_set_cursor(0, { 5, 0 })
  vim.cmd('AethelFix')
  local fix = actions.last()
  wait_for('fix result', 20000, function()
    return run_done(fix)
  end)
  wait_for('fix applied', 5000, function()
    return vim.api.nvim_buf_get_lines(dbuf, 4, 5, false)[1] ~= '        refund = order.total;'
  end)
  step('fix', run_info(fix))
  step('fix_line', vim.api.nvim_buf_get_lines(dbuf, 4, 5, false)[1])
  vim.cmd('4AethelImprove')
  local improve = actions.last()
  wait_for('improve result', 20000, function()
    return run_done(improve)
  end)
  wait_for('improve applied', 5000, function()
    return vim.api.nvim_buf_get_lines(dbuf, 3, 4, false)[1] ~= '        order.paid == true;'
  end)
  step('improve', run_info(improve))
  step('improve_line', vim.api.nvim_buf_get_lines(dbuf, 3, 4, false)[1])
  vim.cmd('silent! undo')
  step('improve_undone_line', vim.api.nvim_buf_get_lines(dbuf, 3, 4, false)[1])

  -- 6. statusline, :AethelStatus
  wait_for('status notification', 5000, function()
    return status.current ~= nil
  end)
  step('status_notification', status.current)
  step('statusline', aethel.statusline())
  local n_before = #R.notifications
  vim.cmd('AethelStatus')
  wait_for(':AethelStatus output', 10000, function()
    return #R.notifications > n_before and R.notifications[#R.notifications].msg:find('installed') ~= nil
  end)
  step('status_command_output', R.notifications[#R.notifications].msg)

  -- 7. :AethelModels — the user picks the completion model in vim.ui.select
  local picked
  vim.ui.select = function(items, opts, on_choice)
    local names = {}
    for _, it in ipairs(items) do
      names[#names + 1] = opts.format_item(it)
    end
    step('models_menu', names)
    for _, it in ipairs(items) do
      if it.name == env.AETHEL_NVIM_MODEL then
        picked = it
      end
    end
    on_choice(picked)
  end
  n_before = #R.notifications
  vim.cmd('AethelModels')
  wait_for('model selected', 10000, function()
    return #R.notifications > n_before and R.notifications[#R.notifications].msg:find('model:') ~= nil
  end)
  step('models_selected', R.notifications[#R.notifications].msg)

  -- 8. :AethelPull with progress
  if env.AETHEL_NVIM_PULL and env.AETHEL_NVIM_PULL ~= '' then
    vim.cmd('AethelPull ' .. env.AETHEL_NVIM_PULL)
    local pull = actions.last()
    wait_for('pull', 15000, function()
      return run_done(pull)
    end)
    local percents = {}
    for _, p in ipairs(R.progress) do
      if p.run == pull.id and type(p.percentage) == 'number' then
        percents[#percents + 1] = p.percentage
      end
    end
    step('pull', { state = pull.state, result = pull.result or vim.NIL, error = pull.error or vim.NIL, percentages = percents })
  end

  -- 9. inline completion as ghost text (Neovim 0.11 path), accepted with <Tab>
  vim.cmd.buffer(buf)
  local before_lines = #lines(buf)
  vim.api.nvim_win_set_cursor(0, { 15, 0 })
  vim.api.nvim_feedkeys(vim.keycode('o' .. 'to_balance == '), 'n', false)
  local marks = wait_for('ghost text extmark', 10000, function()
    local m = vim.api.nvim_buf_get_extmarks(buf, inline.ns, 0, -1, { details = true })
    return #m > 0 and m
  end)
  local details = marks[1][4]
  step('ghost', {
    row = marks[1][2],
    col = marks[1][3],
    virt_text = details.virt_text and details.virt_text[1][1] or vim.NIL,
    virt_text_pos = details.virt_text_pos or vim.NIL,
    virt_lines = details.virt_lines and #details.virt_lines or 0,
    mode = vim.api.nvim_get_mode().mode,
    line = vim.api.nvim_get_current_line(),
  })
  local function ghost_text()
    local m = vim.api.nvim_buf_get_extmarks(buf, inline.ns, 0, -1, { details = true })
    return m[1] and m[1][4].virt_text and m[1][4].virt_text[1][1] or nil
  end
  -- typing what the ghost text shows keeps it, shortened by what was typed
  local shown = ghost_text()
  vim.api.nvim_feedkeys('ol', 'n', false)
  wait_for('typed through', 5000, function()
    return vim.api.nvim_get_current_line():sub(-2) == 'ol' and ghost_text() == shown:sub(3)
  end)
  step('ghost_typed_through', ghost_text())
  vim.api.nvim_feedkeys(vim.keycode('<Tab>'), 'm', false)
  wait_for('ghost accepted', 5000, function()
    return vim.api.nvim_get_current_line():sub(-#shown) == shown
  end)
  step('ghost_accepted_line', vim.api.nvim_buf_get_lines(buf, 15, 16, false)[1])
  step('ghost_accepted_lines_added', #lines(buf) - before_lines)
  -- on the next line a new suggestion comes; <C-]> dismisses it, the text stays
  vim.api.nvim_feedkeys(vim.keycode('<CR>') .. 'to_balance == ', 'n', false)
  wait_for('next suggestion', 10000, function()
    return vim.api.nvim_get_current_line():find('to_balance == $') ~= nil and ghost_text() ~= nil
  end)
  local line_before = vim.api.nvim_get_current_line()
  vim.api.nvim_feedkeys(vim.keycode('<C-]>'), 'm', false)
  wait_for('dismissed', 5000, function()
    return ghost_text() == nil
  end)
  step('ghost_dismissed', { line_unchanged = vim.api.nvim_get_current_line() == line_before })
  vim.api.nvim_feedkeys(vim.keycode('<Esc>'), 'n', false)
  sleep(50)

  -- 9b. :AethelDistill on a comment line: best of N, the preview lists the verdicts
  vim.fn.writefile({ '# move an amount between two accounts' }, 'best.ae')
  vim.cmd.edit('best.ae')
  local bbuf = vim.api.nvim_get_current_buf()
  wait_for('attach best.ae', 10000, function()
    return aethel.client(bbuf) ~= nil
  end)
  vim.api.nvim_win_set_cursor(0, { 1, 0 })
  vim.cmd('AethelDistill')
  local best = actions.last()
  wait_for('distill result', 30000, function()
    return run_done(best)
  end)
  wait_for('best contract inserted', 5000, function()
    return #lines(bbuf) > 1
  end)
  step('distill', run_info(best))
  step('distill_buffer', lines(bbuf))

  -- 10. :checkhealth aethel
  vim.cmd('checkhealth aethel')
  wait_for('health report', 15000, function()
    return vim.bo.filetype == 'checkhealth' and table.concat(lines(0), '\n'):find('aethel: engine') ~= nil
      and table.concat(lines(0), '\n'):find('models') ~= nil
  end)
  step('health', lines(0))
end

-- The engine is down when Neovim starts, then comes back (the test starts the fake on
-- the same port when the driver writes AETHEL_NVIM_SIGNAL .. '.offline-done' and answers
-- with AETHEL_NVIM_SIGNAL .. '.online').
local function offline_then_online()
  local buf = vim.api.nvim_get_current_buf()
  local client = wait_for('attach', 15000, function()
    local c = aethel.client(buf)
    return c and c.initialized and c
  end)
  wait_for('offline status', 15000, function()
    return status.current and status.current.state == 'offline'
  end)
  step('offline_status', status.current)
  step('offline_statusline', aethel.statusline())
  local resp = client:request_sync('textDocument/codeAction', {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    range = { start = { line = 1, character = 0 }, ['end'] = { line = 16, character = 1 } },
    context = { diagnostics = {} },
  }, 5000, buf)
  step('offline_code_actions', resp and resp.result and #resp.result or 0)
  vim.cmd('2,17AethelExplain')
  local run = actions.last()
  wait_for('offline explain', 20000, function()
    return run_done(run)
  end)
  step('offline_explain', run_info(run))
  local n_before = #R.notifications
  vim.cmd('AethelStatus')
  wait_for(':AethelStatus offline', 15000, function()
    return #R.notifications > n_before and R.notifications[#R.notifications].msg:find('installed') ~= nil
  end)
  step('offline_status_command', R.notifications[#R.notifications].msg)

  local f = assert(io.open(env.AETHEL_NVIM_SIGNAL .. '.offline-done', 'w'))
  f:close()
  wait_for('engine back', 20000, function()
    return vim.uv.fs_stat(env.AETHEL_NVIM_SIGNAL .. '.online') ~= nil
  end)
  vim.cmd('2,17AethelExplain')
  local again = actions.last()
  wait_for('explain after recovery', 20000, function()
    return run_done(again)
  end)
  sleep(100)
  step('recovered_explain', run_info(again))
  step('recovered_statusline', aethel.statusline())
end

-- For docs/editors/neovim.md: a UI attached with --embed (tests/e2e/nvim/capture_screen.py)
-- is told when to take a picture, mid-stream and at the end.
local function capture()
  vim.o.laststatus = 2
  vim.o.statusline = "%f %m%=%{v:lua.require'aethel'.statusline()}  %l:%c "
  local buf = vim.api.nvim_get_current_buf()
  wait_for('attach', 15000, function()
    local c = aethel.client(buf)
    return c and c.initialized
  end)
  wait_for('status', 10000, function()
    return status.current ~= nil
  end)
  vim.api.nvim_win_set_cursor(0, { 13, 0 })
  vim.cmd('2,17AethelExplain')
  local run = actions.last()
  wait_for('mid-stream', 20000, function()
    return run.reports >= tonumber(env.AETHEL_NVIM_CAPTURE_AT or '12')
  end)
  vim.cmd.redraw()
  vim.rpcnotify(0, 'aethel_capture', 'streaming')
  sleep(300)
  wait_for('explain done', 30000, function()
    return run_done(run)
  end)
  sleep(200)
  vim.cmd.redraw()
  vim.rpcnotify(0, 'aethel_capture', 'done')
  sleep(300)
end

local SCENARIOS = { session = main, offline = offline_then_online, capture = capture }

vim.api.nvim_create_autocmd('VimEnter', {
  once = true,
  callback = function()
    main_co = coroutine.create(function()
      SCENARIOS[env.AETHEL_NVIM_SCENARIO or 'session']()
      finish(0)
    end)
    vim.schedule(resume)
  end,
})
