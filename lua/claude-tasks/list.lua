-- :ClaudeTasks list: a project's tasks in a buffer, one line each, newest first, kept up to date
-- from the backend's events (state.subscribe) and a clock while a task is live; the keys act on
-- the task under the cursor through the actions table (actions.lua), so every action a feature
-- adds there gets its key here too.

local M = {}

local api = vim.api

M.ns = api.nvim_create_namespace("claude-tasks.list")

--- The status icons (the statusline's for running and queued).
M.icons = {
  completed = "✓",
  failed = "✗",
  cancelled = "■",
  interrupted = "⚠",
}

local GROUPS = {
  running = "ClaudeTasksRunning",
  queued = "ClaudeTasksQueued",
  completed = "ClaudeTasksCompleted",
  failed = "ClaudeTasksFailed",
  cancelled = "ClaudeTasksCancelled",
  interrupted = "ClaudeTasksInterrupted",
}

--- Longest name shown, in display cells.
local NAME_WIDTH = 40

--- Open lists: buf -> { cwd, tasks = { [id] = record }, rows = { [row] = record }, timer,
--- unsubscribe, pending }.
local lists = {}

local nn = require("claude-tasks.format").nn

function M.icon(task)
  local icons = require("claude-tasks.config").get().statusline
  if task.status == "running" then
    return icons.icon
  elseif task.status == "queued" then
    return icons.queued_icon
  end
  return M.icons[task.status] or "?"
end

--- "3 files", "1 file" or "": the files the task's runs changed (each run's `files_changed`,
--- issue 22; a file changed by several runs counts once), "" when no run's changes are known.
function M.files(task)
  local runs = nn(task.runs)
  local seen, n, known = {}, 0, false
  for _, run in ipairs(type(runs) == "table" and runs or {}) do
    local list = nn(run.files_changed)
    if type(list) == "table" then
      known = true
      local ch = nn(run.changes)
      local root = type(ch) == "table" and tostring(nn(ch.root) or "") or ""
      for _, f in ipairs(list) do
        local key = root .. "/" .. tostring(f.path)
        if not seen[key] then
          seen[key] = true
          n = n + 1
        end
      end
      -- The record lists the first files only; the run's total counts the rest.
      local total = type(ch) == "table" and tonumber(ch.files) or nil
      if total and total > #list then
        n = n + total - #list
      end
    end
  end
  if not known then
    return ""
  end
  return n == 1 and "1 file" or (n .. " files")
end

local function pad(s, width)
  local w = vim.fn.strdisplaywidth(s)
  if w > width then
    -- Cut by characters until it fits with the ellipsis.
    local n = vim.fn.strchars(s)
    while n > 0 and vim.fn.strdisplaywidth(vim.fn.strcharpart(s, 0, n)) > width - 1 do
      n = n - 1
    end
    s = vim.fn.strcharpart(s, 0, n) .. "…"
    w = vim.fn.strdisplaywidth(s)
  end
  return s .. string.rep(" ", width - w)
end

--- The newest first (by creation, then id).
local function newest_first(a, b)
  local ca, cb = tonumber(nn(a.created_at_ms)) or 0, tonumber(nn(b.created_at_ms)) or 0
  if ca ~= cb then
    return ca > cb
  end
  return (tonumber(a.id) or 0) > (tonumber(b.id) or 0)
end

