-- Output buffers `claude-tasks://{id}`: created on open, attached to the backend, detached when
-- unloaded or wiped. The backend writes them through `claude-tasks.output` (doc/protocol.md).

local M = {}

local api = vim.api

--- Task buffers: bufnr -> { id, cwd, attached }.
M.info = {}

local function task_of(buf)
  local info = M.info[buf]
  if not info then
    return nil
  end
  return { id = info.id, cwd = info.cwd }
end

local function detach(buf)
  local info = M.info[buf]
  if not info or not info.attached then
    return
  end
  info.attached = false
  local backend = package.loaded["claude-tasks.backend"]
  if not backend or not backend.running() then
    return
  end
  local args = { id = info.id, buf = buf, cwd = info.cwd }
  -- Not from inside the autocmd: the backend may be writing to this buffer right now.
  vim.schedule(function()
    local now = M.info[buf]
    if now and now.attached then
      return -- attached again meanwhile (reloaded): that view must stay
    end
    if backend.running() then
      pcall(backend.request, "detach", args)
    end
  end)
end

--- Asks the backend to render the task into `buf` (it replays the transcript, then follows).
local function attach(buf)
  local info = M.info[buf]
  -- Marked first: starting a backend inside this request re-attaches the buffers that are not
  -- attached (reattach_all), and this one must not be attached twice.
  info.attached = true
  local ok, err = pcall(
    require("claude-tasks.backend").request,
    "attach",
    { id = info.id, buf = buf, cwd = info.cwd }
  )
  if not ok then
    info.attached = false
    error(err, 0)
  end
end

local function escape_path(dir)
  return (dir:gsub("[,%s\\]", "\\%0"))
end

--- `gf`/`gF` in a float: open the file in the previous window, not in the float.
local function goto_file(with_line)
  return function()
    local win = api.nvim_get_current_win()
    if api.nvim_win_get_config(win).relative == "" then
      vim.cmd("normal! " .. vim.v.count1 .. (with_line and "gF" or "gf"))
      return
    end
    local cfile = vim.fn.expand("<cfile>")
    local line
    if with_line then
      line = tonumber(vim.fn.expand("<cWORD>"):match(":(%d+)"))
    end
    local found = vim.fn.findfile(cfile, vim.bo.path)
    if found == "" and vim.fn.isdirectory(cfile) == 0 then
      vim.notify("claude-tasks: can't find file " .. cfile, vim.log.levels.ERROR)
      return
    end
    found = vim.fn.fnamemodify(found ~= "" and found or cfile, ":p")
    require("claude-tasks.window").close(win)
    vim.cmd.edit(vim.fn.fnameescape(found))
    if line then
      pcall(api.nvim_win_set_cursor, 0, { line, 0 })
    end
  end
end

local function map(buf, lhs, rhs, desc)
  vim.keymap.set("n", lhs, rhs, { buffer = buf, nowait = true, silent = true, desc = desc })
end

