-- Inline completion (LSP 3.18 textDocument/inlineCompletion) as ghost text.
--
-- Neovim 0.12+ has vim.lsp.inline_completion: we just enable it for the buffer and map
-- the accept key. Neovim 0.11 has no client for the method (it does not even advertise
-- the capability, but the server answers anyway), so on 0.11 this module asks for a
-- suggestion after a short pause in typing and draws it with extmarks: the first line as
-- inline virtual text at the cursor, the rest as virtual lines below it.
local config = require('aethel.config')

local M = {}

M.ns = vim.api.nvim_create_namespace('aethel.inline')
local METHOD = 'textDocument/inlineCompletion'
local TRIGGER_INVOKED, TRIGGER_AUTOMATIC = 1, 2

--- @class aethel.Suggestion
--- @field row integer 0-based
--- @field col integer 0-based byte column where the ghost text starts (the cursor)
--- @field text string what accepting inserts at `col`
--- @field replace_end integer? byte column up to which existing text is replaced

--- @class aethel.InlineState
--- @field client_id integer
--- @field timer uv.uv_timer_t?
--- @field request_id integer?
--- @field suggestion aethel.Suggestion?
--- @field keys string[]

--- @type table<integer, aethel.InlineState>
local buffers = {}

--- The native client exists from Neovim 0.12 on.
function M.native()
  return vim.lsp.inline_completion ~= nil
end

local function in_insert_mode()
  return vim.api.nvim_get_mode().mode:sub(1, 1) == 'i'
end

