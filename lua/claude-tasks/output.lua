-- The write protocol of the output buffers (doc/protocol.md): the backend replaces a buffer's
-- lines from a row to its end, through `before_write`/`after_write` around its own
-- `nvim_buf_set_lines`, or through `write` when that cannot be done at once; windows that
-- showed the last line follow the new last line.

local M = {}

local api = vim.api

local set_option = api.nvim_set_option_value
local buf_opt = {}

--- Writes that had to wait (text was locked, e.g. the backend called us while Lua was in an
--- rpcrequest from an <expr> mapping): buf -> { { start, lines }, ... }, applied in order.
local deferred = {}

local function locked(err)
  err = tostring(err)
  return err:find("E565", 1, true) ~= nil or err:find("E11:", 1, true) ~= nil
end

--- The windows of `buf` whose cursor is on its last line (they follow new output), or nil.
local function followers(buf)
  local last = api.nvim_buf_line_count(buf)
  local follow
  local wins = vim.fn.win_findbuf(buf)
  for i = 1, #wins do
    if api.nvim_win_get_cursor(wins[i])[1] >= last then
      follow = follow or {}
      follow[#follow + 1] = wins[i]
    end
  end
  return follow
end

local function move_to_end(buf, follow)
  if not follow then
    return
  end
  local new_last = api.nvim_buf_line_count(buf)
  for i = 1, #follow do
    if api.nvim_win_is_valid(follow[i]) then
      api.nvim_win_set_cursor(follow[i], { new_last, 0 })
    end
  end
end

--- After a write of the lines from `start`: the folds it carries are made (folds.lua), and
--- what hangs on the buffer's last line moves with it (activity.lua's sign of life); once per
--- write, not per line.
local function after_lines(buf, start, folds)
  local f = package.loaded["claude-tasks.folds"]
  if f or (type(folds) == "table" and #folds > 0) then
    (f or require("claude-tasks.folds")).written(buf, start, folds)
  end
  local activity = package.loaded["claude-tasks.activity"]
  if activity then
    activity.written(buf)
  end
end

--- Sets the lines and moves the following windows; returns ok, err.
local function apply(buf, start, lines, folds)
  local last = api.nvim_buf_line_count(buf)
  local follow = followers(buf)
  if start > last then
    start = last
  elseif start < 0 then
    start = 0
  end
  buf_opt.buf = buf
  set_option("modifiable", true, buf_opt)
  local ok, err = pcall(api.nvim_buf_set_lines, buf, start, -1, false, lines)
  if not ok and tostring(err):find("newline", 1, true) then
    -- A line with "\n" in it (should not happen): show it as several lines, never fail.
    local split = {}
    for _, l in ipairs(lines) do
      vim.list_extend(split, vim.split(l, "\n", { plain = true }))
    end
    ok, err = pcall(api.nvim_buf_set_lines, buf, start, -1, false, split)
  end
  set_option("modifiable", false, buf_opt)
  if not ok then
    return false, err
  end
  move_to_end(buf, follow)
  after_lines(buf, start, folds)
  return true
end

local function flush(buf)
  local queue = deferred[buf]
  if not queue then
    return
  end
  if not api.nvim_buf_is_valid(buf) or not api.nvim_buf_is_loaded(buf) then
    deferred[buf] = nil
    return
  end
  while #queue > 0 do
    local ok, err = apply(buf, queue[1][1], queue[1][2], queue[1][3])
    if not ok and locked(err) then
      return vim.defer_fn(function()
        flush(buf)
      end, 10)
    end
    table.remove(queue, 1)
  end
  deferred[buf] = nil
end

--- Replaces the lines of `buf` from 0-based `start` to the end with `lines`, and folds the
--- ranges `folds` (0-based first, last, first, last...). Windows whose cursor was on the last
--- line follow to the new last line; others stay put. Returns false when the buffer is gone
--- (the backend then stops writing to it). Called by the backend.
function M.write(buf, start, lines, folds)
  if not api.nvim_buf_is_valid(buf) or not api.nvim_buf_is_loaded(buf) then
    return false
  end
  local queue = deferred[buf]
  if queue then
    queue[#queue + 1] = { start, lines, folds }
    return true
  end
  local ok, err = apply(buf, start, lines, folds)
  if not ok then
    if not locked(err) then
      error(err, 0)
    end
    deferred[buf] = { { start, lines, folds } }
    vim.schedule(function()
      flush(buf)
    end)
  end
  return true
end

--- Followers noted by `before_write` for the write in flight: buf -> wins.
local following = {}
--- The start of the write in flight: buf -> row.
local starts = {}

--- The first call of the backend's usual write, an `nvim_call_atomic` of `before_write`,
--- `nvim_buf_set_lines` and `after_write` (doc/protocol.md): the lines go straight from the RPC
--- message into the buffer, never through Lua strings, which costs Neovim half the time. An
--- error here stops the batch: "buffer gone" ends the view, any other makes the backend use
--- `write` instead (text locked earlier, writes waiting, a start past the end).
function M.before_write(buf, start)
  if not api.nvim_buf_is_valid(buf) or not api.nvim_buf_is_loaded(buf) then
    error("claude-tasks: buffer gone", 0)
  end
  if deferred[buf] or start < 0 or start > api.nvim_buf_line_count(buf) then
    error("claude-tasks: use write()", 0)
  end
  following[buf] = followers(buf)
  starts[buf] = start
  buf_opt.buf = buf
  set_option("modifiable", true, buf_opt)
end

--- The last call of the atomic write; with `written == false` (the backend calls it alone
--- when `nvim_buf_set_lines` failed) it only makes the buffer read-only again. `start` and
--- `folds`: as for `write`.
function M.after_write(buf, written, start, folds)
  local follow = following[buf]
  following[buf] = nil
  start = start or starts[buf] or 0
  starts[buf] = nil
  if not api.nvim_buf_is_valid(buf) then
    return
  end
  buf_opt.buf = buf
  set_option("modifiable", false, buf_opt)
  if written then
    move_to_end(buf, follow)
    after_lines(buf, start, folds)
  end
end

return M
