-- The last `aethel/status` notification, and the statusline text built from it.
-- The server pushes the notification whenever its state changes (ready, busy, offline,
-- error, a new model, a new throughput figure), so the statusline never has to poll.
local M = {}

--- @class aethel.Status
--- @field state 'ready'|'busy'|'offline'|'error'
--- @field engine string?
--- @field host string?
--- @field model string?
--- @field tokensPerSecond number?
--- @field message string?

--- @type aethel.Status?
M.current = nil

M.icons = { ready = '●', busy = '◐', offline = '○', error = '✗' }

--- vim.NIL (JSON null) and nil both mean "absent".
local function value(v)
  if v == vim.NIL then
    return nil
  end
  return v
end

--- Handler for the `aethel/status` notification (registered in vim.lsp.config).
function M.on_status(_, params, ctx)
  if type(params) ~= 'table' then
    return
  end
  M.current = {
    state = value(params.state) or 'ready',
    engine = value(params.engine),
    host = value(params.host),
    model = value(params.model),
    tokensPerSecond = value(params.tokensPerSecond),
    message = value(params.message),
  }
  M.client_id = ctx and ctx.client_id
  vim.schedule(function()
    pcall(vim.cmd.redrawstatus)
    vim.api.nvim_exec_autocmds('User', { pattern = 'AethelStatus', modeline = false, data = M.current })
  end)
end

--- Forget the status when the server goes away, so the statusline does not lie.
function M.clear(client_id)
  if M.client_id == nil or M.client_id == client_id then
    M.current = nil
    M.client_id = nil
  end
end

--- One short line for a statusline: `aethel ● qwen2.5-coder:1.5b 51.7 tok/s`.
--- Empty when no aethel-lsp client is running, so it can sit in every statusline.
--- @return string
function M.statusline()
  local s = M.current
  if s == nil then
    if #vim.lsp.get_clients({ name = 'aethel' }) == 0 then
      return ''
    end
    return 'aethel …'
  end
  local parts = { 'aethel', M.icons[s.state] or s.state }
  if s.state == 'offline' then
    parts[#parts + 1] = 'offline'
  elseif s.state == 'error' then
    parts[#parts + 1] = 'error'
  end
  if s.model and s.model ~= '' then
    parts[#parts + 1] = s.model
  end
  if type(s.tokensPerSecond) == 'number' and s.tokensPerSecond > 0 then
    parts[#parts + 1] = string.format('%.1f tok/s', s.tokensPerSecond)
  end
  return table.concat(parts, ' ')
end

return M