--- Remove the ghost text of `bufnr` (the suggestion is forgotten).
function M.clear(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local st = buffers[bufnr]
  if st then
    st.suggestion = nil
  end
  if vim.api.nvim_buf_is_valid(bufnr) then
    vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  end
end

--- Is a suggestion on screen in `bufnr`?
function M.visible(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  if M.native() then
    return false
  end
  local st = buffers[bufnr]
  return st ~= nil and st.suggestion ~= nil
end

local function display(text)
  local ts = vim.bo.tabstop > 0 and vim.bo.tabstop or 8
  return (text:gsub('\t', string.rep(' ', ts)))
end

local function draw(bufnr, s)
  vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  local lines = vim.split(s.text, '\n', { plain = true })
  local opts = {
    virt_text = { { display(lines[1]), 'AethelGhostText' } },
    virt_text_pos = 'inline',
    hl_mode = 'combine',
    priority = 200,
  }
  if #lines > 1 then
    opts.virt_lines = {}
    for i = 2, #lines do
      opts.virt_lines[#opts.virt_lines + 1] = { { display(lines[i]), 'AethelGhostText' } }
    end
  end
  vim.api.nvim_buf_set_extmark(bufnr, M.ns, s.row, s.col, opts)
end

--- Keep the suggestion while the user types exactly what it shows ("typed through"),
--- drop it as soon as they type something else or move away.
--- @return boolean still_visible
local function sync(bufnr)
  local st = buffers[bufnr]
  local s = st and st.suggestion
  if not s then
    return false
  end
  local cursor = vim.api.nvim_win_get_cursor(0)
  local row, col = cursor[1] - 1, cursor[2]
  if row == s.row and col == s.col then
    return true
  end
  if row == s.row and col > s.col then
    local line = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
    local typed = line:sub(s.col + 1, col)
    if typed ~= '' and s.text:sub(1, #typed) == typed and #s.text > #typed then
      s.text = s.text:sub(#typed + 1)
      s.col = col
      if s.replace_end then
        s.replace_end = math.max(col, s.replace_end)
      end
      draw(bufnr, s)
      return true
    end
  end
  M.clear(bufnr)
  return false
end

--- Byte column of an LSP `character` offset on `row`.
local function byte_col(bufnr, row, character, encoding)
  local line = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
  local ok, col = pcall(vim.str_byteindex, line, encoding, character, false)
  return ok and col or #line
end

--- Turn the server's answer into a suggestion at the cursor, or nil.
local function suggestion_from(bufnr, client, result, row, col)
  if type(result) ~= 'table' then
    return nil
  end
  local items = result.items or result
  local item = type(items) == 'table' and items[1] or nil
  if type(item) ~= 'table' then
    return nil
  end
  local text = item.insertText
  if type(text) == 'table' then
    text = text.value -- a StringValue snippet; shown and inserted as plain text
  end
  if type(text) ~= 'string' or text == '' then
    return nil
  end
  local replace_end
  if type(item.range) == 'table' then
    local r = item.range
    if r.start.line ~= row then
      return nil -- multi-line replacements are not drawn as ghost text
    end
    local start = byte_col(bufnr, row, r.start.character, client.offset_encoding)
    local typed = (vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''):sub(start + 1, col)
    if text:sub(1, #typed) ~= typed then
      return nil
    end
    text = text:sub(#typed + 1)
    if r['end'].line == row then
      local stop = byte_col(bufnr, row, r['end'].character, client.offset_encoding)
      if stop > col then
        replace_end = stop
      end
    end
  end
  if text == '' then
    return nil
  end
  return { row = row, col = col, text = text, replace_end = replace_end }
end

--- Ask the server for a suggestion at the cursor now.
--- @param bufnr integer?
--- @param trigger_kind integer? 1 = invoked by the user, 2 = automatic (typing)
function M.request(bufnr, trigger_kind)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local st = buffers[bufnr]
  if not st or vim.api.nvim_get_current_buf() ~= bufnr then
    return
  end
  local client = vim.lsp.get_client_by_id(st.client_id)
  if not client then
    return
  end
  if st.request_id then
    client:cancel_request(st.request_id) -- latest wins; the server answers it empty
    st.request_id = nil
  end
  local cursor = vim.api.nvim_win_get_cursor(0)
  local row, col = cursor[1] - 1, cursor[2]
  local tick = vim.b[bufnr].changedtick
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.context = { triggerKind = trigger_kind or TRIGGER_AUTOMATIC }
  local request_id
  local _, id = client:request(METHOD, params, function(err, result)
    if st.request_id == request_id then
      st.request_id = nil
    end
    if err or not vim.api.nvim_buf_is_valid(bufnr) then
      return
    end
    -- stale: the user typed or moved on while the model was thinking
    if vim.api.nvim_get_current_buf() ~= bufnr or vim.b[bufnr].changedtick ~= tick or not in_insert_mode() then
      return
    end
    local now = vim.api.nvim_win_get_cursor(0)
    if now[1] - 1 ~= row or now[2] ~= col then
      return
    end
    local s = suggestion_from(bufnr, client, result, row, col)
    if s then
      st.suggestion = s
      draw(bufnr, s)
    end
  end, bufnr)
  request_id = id
  st.request_id = id
end

--- Insert the visible suggestion; returns false when there is none.
--- @return boolean
function M.accept(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  if M.native() then
    return vim.lsp.inline_completion.get({ bufnr = bufnr }) == true
  end
  local st = buffers[bufnr]
  local s = st and st.suggestion
  if not s then
    return false
  end
  M.clear(bufnr)
  local lines = vim.split(s.text, '\n', { plain = true })
  vim.api.nvim_buf_set_text(bufnr, s.row, s.col, s.row, s.replace_end or s.col, lines)
  local last_row = s.row + #lines - 1
  local last_col = (#lines == 1 and s.col or 0) + #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { last_row + 1, last_col })
  return true
end

--- Hide the suggestion; returns false when there was none.
function M.dismiss(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  if not M.visible(bufnr) then
    return false
  end
  M.clear(bufnr)
  return true
end

local function schedule(bufnr)
  local st = buffers[bufnr]
  if not st then
    return
  end
  st.timer = st.timer or vim.uv.new_timer()
  st.timer:stop()
  st.timer:start(config.current.inline.debounce_ms, 0, vim.schedule_wrap(function()
    if in_insert_mode() then
      M.request(bufnr, TRIGGER_AUTOMATIC)
    end
  end))
end

--- Map a key in insert mode that acts only when a suggestion is visible and otherwise
--- types the key as usual.
local function map_when_visible(bufnr, lhs, action, desc)
  if not lhs or lhs == '' then
    return
  end
  if M.native() then
    -- 0.12+: get() accepts and returns true, or returns false and the key is typed as usual
    vim.keymap.set('i', lhs, function()
      if not (action == 'accept' and vim.lsp.inline_completion.get({ bufnr = bufnr })) then
        vim.api.nvim_feedkeys(vim.keycode(lhs), 'n', false)
      end
    end, { buffer = bufnr, desc = desc })
  else
    vim.keymap.set('i', lhs, function()
      if M.visible(bufnr) then
        return string.format('<Cmd>lua require("aethel.inline").%s(%d)<CR>', action, bufnr)
      end
      return lhs
    end, { buffer = bufnr, expr = true, desc = desc })
  end
  table.insert(buffers[bufnr].keys, lhs)
end

--- Start inline completion for `bufnr` served by `client`.
--- @param client vim.lsp.Client
--- @param bufnr integer
function M.attach(client, bufnr)
  local opts = config.current.inline
  if not opts.enabled or buffers[bufnr] then
    return
  end
  if not client:supports_method(METHOD, bufnr) then
    return
  end
  buffers[bufnr] = { client_id = client.id, keys = {} }
  local keys = opts.keymaps or {}
  if M.native() then
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
    map_when_visible(bufnr, keys.accept, 'accept', 'Accept the Aethel inline suggestion')
    return
  end
  local group = vim.api.nvim_create_augroup('aethel.inline.' .. bufnr, { clear = true })
  vim.api.nvim_create_autocmd('TextChangedI', {
    group = group,
    buffer = bufnr,
    callback = function()
      if not sync(bufnr) then
        schedule(bufnr)
      end
    end,
  })
  vim.api.nvim_create_autocmd('CursorMovedI', {
    group = group,
    buffer = bufnr,
    callback = function()
      sync(bufnr)
    end,
  })
  vim.api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      local st = buffers[bufnr]
      if st and st.timer then
        st.timer:stop()
      end
      M.clear(bufnr)
    end,
  })
  map_when_visible(bufnr, keys.accept, 'accept', 'Accept the Aethel inline suggestion')
  map_when_visible(bufnr, keys.dismiss, 'dismiss', 'Dismiss the Aethel inline suggestion')
  if keys.trigger and keys.trigger ~= '' then
    vim.keymap.set('i', keys.trigger, function()
      M.request(bufnr, TRIGGER_INVOKED)
    end, { buffer = bufnr, desc = 'Ask aethel-lsp for an inline suggestion now' })
    table.insert(buffers[bufnr].keys, keys.trigger)
  end
end

--- Stop inline completion for `bufnr` (client detached or plugin disabled).
function M.detach(bufnr, client_id)
  local st = buffers[bufnr]
  if not st or (client_id and st.client_id ~= client_id) then
    return
  end
  if st.timer then
    st.timer:stop()
    st.timer:close()
  end
  M.clear(bufnr)
  if vim.api.nvim_buf_is_valid(bufnr) then
    for _, lhs in ipairs(st.keys) do
      pcall(vim.keymap.del, 'i', lhs, { buffer = bufnr })
    end
    pcall(vim.api.nvim_del_augroup_by_name, 'aethel.inline.' .. bufnr)
    if M.native() then
      pcall(vim.lsp.inline_completion.enable, false, { bufnr = bufnr })
    end
  end
  buffers[bufnr] = nil
end

--- Is inline completion running for `bufnr`?
function M.attached(bufnr)
  return buffers[bufnr or vim.api.nvim_get_current_buf()] ~= nil
end

return M
