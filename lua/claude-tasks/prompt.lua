-- The prompt line of an output buffer: a small window under the task's output where the next
-- message is written (markdown, several lines; it grows to `prompt.max_height`). Sending calls
-- resume(), as :ClaudeTasks say does: said at once to a running task (its CLI folds it into the
-- turn or answers it next), written to an idle live CLI, or a new CLI resuming the session.

local M = {}

local api = vim.api
local levels = vim.log.levels

--- Open windows, by output buffer: { buf, win, out, task = { id, cwd }, history, at, draft }.
local open = {}

--- Messages sent from here in this session, by task key (newest last), for <Up> before the
--- record lists them.
local sent = {}

local function opts()
  return require("claude-tasks.config").get().prompt
end

local function notify(msg, level)
  require("claude-tasks.notify").notify(msg, level)
end

local function key_of(task)
  return tostring(task.cwd) .. "\0" .. tostring(task.id)
end

local nn = require("claude-tasks.format").nn

--- A file's text, at most 64 KiB of it; nil when it cannot be read.
local function read(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local text = f:read(64 * 1024)
  f:close()
  return text
end

--- This task's earlier prompts, oldest first: each run's prompt and what was said during it
--- (the files the backend keeps), then what was sent from here since.
function M.history(task)
  local out, seen = {}, {}
  local function add(text)
    if type(text) == "string" and vim.trim(text) ~= "" and not seen[text] then
      seen[text] = true
      out[#out + 1] = text
    end
  end
  local rec = require("claude-tasks").get(task)
  local dir = rec and nn(rec.dir)
  if type(dir) == "string" then
    for _, run in ipairs(nn(rec.runs) or {}) do
      local n = tonumber(nn(run.n))
      if n then
        add(read(string.format("%s/prompt-%d.txt", dir, n)))
        for k = 1, #(nn(run.said) or {}) do
          add(read(string.format("%s/said-%d-%d.txt", dir, n, k)))
        end
      end
    end
  end
  for _, text in ipairs(sent[key_of(task)] or {}) do
    add(text)
  end
  return out
end

--- What a message to `task` does now, for the window's bar.
local function what_it_does(task)
  local t = require("claude-tasks.state").get(task.cwd, task.id) or {}
  if t.status == "running" then
    return "said now: taken into the running turn, or answered after it"
  elseif t.status == "queued" then
    return "runs after the queued run"
  elseif type(nn(t.live)) == "table" then
    return "to its live Claude, at once"
  end
  return "resumes its session"
end

local function set_bar(p)
  if not api.nvim_win_is_valid(p.win) then
    return
  end
  local keys = opts().keys
  local function first(k)
    return require("claude-tasks.config").keys(k)[1]
  end
  local hint = {}
  if first(keys.send_insert) then
    hint[#hint + 1] = first(keys.send_insert) .. " send"
  end
  if first(keys.close) then
    hint[#hint + 1] = first(keys.close) .. " close"
  end
  local bar = string.format(
    " › #%s · %s · %s",
    tostring(p.task.id),
    what_it_does(p.task),
    table.concat(hint, " · ")
  )
  vim.wo[p.win].winbar = bar:gsub("%%", "%%%%")
end

--- Fits the window's height to its text (screen lines), up to `max_height`.
local function fit(p)
  if not api.nvim_win_is_valid(p.win) then
    return
  end
  local lines = api.nvim_buf_line_count(p.buf)
  if api.nvim_win_text_height then
    local ok, h = pcall(api.nvim_win_text_height, p.win, {})
    if ok and type(h) == "table" and h.all then
      lines = h.all
    end
  end
  -- The window's height counts its bar too.
  local bar = vim.wo[p.win].winbar ~= "" and 1 or 0
  local height = math.max(1, math.min(opts().max_height, lines)) + bar
  if api.nvim_win_get_height(p.win) ~= height then
    api.nvim_win_set_height(p.win, height)
  end
end

local function close(p)
  open[p.out] = nil
  if api.nvim_win_is_valid(p.win) then
    local back = p.from
    pcall(api.nvim_win_close, p.win, true)
    if back and api.nvim_win_is_valid(back) then
      api.nvim_set_current_win(back)
    end
  end
  if api.nvim_buf_is_valid(p.buf) then
    pcall(api.nvim_buf_delete, p.buf, { force = true })
  end
end

local function text_of(p)
  return table.concat(api.nvim_buf_get_lines(p.buf, 0, -1, false), "\n")
end

--- Sends the window's text to the task; on an error the window and its text stay.
local function send(p)
  local text = text_of(p)
  if vim.trim(text) == "" then
    return notify("claude-tasks: the message is empty", levels.WARN)
  end
  local _, err = require("claude-tasks").resume(p.task, text, { open = false })
  if err then
    return notify(require("claude-tasks.backend").clean_error(err), levels.ERROR)
  end
  local k = key_of(p.task)
  sent[k] = sent[k] or {}
  table.insert(sent[k], text)
  vim.cmd.stopinsert()
  close(p)
end

--- Shows the history's entry `at` (0: the draft being written).
local function show_history(p, at)
  if at == p.at then
    return
  end
  if p.at == 0 then
    p.draft = api.nvim_buf_get_lines(p.buf, 0, -1, false)
  end
  p.at = at
  local lines = at == 0 and p.draft
    or vim.split(p.history[#p.history - at + 1], "\n", { plain = true })
  api.nvim_buf_set_lines(p.buf, 0, -1, false, lines)
  local last = #lines
  api.nvim_win_set_cursor(p.win, { last, #lines[last] })
  fit(p)
end

local function walk(p, step)
  p.history = p.history or M.history(p.task)
  local at = math.max(0, math.min(#p.history, p.at + step))
  if at == p.at then
    return
  end
  show_history(p, at)
end

--- In insert mode <Up> walks the history on the first line only (and <Down> on the last), so
--- that moving within a message still works.
local function walk_or_move(p, step, key)
  return function()
    local row = api.nvim_win_get_cursor(p.win)[1]
    local edge = step > 0 and row == 1 or step < 0 and row == api.nvim_buf_line_count(p.buf)
    if edge then
      walk(p, step)
    else
      api.nvim_feedkeys(api.nvim_replace_termcodes(key, true, false, true), "n", false)
    end
  end
end

local function map(p, modes, keys, fn, desc)
  for _, lhs in ipairs(require("claude-tasks.config").keys(keys)) do
    vim.keymap.set(modes, lhs, fn, { buffer = p.buf, nowait = true, silent = true, desc = desc })
  end
end

--- Opens (or focuses) the prompt window under output buffer `out`'s window. `how`: the key
--- that opened it ("i", "a", "o", "<CR>", "r"): the window starts in insert mode.
function M.open(out, how)
  local info = require("claude-tasks.buffer").info[out]
  if not info then
    return notify("claude-tasks: not a task's output buffer", levels.ERROR)
  end
  local existing = open[out]
  if existing and api.nvim_win_is_valid(existing.win) then
    api.nvim_set_current_win(existing.win)
    vim.cmd.startinsert({ bang = true })
    return existing.buf
  end
  local task = { id = info.id, cwd = info.cwd }
  local from = api.nvim_get_current_win()
  local owner = api.nvim_win_get_buf(from) == out and from or vim.fn.bufwinid(out)
  local buf = api.nvim_create_buf(false, true)
  -- Short, as the output's ('claude #3 fix the test'), and no claude-tasks:// name (those are
  -- outputs and reviews, read again by :edit).
  pcall(api.nvim_buf_set_name, buf, string.format("claude #%d prompt", info.id))
  local bo = vim.bo[buf]
  bo.buftype = "nofile"
  bo.bufhidden = "wipe"
  bo.swapfile = false
  bo.filetype = "markdown"
  local config = { split = "below", height = 1 }
  if owner ~= -1 then
    config.win = owner
  end
  local win = api.nvim_open_win(buf, true, config)
  local wo = vim.wo[win]
  wo.winfixheight = true
  wo.wrap = true
  wo.linebreak = true
  wo.number = false
  wo.relativenumber = false
  wo.signcolumn = "no"
  wo.foldcolumn = "0"
  wo.spell = false
  local p = {
    buf = buf,
    win = win,
    out = out,
    from = owner ~= -1 and owner or from,
    task = task,
    at = 0,
    draft = { "" },
  }
  open[out] = p
  vim.b[buf].claude_task_prompt = task
  local keys = opts().keys
  map(p, "n", keys.send, function()
    send(p)
  end, "claude-tasks: send to the task")
  map(p, { "n", "i" }, keys.send_insert, function()
    send(p)
  end, "claude-tasks: send to the task")
  map(p, "n", keys.close, function()
    close(p)
  end, "claude-tasks: close without sending")
  map(p, "n", keys.prev, function()
    walk(p, 1)
  end, "claude-tasks: the task's earlier prompt")
  map(p, "n", keys.next, function()
    walk(p, -1)
  end, "claude-tasks: the task's later prompt")
  for _, lhs in ipairs(require("claude-tasks.config").keys(keys.prev)) do
    vim.keymap.set("i", lhs, walk_or_move(p, 1, lhs), { buffer = buf, silent = true })
  end
  for _, lhs in ipairs(require("claude-tasks.config").keys(keys.next)) do
    vim.keymap.set("i", lhs, walk_or_move(p, -1, lhs), { buffer = buf, silent = true })
  end
  local group = api.nvim_create_augroup("claude-tasks.prompt." .. buf, { clear = true })
  api.nvim_create_autocmd({ "TextChanged", "TextChangedI", "WinResized" }, {
    group = group,
    buffer = buf,
    callback = function()
      fit(p)
    end,
  })
  api.nvim_create_autocmd({ "BufWipeout" }, {
    group = group,
    buffer = buf,
    callback = function()
      open[out] = nil
      pcall(api.nvim_del_augroup_by_id, group)
    end,
  })
  set_bar(p)
  fit(p)
  vim.cmd.startinsert()
  return buf
end

--- The prompt window of output buffer `out`, if open: { buf, win }.
function M.find(out)
  local p = open[out]
  if p and api.nvim_win_is_valid(p.win) then
    return { buf = p.buf, win = p.win }
  end
end

return M
