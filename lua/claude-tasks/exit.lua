-- Quitting Neovim while tasks run (ExitPre): with on_exit = "cancel", one line says which tasks
-- are cancelled; with "ask", the user chooses to cancel them, leave them running (detach), or
-- stay. The backend applies the choice when the channel closes (doc/protocol.md `configure`).

local M = {}

local api = vim.api

--- This editor's live tasks (running or queued), newest first.
function M.live_tasks()
  local out = {}
  for _, t in pairs(require("claude-tasks.state").tasks) do
    if t.status == "running" or t.status == "queued" then
      out[#out + 1] = t
    end
  end
  table.sort(out, function(a, b)
    return (tonumber(a.created_at_ms) or 0) > (tonumber(b.created_at_ms) or 0)
  end)
  return out
end

--- "#12 fix-failing-test, #13 docs" (at most `max`, then "and N more").
function M.names(tasks, max)
  max = max or 3
  local parts = {}
  for i, t in ipairs(tasks) do
    if i > max then
      parts[#parts + 1] = string.format("and %d more", #tasks - max)
      break
    end
    parts[#parts + 1] = require("claude-tasks.format").label(t)
  end
  return table.concat(parts, ", ")
end

--- Tells the backend what to do with running tasks when the channel closes.
local function tell(on_exit)
  local backend = require("claude-tasks.backend")
  pcall(backend.request, "configure", { on_exit = on_exit })
end

--- Stops the quit that is under way: ExitPre gives up when its window went away, so the
--- window is replaced by a split of itself (same buffer, view and options).
local function stay()
  local win = api.nvim_get_current_win()
  if api.nvim_win_get_config(win).relative ~= "" then
    pcall(api.nvim_win_close, win, true)
    return
  end
  if pcall(vim.cmd, "split") then
    pcall(api.nvim_win_close, win, true)
  end
end

local function say(msg, level)
  -- Now, not scheduled: the editor is going away.
  api.nvim_echo({ { msg, level == vim.log.levels.WARN and "WarningMsg" or nil } }, true, {})
  pcall(vim.cmd, "redraw")
end

--- Whether the quit was forced (`:qa!`, `:q!`, `:wqa!`...): the last command line typed.
local function forced()
  local last = vim.fn.histget(":", -1)
  return type(last) == "string" and last:match("^%s*%a+!") ~= nil
end

--- ExitPre: Neovim is about to quit.
function M.on_exit_pre()
  local tasks = M.live_tasks()
  if #tasks == 0 then
    return
  end
  local policy = require("claude-tasks.config").get().on_exit
  if policy == "detach" then
    return
  end
  local names = M.names(tasks)
  if policy == "ask" and not forced() then
    local n = #tasks == 1 and "1 task is" or (#tasks .. " tasks are")
    local choice = vim.fn.confirm(
      string.format("claude-tasks: %s running (%s).", n, names),
      "&Cancel them and quit\n&Leave them running and quit\n&Stay",
      3
    )
    if choice == 2 then
      tell("detach")
      return
    elseif choice ~= 1 then
      -- "Stay", or <Esc>.
      return stay()
    end
  end
  tell("cancel")
  say("claude-tasks: quitting cancels " .. names, vim.log.levels.WARN)
end

return M
