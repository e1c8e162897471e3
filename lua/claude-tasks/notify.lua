-- The plugin's messages to the user, which must never stop the user's typing: one line, never
-- from a fast event (scheduled then), and with Neovim's own vim.notify (an echo) no wider than
-- the room the command line has, so no "Press ENTER" prompt ever appears, in insert mode
-- included. A vim.notify replaced by a plugin (nvim-notify, noice, snacks, fidget...) gets the
-- whole line and a title.

local M = {}

local levels = vim.log.levels

--- `msg` on one line: line breaks and tabs become spaces, runs of spaces one space.
function M.one_line(msg)
  msg = tostring(msg)
  if msg:find("[\r\n\t]") then
    msg = msg:gsub("%s*[\r\n]+%s*", " · "):gsub("\t", " ")
  end
  return vim.trim(msg)
end

--- Whether vim.notify is Neovim's own (an echo in the command line).
local function builtin_notify()
  local info = debug.getinfo(vim.notify, "S")
  return info ~= nil
    and type(info.source) == "string"
    and info.source:find("vim/_editor.lua", 1, true) ~= nil
end

--- `msg` cut to `width` display cells, with "…" when cut.
local function fit(msg, width)
  if vim.fn.strdisplaywidth(msg) <= width then
    return msg
  end
  local chars = vim.fn.strchars(msg)
  local lo, hi = 0, chars
  -- The longest prefix that fits with the ellipsis (display width is monotone in length).
  while lo < hi do
    local mid = math.floor((lo + hi + 1) / 2)
    if vim.fn.strdisplaywidth(vim.fn.strcharpart(msg, 0, mid)) + 1 <= width then
      lo = mid
    else
      hi = mid - 1
    end
  end
  return vim.fn.strcharpart(msg, 0, lo) .. "…"
end

local HL = { [levels.ERROR] = "ErrorMsg", [levels.WARN] = "WarningMsg" }

local function show(msg, level)
  if builtin_notify() then
    -- What fits beside the ruler and showcmd; a message wider than that scrolls the command
    -- line and asks for ENTER. The whole text stays in the notification's sources (the event
    -- data, the task list, :ClaudeTasks log).
    local room = vim.v.echospace
    if type(room) ~= "number" or room < 20 then
      room = math.max(20, vim.o.columns - 12)
    end
    vim.api.nvim_echo({ { fit(msg, room), HL[level] } }, true, {})
  else
    vim.notify(msg, level, { title = "claude-tasks" })
  end
end

--- Shows `msg` (level: vim.log.levels, default INFO) on one line; scheduled when called from a
--- fast event (an RPC callback, a libuv callback).
function M.notify(msg, level)
  msg = M.one_line(msg)
  level = level or levels.INFO
  if vim.in_fast_event() then
    vim.schedule(function()
      show(msg, level)
    end)
  else
    show(msg, level)
  end
end

return M
