-- A sign of life at the tail of a running task's output: a spinner and how long the task has
-- run ("⠹ working · 1m 05s"), as virtual text after the last line, so a task that thinks or
-- runs a long tool without a word still shows it is alive. No buffer write: follow, undo and
-- the backend's line numbers are untouched. One timer, a few ticks a second, runs only while a
-- window shows a live task's output; the mark goes when the task ends (its footer comes).

local M = {}

local api = vim.api
local uv = vim.uv or vim.loop

M.ns = api.nvim_create_namespace("claude-tasks.activity")

--- Milliseconds between updates: four a second.
M.INTERVAL = 250

M.FRAMES = { "⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏" }

--- Buffers with a mark: buf -> extmark id.
local marks = {}
local timer
local frame = 0

local function task_of(buf)
  local info = require("claude-tasks.buffer").info[buf]
  if not info then
    return nil
  end
  return require("claude-tasks.state").get(info.cwd, info.id)
end

--- The text after the last line of a task's output, or nil when it shows none.
function M.text(task, now)
  if not task or (task.status ~= "running" and task.status ~= "queued") then
    return nil
  end
  local format = require("claude-tasks.format")
  local ms = format.elapsed_ms(task, now)
  local took = ms and format.duration(ms) or nil
  if task.status == "queued" then
    return "⏳ queued" .. (took and (" · " .. took) or "")
  end
  return M.FRAMES[frame % #M.FRAMES + 1] .. " working" .. (took and (" · " .. took) or "")
end

local function clear(buf)
  local id = marks[buf]
  marks[buf] = nil
  if id and api.nvim_buf_is_valid(buf) then
    pcall(api.nvim_buf_del_extmark, buf, M.ns, id)
  end
end

--- Puts (or moves) the mark of `buf` after its last line; false when it shows none.
local function place(buf, now)
  local text = api.nvim_buf_is_loaded(buf)
    and vim.fn.bufwinid(buf) ~= -1
    and M.text(task_of(buf), now)
  if not text then
    clear(buf)
    return false
  end
  local last = api.nvim_buf_line_count(buf) - 1
  marks[buf] = api.nvim_buf_set_extmark(buf, M.ns, last, 0, {
    id = marks[buf],
    virt_text = { { "  " .. text, "ClaudeTasksRunning" } },
    virt_text_pos = "eol",
    hl_mode = "combine",
  })
  return true
end

local function stop()
  if timer then
    timer:stop()
    timer:close()
    timer = nil
  end
end

local function tick()
  frame = frame + 1
  local now = require("claude-tasks.format").now_ms()
  local any = false
  for buf in pairs(require("claude-tasks.buffer").info) do
    if api.nvim_buf_is_valid(buf) and place(buf, now) then
      any = true
    end
  end
  for buf in pairs(marks) do
    if not api.nvim_buf_is_valid(buf) then
      marks[buf] = nil
    end
  end
  if not any then
    stop()
  end
end

--- Starts the clock if a window shows a live task's output (a task started, a window opened).
function M.wake()
  if timer then
    return
  end
  timer = uv.new_timer()
  timer:start(
    0,
    M.INTERVAL,
    vim.schedule_wrap(function()
      if timer then
        tick()
      end
    end)
  )
end

--- Whether the clock runs (tests).
function M.ticking()
  return timer ~= nil
end

--- After a write to `buf`: its last line may be new, the mark goes after it at once (not at the
--- next tick, which would show it a moment on a line above).
function M.written(buf)
  if marks[buf] then
    place(buf)
  end
end

local started = false

--- Follows the task cache and the windows (once, when the first output buffer is made).
function M.setup()
  if started then
    return
  end
  started = true
  require("claude-tasks.state").subscribe(function(task)
    if not task then
      return
    end
    if task.status == "running" or task.status == "queued" then
      M.wake()
    else
      -- Ended: its footer is coming, the mark goes now.
      local buf = require("claude-tasks.buffer").find(task.id, task.cwd)
      if buf then
        clear(buf)
      end
    end
  end)
  api.nvim_create_autocmd("BufWinEnter", {
    group = api.nvim_create_augroup("claude-tasks.activity", { clear = true }),
    callback = function(ev)
      if require("claude-tasks.buffer").info[ev.buf] then
        M.wake()
      end
    end,
    desc = "claude-tasks: the sign of life of a live task's output",
  })
end

return M
