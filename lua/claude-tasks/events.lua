-- Events from the backend (doc/protocol.md): `dispatch(ev)` updates the cache at once, then
-- (scheduled, outside the backend's RPC call) fires the `User` autocmds and notifies.
--
--   type       autocmds
--   queued     ClaudeTaskQueued
--   started    ClaudeTaskStarted
--   completed  ClaudeTaskCompleted, ClaudeTaskDone
--   failed     ClaudeTaskFailed, ClaudeTaskDone
--   cancelled  ClaudeTaskCancelled, ClaudeTaskDone
--   (any type carrying status "interrupted": ClaudeTaskFailed, ClaudeTaskDone)
--   permission ClaudeTaskPermission (permissions.lua; also for a request any record shows first)
--   updated, disposed: cache only
--
-- Each autocmd fires at most once per run of a task, whatever the backend repeats.

local M = {}

local nn = function(v)
  if v == vim.NIL then
    return nil
  end
  return v
end

local FINISHED = { completed = true, failed = true, cancelled = true, interrupted = true }

local AUTOCMD = {
  queued = "ClaudeTaskQueued",
  started = "ClaudeTaskStarted",
  completed = "ClaudeTaskCompleted",
  failed = "ClaudeTaskFailed",
  cancelled = "ClaudeTaskCancelled",
  interrupted = "ClaudeTaskFailed",
}

--- Which (task, run, autocmd) were already fired: key -> true.
local fired = {}

--- The current (last) run of a task record, or nil.
local function last_run(task)
  local runs = nn(task.runs)
  if type(runs) == "table" and #runs > 0 and type(runs[#runs]) == "table" then
    return runs[#runs], #runs
  end
  return nil, 0
end

--- The tools the last run had denied, one name per denied call (a list, maybe empty).
local function denied(task)
  local run = last_run(task)
  local d = run and nn(run.denied)
  return type(d) == "table" and d or {}
end

--- "1 tool denied (Bash)", "3 tools denied (Bash, Write)", and what allows them; nil if none.
function M.denied_text(task)
  local d = denied(task)
  if #d == 0 then
    return nil
  end
  local names, seen = {}, {}
  for _, name in ipairs(d) do
    name = tostring(name)
    if not seen[name] then
      seen[name] = true
      names[#names + 1] = name
    end
  end
  local quoted = vim.tbl_map(function(n)
    return string.format("%q", n)
  end, names)
  -- Asked in the editor, `A` on the next request allows it always; denied at once, asking does.
  local options = nn(task.options)
  local permissions = type(options) == "table" and nn(options.permissions) or "ask"
  local ask = permissions == "deny" and 'permissions = "ask"' or "A on the next request"
  return string.format(
    "%d %s denied (%s); to allow: %s or allowed_tools = { %s }",
    #d,
    #d == 1 and "tool" or "tools",
    table.concat(names, ", "),
    ask,
    table.concat(quoted, ", ")
  )
end

--- The `data` of the autocmds.
function M.data(task)
  return {
    id = nn(task.id),
    name = nn(task.name),
    status = nn(task.status),
    cwd = nn(task.cwd),
    exit_code = nn(task.exit_code),
    duration_ms = nn(task.duration_ms),
    session_id = nn(task.session_id),
    cost_usd = nn(task.cost_usd),
    run_cost_usd = nn((last_run(task) or {}).cost_usd),
    interrupted = nn((last_run(task) or {}).interrupted) == true,
    live = type(nn(task.live)) == "table",
    num_turns = nn(task.num_turns),
    result = nn(task.result),
    error = nn(task.error),
    denied = denied(task),
    files_changed = M.files_changed(task),
  }
end

--- The files the task's last run changed (`{ path, added, removed, status, ... }`, relative to
--- the run's root), or nil when they were not recorded.
function M.files_changed(task)
  local runs = nn(task.runs)
  local run = type(runs) == "table" and runs[#runs] or nil
  return run and nn(run.files_changed) or nil
end

--- The completion message and its level.
function M.message(task)
  local format = require("claude-tasks.format")
  local levels = vim.log.levels
  local head = "claude-tasks: " .. format.label(task) .. " — "
  local status = task.status
  local elapsed = format.elapsed_ms(task)
  local took = elapsed and format.duration(elapsed) or nil
  if status == "completed" then
    local parts
    local run, n = last_run(task)
    if n > 1 then
      -- A follow-up: its own time and cost, as its footer says, and the task's totals apart.
      local run_took = nn(run.duration_ms)
      parts =
        { "run " .. n .. " done" .. (run_took and (" in " .. format.duration(run_took)) or "") }
      local run_cost = format.cost({ cost_usd = run.cost_usd })
      parts[#parts + 1] = run_cost and (run_cost .. " this run") or nil
      local total = format.cost(task)
      parts[#parts + 1] = total and (total .. " task total (" .. n .. " runs)") or nil
    else
      parts = { "done" .. (took and (" in " .. took) or "") }
      parts[#parts + 1] = format.cost(task)
    end
    local files = M.files_changed(task)
    if files and #files > 0 then
      parts[#parts + 1] = require("claude-tasks.changes").totals(nn(run.changes) or {})
    end
    parts[#parts + 1] = M.denied_text(task)
    return head .. table.concat(parts, " · "), levels.INFO
  elseif status == "cancelled" and nn((last_run(task) or {}).interrupted) == true then
    return head .. "interrupted; it waits for your next message (i in its output)", levels.INFO
  elseif status == "cancelled" then
    return head .. "cancelled" .. (took and (" after " .. took) or ""), levels.WARN
  elseif status == "interrupted" then
    return head
      .. "interrupted (its backend went away); follow up with :ClaudeTasks resume "
      .. tostring(task.id)
      .. " {prompt}",
      levels.WARN
  end
  local why = nn(task.error)
  if not why and nn(task.exit_code) then
    why = "exit code " .. tostring(task.exit_code)
  end
  return head .. "failed" .. (took and (" after " .. took) or "") .. (why and (": " .. why) or ""),
    levels.ERROR
end

local function fire(pattern, data)
  local ok, err = pcall(vim.api.nvim_exec_autocmds, "User", {
    pattern = pattern,
    data = data,
    modeline = false,
  })
  if not ok then
    require("claude-tasks.notify").notify(
      string.format("claude-tasks: a %s autocmd failed: %s", pattern, tostring(err)),
      vim.log.levels.ERROR
    )
  end
end

local function once(task, what)
  local runs = nn(task.runs)
  local n = type(runs) == "table" and #runs or 0
  local k = string.format("%s\0%s\0%d\0%s", tostring(task.cwd), tostring(task.id), n, what)
  if fired[k] then
    return false
  end
  fired[k] = true
  return true
end

local function handle(ev)
  if type(ev) ~= "table" then
    return
  end
  local typ, task = nn(ev.type), nn(ev.task)
  if type(task) ~= "table" or nn(task.id) == nil or nn(task.cwd) == nil then
    return
  end
  local state = require("claude-tasks.state")
  if typ == "disposed" then
    state.remove(task.cwd, task.id)
    return
  end
  local prev = state.put(task)
  require("claude-tasks.permissions").announce(task)

  local status = nn(task.status)
  local kind
  if status == "interrupted" then
    -- Only a task we knew to be live (or an explicit failure) makes news; an old interrupted
    -- task showing up again does not.
    local was_live = prev
      and (prev.status == "running" or prev.status == "queued" or prev.was_live == true)
    if typ == "failed" or typ == "interrupted" or was_live then
      kind = "interrupted"
    end
  elseif typ == "queued" or typ == "started" or FINISHED[typ] then
    kind = typ
  end
  -- One outcome per run, whatever the backend repeats or revises.
  if not kind or not once(task, FINISHED[kind] and "done" or kind) then
    return
  end
  local data = M.data(task)
  local finished = FINISHED[kind]
  vim.schedule(function()
    if finished then
      -- First the buffers of the files it changed: the autocmds see them reloaded.
      local ok, err = pcall(require("claude-tasks.changes").after_run, task)
      if not ok then
        require("claude-tasks.notify").notify(
          "claude-tasks: " .. tostring(err),
          vim.log.levels.ERROR
        )
      end
    end
    fire(AUTOCMD[kind], data)
    if finished then
      fire("ClaudeTaskDone", data)
      if require("claude-tasks.config").get().notify then
        local msg, level = M.message(task)
        require("claude-tasks.notify").notify(msg, level)
      end
    end
  end)
end

--- Called by the backend with `{ type = ..., task = <task record> }`. Never raises: an error in
--- here is reported with vim.notify (scheduled) and the backend gets `true` anyway.
function M.dispatch(ev)
  local ok, err = pcall(handle, ev)
  if not ok then
    vim.schedule(function()
      require("claude-tasks.notify").notify(
        "claude-tasks: cannot handle a backend event: " .. tostring(err),
        vim.log.levels.ERROR
      )
    end)
  end
  return true
end

return M
