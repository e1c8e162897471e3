-- The Lua cache of the tasks this editor has heard about (from backend events), and the
-- statusline string precomputed from it. Reading the statusline never calls the backend.

local M = {}

--- Task records by key (see `key`).
M.tasks = {}

local line = ""
local redraw_pending = false

--- The statusline string: "" when nothing runs, else e.g. "✻ 2 ? 1 ⏳ 1" (running, waiting for
--- an answer, queued; a waiting task is not counted as running). Precomputed.
function M.statusline()
  return line
end

--- A task's key in the cache: ids are per project directory.
function M.key(cwd, id)
  return tostring(cwd) .. "\0" .. tostring(id)
end

local function redraw()
  if redraw_pending then
    return
  end
  redraw_pending = true
  vim.schedule(function()
    redraw_pending = false
    pcall(vim.cmd, "redrawstatus!")
  end)
end

--- Recomputes the statusline string from the cache (and the statusline options).
function M.recompute()
  local running, waiting, queued = 0, 0, 0
  local permissions = require("claude-tasks.permissions")
  for _, t in pairs(M.tasks) do
    if permissions.waiting(t) then
      waiting = waiting + 1
    elseif t.status == "running" then
      running = running + 1
    elseif t.status == "queued" then
      queued = queued + 1
    end
  end
  local icons = require("claude-tasks.config").get().statusline
  local parts = {}
  if running > 0 then
    parts[#parts + 1] = icons.icon .. " " .. running
  end
  if waiting > 0 then
    parts[#parts + 1] = icons.waiting_icon .. " " .. waiting
  end
  if queued > 0 then
    parts[#parts + 1] = icons.queued_icon .. " " .. queued
  end
  local new = table.concat(parts, " ")
  if new ~= line then
    line = new
    redraw()
  end
end

--- Functions told of every change of the cache: fn(task) for a new or changed record,
--- fn(nil, cwd, id) for a removed one (the task list follows the tasks this way).
local listeners = {}

local function tell(task, cwd, id)
  for _, fn in ipairs(listeners) do
    local ok, err = pcall(fn, task, cwd, id)
    if not ok then
      vim.schedule(function()
        require("claude-tasks.notify").notify(
          "claude-tasks: a task listener failed: " .. tostring(err),
          vim.log.levels.ERROR
        )
      end)
    end
  end
end

--- Calls `fn` on every change of the cache (see `tell`); returns a function that stops it.
function M.subscribe(fn)
  listeners[#listeners + 1] = fn
  return function()
    for i, f in ipairs(listeners) do
      if f == fn then
        table.remove(listeners, i)
        return
      end
    end
  end
end

--- Stores a task record (from an event); returns the previous record of that task, if any.
function M.put(task)
  local k = M.key(task.cwd, task.id)
  local prev = M.tasks[k]
  M.tasks[k] = task
  M.recompute()
  tell(task)
  return prev
end

function M.get(cwd, id)
  return M.tasks[M.key(cwd, id)]
end

function M.remove(cwd, id)
  M.tasks[M.key(cwd, id)] = nil
  M.recompute()
  tell(nil, cwd, id)
end

--- Updates the records of tasks already in the cache (from `list`/`get` answers). Tasks this
--- editor never heard of (e.g. run by another editor) are not added: they do not count in the
--- statusline.
function M.refresh(records)
  local changed = false
  for _, t in ipairs(records or {}) do
    local k = M.key(t.cwd, t.id)
    if type(t) == "table" and M.tasks[k] then
      M.tasks[k] = t
      changed = true
      require("claude-tasks.permissions").announce(t)
      tell(t)
    end
  end
  if changed then
    M.recompute()
  end
end

--- The project directories of the cached tasks.
function M.cwds()
  local seen, out = {}, {}
  for _, t in pairs(M.tasks) do
    if not seen[t.cwd] then
      seen[t.cwd] = true
      out[#out + 1] = t.cwd
    end
  end
  table.sort(out)
  return out
end

--- The backend went away: what it ran is no longer known to run (a new backend re-adopts
--- running tasks; `refresh_from_backend` then corrects the cache).
function M.backend_gone()
  for k, t in pairs(M.tasks) do
    if t.status == "running" or t.status == "queued" then
      M.tasks[k] = vim.tbl_extend("force", t, { status = "interrupted", was_live = true })
    end
  end
  M.recompute()
end

--- Re-reads the cached tasks' records from a (new) backend. Never raises.
function M.refresh_from_backend()
  if next(M.tasks) == nil then
    return
  end
  local backend = require("claude-tasks.backend")
  for _, cwd in ipairs(M.cwds()) do
    local ok, records = pcall(backend.request, "list", { cwd = cwd })
    if ok and type(records) == "table" then
      M.refresh(records)
    end
  end
end

return M