--- Options, keys and autocmds of a task buffer (idempotent).
local function prepare(buf, id, cwd)
  local info = M.info[buf] or { attached = false }
  info.id, info.cwd = id, cwd
  M.info[buf] = info
  local bo = vim.bo[buf]
  bo.buftype = "nofile"
  bo.bufhidden = "hide"
  bo.swapfile = false
  bo.buflisted = false
  bo.undolevels = -1
  bo.modifiable = false
  bo.path = escape_path(cwd)
  vim.b[buf].claude_task = { id = id, cwd = cwd }

  map(buf, "q", function()
    require("claude-tasks.window").close(0)
  end, "claude-tasks: close the window (the task goes on)")
  map(buf, "<C-c>", function()
    require("claude-tasks.commands").cancel_task(task_of(buf))
  end, "claude-tasks: cancel the task")
  map(buf, "r", function()
    require("claude-tasks.commands").follow_up(task_of(buf))
  end, "claude-tasks: follow-up prompt")
  for lhs, action in pairs({ a = "allow", A = "always", d = "deny", e = "edit" }) do
    map(buf, lhs, function()
      require("claude-tasks.permissions").key(buf, action)
    end, "claude-tasks: " .. action .. " the request under the cursor (or the oldest)")
  end
  map(buf, "gf", goto_file(false), "claude-tasks: go to file (relative to the task's directory)")
  map(buf, "gF", goto_file(true), "claude-tasks: go to file and line")

  local group = api.nvim_create_augroup("claude-tasks.buffer." .. buf, { clear = true })
  api.nvim_create_autocmd("BufUnload", {
    group = group,
    buffer = buf,
    callback = function()
      detach(buf)
    end,
  })
  api.nvim_create_autocmd("BufWipeout", {
    group = group,
    buffer = buf,
    callback = function()
      detach(buf)
      M.info[buf] = nil
      require("claude-tasks.highlights").detach(buf)
      pcall(api.nvim_del_augroup_by_id, group)
    end,
  })

  require("claude-tasks.highlights").attach(buf)
  local ft = require("claude-tasks.config").get().filetype
  if bo.filetype ~= ft then
    -- Set when the buffer is first shown: one that no window shows (`open = false`, a task
    -- watched from the statusline) needs no highlighting yet, and another filetype's scripts
    -- would be paid for nothing (markdown's syntax script: ~15 ms).
    if vim.fn.bufwinid(buf) ~= -1 then
      bo.filetype = ft
    else
      api.nvim_create_autocmd("BufWinEnter", {
        group = group,
        buffer = buf,
        once = true,
        -- Nested: the FileType and Syntax autocommands must run for it.
        nested = true,
        callback = function()
          if vim.bo[buf].filetype ~= ft then
            vim.bo[buf].filetype = ft
          end
        end,
      })
    end
  end
end

local function name_taken(name)
  for _, b in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_get_name(b) == name then
      return b
    end
  end
end

--- `claude-tasks://3`, or `claude-tasks://3 (~/other)` when a task of another project took it.
local function name_for(id, cwd)
  local name = "claude-tasks://" .. tostring(id)
  local other = name_taken(name)
  if other and not (M.info[other] and M.info[other].cwd == cwd) then
    return name .. " (" .. vim.fn.fnamemodify(cwd, ":~") .. ")"
  end
  return name
end

--- The buffer of task (`id`, `cwd`), or nil.
function M.find(id, cwd)
  for buf, info in pairs(M.info) do
    if info.id == id and info.cwd == cwd and api.nvim_buf_is_valid(buf) then
      return buf
    end
  end
end

--- The task buffer for (`id`, `cwd`), created and attached if needed. Raises on backend errors
--- (the new buffer is then wiped).
function M.ensure(id, cwd)
  local buf = M.find(id, cwd)
  if buf and api.nvim_buf_is_loaded(buf) then
    if not M.info[buf].attached then
      attach(buf)
    end
    return buf
  end
  if not buf then
    buf = api.nvim_create_buf(false, true)
    local ok, err = pcall(api.nvim_buf_set_name, buf, name_for(id, cwd))
    if not ok then
      api.nvim_buf_delete(buf, { force = true })
      error(err, 0)
    end
  else
    vim.fn.bufload(buf)
    if M.info[buf] and M.info[buf].attached then
      return buf
    end
  end
  prepare(buf, id, cwd)
  local ok, err = pcall(attach, buf)
  if not ok then
    pcall(api.nvim_buf_delete, buf, { force = true })
    error(err, 0)
  end
  return buf
end

--- Opens the task's buffer per `mode` (or only creates and attaches it when `mode` is false).
--- Returns the buffer and the window (nil when not shown).
function M.open(id, cwd, mode, title)
  local buf = M.ensure(id, cwd)
  if not mode then
    return buf
  end
  local win = require("claude-tasks.window").show(buf, mode, title)
  return buf, win
end

--- BufReadCmd claude-tasks://*: `:edit claude-tasks://3` (or reloading a task buffer) shows
--- the task of the current project (or the buffer's own project).
function M.read_cmd(ev)
  local buf = ev.buf
  if tostring(ev.match):match("^claude%-tasks://%d+/diff") then
    -- A worktree's review (claude-tasks.worktree), fetched again.
    return require("claude-tasks.worktree").reload(buf)
  end
  local id = tonumber(tostring(ev.match):match("^claude%-tasks://(%d+)"))
  if not id then
    vim.notify("claude-tasks: not a task buffer name: " .. tostring(ev.match), vim.log.levels.ERROR)
    return
  end
  local info = M.info[buf]
  local cwd = info and info.cwd or vim.fn.getcwd()
  -- Attaching an attached buffer again replaces its view: the backend renders it anew from
  -- line 0.
  prepare(buf, id, cwd)
  local ok, err = pcall(attach, buf)
  if not ok then
    vim.notify(require("claude-tasks.backend").clean_error(err), vim.log.levels.ERROR)
  end
end

--- The backend went away: nothing is attached any more.
function M.backend_gone()
  for _, info in pairs(M.info) do
    info.attached = false
  end
end

--- Whether a task buffer is loaded (shown or hidden): a crashed backend is then restarted at
--- once (hardening fix, see backend.lua `on_exit`).
function M.has_loaded()
  for buf in pairs(M.info) do
    if api.nvim_buf_is_valid(buf) and api.nvim_buf_is_loaded(buf) then
      return true
    end
  end
  return false
end

--- A new backend started: attach the loaded task buffers again (it replays them in full).
function M.reattach_all()
  for buf, info in pairs(M.info) do
    if api.nvim_buf_is_valid(buf) and api.nvim_buf_is_loaded(buf) and not info.attached then
      pcall(attach, buf)
    end
  end
end

--- Forgets and wipes the buffer of a disposed task.
function M.forget(id, cwd)
  local buf = M.find(id, cwd)
  if buf then
    M.info[buf].attached = false
    pcall(api.nvim_buf_delete, buf, { force = true })
  end
end

return M
