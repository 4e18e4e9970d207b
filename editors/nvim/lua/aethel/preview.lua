-- A scratch buffer in a floating window (or a split) that fills as the model streams.
-- Each generation gets its own unlisted buffer; closing the window only hides it (the
-- stream goes on filling it), and the buffer is deleted when its run leaves the history.
local M = {}

--- @class aethel.PreviewOpts
--- @field kind 'float'|'split'|'vsplit'
--- @field width number  fraction of the editor (float) when < 1, columns otherwise
--- @field height number fraction of the editor (float) when < 1, lines otherwise
--- @field border string|string[]
--- @field enter boolean  move the cursor into the preview when it opens

--- @class aethel.Preview
--- @field buf integer
--- @field win integer?
--- @field title string
--- @field opts aethel.PreviewOpts
--- @field footer string
local Preview = {}
Preview.__index = Preview

local function size(frac, total, min)
  local n = frac < 1 and math.floor(total * frac) or math.floor(frac)
  return math.max(min, math.min(n, total - 4))
end

local function float_config(self)
  local columns, lines = vim.o.columns, vim.o.lines
  local width = size(self.opts.width, columns, 20)
  local height = size(self.opts.height, lines, 3)
  return {
    relative = 'editor',
    row = 1,
    col = math.max(0, columns - width - 2),
    width = width,
    height = height,
    style = 'minimal',
    border = self.opts.border,
    title = ' ' .. self.title .. ' ',
    title_pos = 'left',
    footer = self.footer ~= '' and (' ' .. self.footer .. ' ') or nil,
    footer_pos = 'right',
  }
end

--- Open a new preview window titled `title` showing `filetype` text.
--- @param title string
--- @param filetype string?
--- @param opts aethel.PreviewOpts
--- @param on_cancel fun()? called by `<C-c>` in the preview while the generation runs
--- @param source_buf integer? the buffer the action ran on: while the preview is shown
---   without focus, `q` and `<C-c>` there act on the preview (and are given back after)
--- @return aethel.Preview
function M.open(title, filetype, opts, on_cancel, source_buf)
  local self = setmetatable({ title = title, opts = opts, footer = 'streaming…', running = true }, Preview)
  self.source_buf = source_buf
  self.buf = vim.api.nvim_create_buf(false, true)
  vim.bo[self.buf].bufhidden = 'hide' -- survives `q`, so :AethelPreview can show it again
  vim.bo[self.buf].filetype = filetype or 'markdown'
  pcall(vim.api.nvim_buf_set_name, self.buf, string.format('aethel://preview/%d', self.buf))
  local function cancel()
    if self.running and on_cancel then
      on_cancel()
    end
  end
  self.cancel = cancel
  -- closing only hides the text: the generation goes on and its edit is still applied
  vim.keymap.set('n', 'q', function()
    self:close()
  end, { buffer = self.buf, nowait = true, desc = 'Close the Aethel preview' })
  vim.keymap.set('n', '<C-c>', cancel, { buffer = self.buf, desc = 'Cancel the running Aethel generation' })
  self:show()
  return self
end

local BORROWED_KEYS = { 'q', '<C-c>' }

--- While the preview is on screen and the cursor stays in the code, `q` (close) and
--- `<C-c>` (stop) work from there too: the documented keys must not start a macro.
--- The code buffer's own mappings of those keys are restored when the preview closes.
function Preview:borrow_keys()
  local buf = self.source_buf
  if self.borrowed or not buf or not vim.api.nvim_buf_is_valid(buf) or buf == self.buf then
    return
  end
  self.borrowed = {}
  vim.api.nvim_buf_call(buf, function()
    for _, lhs in ipairs(BORROWED_KEYS) do
      local previous = vim.fn.maparg(lhs, 'n', false, true)
      self.borrowed[lhs] = (previous.buffer == 1) and previous or false
    end
  end)
  vim.keymap.set('n', 'q', function()
    self:close()
  end, { buffer = buf, nowait = true, desc = 'Close the Aethel preview' })
  vim.keymap.set('n', '<C-c>', self.cancel, { buffer = buf, desc = 'Cancel the running Aethel generation' })
end

function Preview:return_keys()
  local buf, borrowed = self.source_buf, self.borrowed
  self.borrowed = nil
  if not borrowed or not buf or not vim.api.nvim_buf_is_valid(buf) then
    return
  end
  vim.api.nvim_buf_call(buf, function()
    for lhs, previous in pairs(borrowed) do
      pcall(vim.keymap.del, 'n', lhs, { buffer = buf })
      if previous then
        vim.fn.mapset('n', false, previous)
      end
    end
  end)
end

--- (Re)show the preview window; used when the user closed it and asks again.
function Preview:show()
  if self.win and vim.api.nvim_win_is_valid(self.win) then
    return
  end
  if not vim.api.nvim_buf_is_valid(self.buf) then
    return
  end
  if self.opts.kind == 'float' then
    self.win = vim.api.nvim_open_win(self.buf, self.opts.enter, float_config(self))
  else
    local prev = vim.api.nvim_get_current_win()
    vim.cmd((self.opts.kind == 'vsplit' and 'botright vsplit' or 'botright split'))
    self.win = vim.api.nvim_get_current_win()
    vim.api.nvim_win_set_buf(self.win, self.buf)
    if not self.opts.enter then
      vim.api.nvim_set_current_win(prev)
    end
  end
  vim.wo[self.win].wrap = true
  vim.wo[self.win].linebreak = true
  vim.wo[self.win].conceallevel = 2
  if vim.api.nvim_get_current_win() ~= self.win then
    self:borrow_keys()
  end
end

function Preview:valid()
  return vim.api.nvim_buf_is_valid(self.buf)
end

--- Replace the whole text; keeps the last line in view so the stream is visible.
--- @param text string
function Preview:set_text(text)
  if not self:valid() then
    return
  end
  local lines = vim.split(text, '\n', { plain = true })
  vim.api.nvim_buf_set_lines(self.buf, 0, -1, false, lines)
  if self.win and vim.api.nvim_win_is_valid(self.win) then
    pcall(vim.api.nvim_win_set_cursor, self.win, { #lines, 0 })
  end
end

--- @return string
function Preview:get_text()
  if not self:valid() then
    return ''
  end
  return table.concat(vim.api.nvim_buf_get_lines(self.buf, 0, -1, false), '\n')
end

--- Update the footer (progress percentage, then the server's summary line).
--- @param footer string
function Preview:set_footer(footer)
  self.footer = footer
  if self.opts.kind == 'float' and self.win and vim.api.nvim_win_is_valid(self.win) then
    local cfg = vim.api.nvim_win_get_config(self.win)
    cfg.footer = ' ' .. footer .. ' '
    cfg.footer_pos = 'right'
    pcall(vim.api.nvim_win_set_config, self.win, cfg)
  end
end

--- Close the window and delete the buffer (the run is forgotten).
function Preview:destroy()
  self:close()
  if vim.api.nvim_buf_is_valid(self.buf) then
    pcall(vim.api.nvim_buf_delete, self.buf, { force = true })
  end
end

function Preview:close()
  self:return_keys()
  if self.win and vim.api.nvim_win_is_valid(self.win) then
    pcall(vim.api.nvim_win_close, self.win, true)
  end
  self.win = nil
end

return M
