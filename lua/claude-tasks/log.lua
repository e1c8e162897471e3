-- :ClaudeTasks log: a task's transcript (the CLI's own stream-json lines) in a read-only buffer
-- that follows the file as the CLI appends to it, like the output buffer: a window whose cursor
-- is on the last line stays there. Reads happen on libuv's threads, a chunk at a time, and
-- only what was appended is read again.

local M = {}

local api = vim.api
local uv = vim.uv or vim.loop

--- Bytes read at a time: a huge transcript loads in steps the editor stays responsive between.
M.CHUNK = 1024 * 1024

--- Open logs: buf -> { path, offset, rest (a partial last line), fd, watcher, reading, again }.
local logs = {}

local function close(buf)
  local log = logs[buf]
  if not log then
    return
  end
  logs[buf] = nil
  if log.watcher then
    log.watcher:stop()
    log.watcher:close()
  end
  if log.fd then
    uv.fs_close(log.fd)
  end
end

--- Appends complete lines of `data` to the buffer (the first ones replace its empty line).
local function append(buf, log, data)
  local text = log.rest .. data
  local lines = vim.split(text, "\n", { plain = true })
  log.rest = table.remove(lines)
  if #lines == 0 then
    return
  end
  local last = api.nvim_buf_line_count(buf)
  local follow = {}
  for _, win in ipairs(vim.fn.win_findbuf(buf)) do
    if api.nvim_win_get_cursor(win)[1] >= last then
      follow[#follow + 1] = win
    end
  end
  local empty = not log.started
  log.started = true
  vim.bo[buf].modifiable = true
  api.nvim_buf_set_lines(buf, empty and 0 or -1, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.bo[buf].modified = false
  local new_last = api.nvim_buf_line_count(buf)
  for _, win in ipairs(follow) do
    if api.nvim_win_is_valid(win) then
      api.nvim_win_set_cursor(win, { new_last, 0 })
    end
  end
end

--- Reads what was appended since the last read, a chunk at a time, then again if the file
--- changed meanwhile.
local function read(buf)
  local log = logs[buf]
  if not log then
    return
  end
  if log.reading then
    log.again = true
    return
  end
  log.reading, log.again = true, false
  local function done()
    log.reading = false
    if log.again and logs[buf] then
      read(buf)
    end
  end
  uv.fs_fstat(log.fd, function(serr, st)
    if serr or not st then
      return vim.schedule(done)
    end
    if st.size < log.offset then
      -- Truncated or replaced: read it again from the start.
      vim.schedule(function()
        if logs[buf] and api.nvim_buf_is_valid(buf) then
          log.offset, log.rest, log.started = 0, "", false
          vim.bo[buf].modifiable = true
          api.nvim_buf_set_lines(buf, 0, -1, false, {})
          vim.bo[buf].modifiable = false
          log.again = true
        end
        done()
      end)
      return
    end
    if st.size == log.offset then
      return vim.schedule(done)
    end
    local n = math.min(M.CHUNK, st.size - log.offset)
    uv.fs_read(log.fd, n, log.offset, function(rerr, data)
      vim.schedule(function()
        if not logs[buf] or not api.nvim_buf_is_valid(buf) then
          return
        end
        if not rerr and data and #data > 0 then
          log.offset = log.offset + #data
          append(buf, log, data)
          -- More to read (the file is bigger than a chunk): go on.
          log.again = log.again or log.offset < st.size
        end
        done()
      end)
    end)
  end)
end

local function find(path)
  for buf, log in pairs(logs) do
    if log.path == path and api.nvim_buf_is_valid(buf) then
      return buf
    end
  end
end

--- The transcript's path of `task`, or nil and an error.
local function transcript(task)
  local path = task.transcript
  if type(path) ~= "string" then
    local full, e = require("claude-tasks").get(task)
    if not full then
      return nil, e
    end
    path = full.transcript
  end
  if type(path) ~= "string" or vim.fn.filereadable(path) == 0 then
    return nil,
      string.format(
        "claude-tasks: #%s has no transcript yet (%s)",
        tostring(task.id),
        tostring(path)
      )
  end
  return path
end

--- Opens the transcript of `task` in a buffer that follows the file (`q` closes it). Returns
--- the buffer, or nil and an error.
function M.open(task)
  local path, err = transcript(task)
  if not path then
    require("claude-tasks.notify").notify(err, vim.log.levels.ERROR)
    return nil, err
  end
  local buf = find(path)
  if not buf then
    local fd, oerr = uv.fs_open(path, "r", 0)
    if not fd then
      err = "claude-tasks: cannot read " .. path .. ": " .. tostring(oerr)
      require("claude-tasks.notify").notify(err, vim.log.levels.ERROR)
      return nil, err
    end
    buf = api.nvim_create_buf(false, true)
    local name = string.format("claude #%s log", tostring(task.id))
    if vim.fn.bufexists(name) == 1 then
      name = name .. " (" .. vim.fn.fnamemodify(task.cwd or "", ":t") .. ")"
    end
    pcall(api.nvim_buf_set_name, buf, name)
    local bo = vim.bo[buf]
    bo.buftype = "nofile"
    bo.bufhidden = "wipe"
    bo.swapfile = false
    bo.undolevels = -1
    bo.modifiable = false
    bo.filetype = "jsonl"
    logs[buf] = { path = path, offset = 0, rest = "", fd = fd }
    vim.keymap.set("n", "q", function()
      require("claude-tasks.window").close(0)
    end, { buffer = buf, nowait = true, silent = true, desc = "claude-tasks: close the log" })
    api.nvim_create_autocmd("BufWipeout", {
      buffer = buf,
      once = true,
      callback = function()
        close(buf)
      end,
    })
    local watcher = uv.new_fs_event()
    if watcher then
      logs[buf].watcher = watcher
      watcher:start(path, {}, function()
        vim.schedule(function()
          read(buf)
        end)
      end)
    end
    read(buf)
  end
  local mode = require("claude-tasks.config").get().open or "split"
  require("claude-tasks.window").show(buf, mode, "transcript #" .. tostring(task.id))
  return buf
end

return M