--- The lines of `tasks` and their highlights { row, start, end, group }. A task whose Claude
--- idles shows `idle` with its run's icon and colour; it is not live (no clock, no cancel).
function M.render(tasks, now)
  local format = require("claude-tasks.format")
  local width = 4
  for _, t in ipairs(tasks) do
    width =
      math.max(width, math.min(NAME_WIDTH, vim.fn.strdisplaywidth(tostring(nn(t.name) or ""))))
  end
  local lines, hls = {}, {}
  for row, t in ipairs(tasks) do
    local icon = M.icon(t)
    local elapsed = format.elapsed_ms(t, now)
    local head = string.format("%s #%-3s ", icon, tostring(t.id))
    local line = head
      .. pad(tostring(nn(t.name) or ""), width)
      .. string.format(
        "  %-11s %8s  %8s  %9s  %s",
        format.status(t),
        elapsed and format.duration(elapsed) or "-",
        format.age(t.created_at_ms, now),
        format.cost(t) or "",
        M.files(t)
      )
    line = line:gsub("%s+$", "")
    lines[row] = line
    local group = GROUPS[t.status]
    if group then
      hls[#hls + 1] = { row - 1, 0, #icon, group }
      local s = #head + #pad(tostring(nn(t.name) or ""), width) + 2
      hls[#hls + 1] = { row - 1, s, s + #format.status(t), group }
    end
  end
  if #lines == 0 then
    lines[1] = "  no task yet in this project (:ClaudeTask {prompt} starts one)"
  end
  return lines, hls
end

local function sorted(list)
  local out = vim.tbl_values(list.tasks)
  table.sort(out, newest_first)
  return out
end

--- The task on the cursor's line of list `buf`, or nil.
function M.task_at(buf, row)
  local list = lists[buf]
  if not list then
    return nil
  end
  row = row or api.nvim_win_get_cursor(0)[1]
  return list.rows[row]
end

local function draw(buf)
  local list = lists[buf]
  if not list or not api.nvim_buf_is_valid(buf) then
    return
  end
  local win = vim.fn.bufwinid(buf)
  local keep = win ~= -1 and M.task_at(buf, api.nvim_win_get_cursor(win)[1]) or nil
  local tasks = sorted(list)
  local lines, hls = M.render(tasks)
  vim.bo[buf].modifiable = true
  api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.bo[buf].modified = false
  api.nvim_buf_clear_namespace(buf, M.ns, 0, -1)
  for _, h in ipairs(hls) do
    api.nvim_buf_set_extmark(buf, M.ns, h[1], h[2], { end_col = h[3], hl_group = h[4] })
  end
  list.rows = {}
  for row, t in ipairs(tasks) do
    list.rows[row] = t
    -- The cursor stays on its task when the lines move.
    if keep and t.id == keep.id and win ~= -1 then
      pcall(api.nvim_win_set_cursor, win, { row, 0 })
    end
  end
end

--- Redraws `buf` soon, once however many changes come meanwhile.
local function soon(buf)
  local list = lists[buf]
  if not list or list.pending then
    return
  end
  list.pending = true
  vim.schedule(function()
    list.pending = false
    draw(buf)
  end)
end

local function any_live(list)
  for _, t in pairs(list.tasks) do
    if t.status == "running" or t.status == "queued" then
      return true
    end
  end
  return false
end

--- The clock: live tasks' durations tick each second, ages each 15 s.
local function start_clock(buf)
  local list = lists[buf]
  if list.timer then
    return
  end
  local ticks = 0
  list.timer = (vim.uv or vim.loop).new_timer()
  list.timer:start(
    1000,
    1000,
    vim.schedule_wrap(function()
      if not lists[buf] then
        return
      end
      ticks = ticks + 1
      if any_live(list) or ticks % 15 == 0 then
        draw(buf)
      end
    end)
  )
end

local function stop(buf)
  local list = lists[buf]
  if not list then
    return
  end
  lists[buf] = nil
  if list.timer then
    list.timer:stop()
    list.timer:close()
  end
  list.unsubscribe()
end

--- Re-reads the project's tasks from the backend. Returns true, or false and an error.
local function fetch(buf)
  local list = lists[buf]
  local ok, tasks = pcall(require("claude-tasks.resolve").list, list.cwd)
  if not ok then
    return false, require("claude-tasks.backend").clean_error(tasks)
  end
  list.tasks = {}
  for _, t in ipairs(tasks) do
    list.tasks[t.id] = t
  end
  require("claude-tasks.state").refresh(tasks)
  return true
end

local function keys_help()
  local parts = {}
  local seen = {}
  for _, row in ipairs(require("claude-tasks.actions").rows) do
    if row.key and not seen[row.key] then
      seen[row.key] = true
      parts[#parts + 1] = row.key .. " " .. row.name:gsub("_", " ")
    end
  end
  vim.list_extend(parts, { "R refresh", "q close" })
  return "claude-tasks list: " .. table.concat(parts, " · ")
end

local function map(buf, lhs, fn, desc)
  vim.keymap.set("n", lhs, fn, { buffer = buf, nowait = true, silent = true, desc = desc })
end

local function prepare(buf, cwd)
  local bo = vim.bo[buf]
  bo.buftype = "nofile"
  bo.bufhidden = "wipe"
  bo.swapfile = false
  bo.buflisted = false
  bo.undolevels = -1
  bo.modifiable = false
  bo.filetype = "claude-tasks-list"
  local list = { cwd = cwd, tasks = {}, rows = {} }
  lists[buf] = list
  list.unsubscribe = require("claude-tasks.state").subscribe(function(task, rcwd, id)
    if task then
      if task.cwd == cwd then
        list.tasks[task.id] = task
        soon(buf)
      end
    elseif rcwd == cwd and list.tasks[id] then
      list.tasks[id] = nil
      soon(buf)
    end
  end)
  -- A key may serve several rows (a: allow a request, or answer a question): the first that
  -- applies to the task under the cursor runs.
  local by_key, order = {}, {}
  for _, row in ipairs(require("claude-tasks.actions").rows) do
    if row.key then
      if not by_key[row.key] then
        by_key[row.key] = {}
        order[#order + 1] = row.key
      end
      table.insert(by_key[row.key], row)
    end
  end
  for _, key in ipairs(order) do
    local rows = by_key[key]
    map(buf, key, function()
      local t = M.task_at(buf)
      if not t then
        return
      end
      for _, row in ipairs(rows) do
        if row.when(t) then
          return require("claude-tasks.actions").run(row.name, t)
        end
      end
      require("claude-tasks.actions").run(rows[1].name, t)
    end, "claude-tasks: " .. rows[1].desc)
  end
  map(buf, "q", function()
    require("claude-tasks.window").close(0)
  end, "claude-tasks: close the task list")
  map(buf, "R", function()
    local ok, e = fetch(buf)
    if not ok then
      require("claude-tasks.notify").notify(e, vim.log.levels.ERROR)
    end
    draw(buf)
  end, "claude-tasks: read the tasks again")
  map(buf, "g?", function()
    require("claude-tasks.notify").notify(keys_help())
  end, "claude-tasks: the task list's keys")
  api.nvim_create_autocmd("BufWipeout", {
    buffer = buf,
    once = true,
    callback = function()
      stop(buf)
    end,
  })
end

local function find(cwd)
  for buf, list in pairs(lists) do
    if list.cwd == cwd and api.nvim_buf_is_valid(buf) then
      return buf
    end
  end
end

--- Opens the task list of the current directory (opts.cwd: another), or focuses it.
--- opts.open: how ("split" default, "vsplit", "tab", "float"). Returns the buffer, or nil and
--- an error.
function M.open(opts)
  opts = opts or {}
  local cwd = opts.cwd or vim.fn.getcwd()
  local buf = find(cwd)
  local fresh = buf == nil
  if fresh then
    buf = api.nvim_create_buf(false, true)
    local name = "claude tasks"
    if vim.fn.bufexists(name) == 1 then
      name = name .. " (" .. vim.fn.fnamemodify(cwd, ":t") .. ")"
    end
    pcall(api.nvim_buf_set_name, buf, name)
    prepare(buf, cwd)
  end
  local ok, e = fetch(buf)
  if not ok then
    if fresh then
      pcall(api.nvim_buf_delete, buf, { force = true })
    end
    return nil, e
  end
  draw(buf)
  local mode = opts.open or "split"
  local win = require("claude-tasks.window").show(buf, mode, "claude tasks", {
    focus = true,
    reuse = false,
  })
  vim.wo[win][0].cursorline = true
  vim.wo[win][0].wrap = false
  if fresh then
    pcall(api.nvim_win_set_cursor, win, { 1, 0 })
  end
  start_clock(buf)
  return buf
end

return M
