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

--- The task of `buf` as the cache knows it (status and all), else { id, cwd }.
local function record_of(buf)
  local t = task_of(buf)
  if not t then
    return nil
  end
  return require("claude-tasks.state").get(t.cwd, t.id) or t
end

--- The file on the cursor's line (gf, gF, <CR>); `fallback`: the keys' own meaning when the
--- line names no file.
local function goto_file(with_line, fallback)
  return function()
    local buf = api.nvim_get_current_buf()
    if require("claude-tasks.jump").go(buf, with_line) then
      return
    end
    if fallback then
      vim.cmd("normal! " .. vim.v.count1 .. fallback)
    else
      require("claude-tasks.notify").notify(
        "claude-tasks: no file on this line (relative to "
          .. vim.fn.fnamemodify(M.info[buf] and M.info[buf].cwd or vim.fn.getcwd(), ":~")
          .. ")",
        vim.log.levels.WARN
      )
    end
  end
end

--- The keys of an output buffer: { lhs, function(buf), description }. A feature adds or
--- replaces rows before the buffer is made (`prepare` maps them).
M.keys = {
  {
    "q",
    function()
      require("claude-tasks.window").close(0)
    end,
    "close the window (the task goes on)",
  },
  -- `<C-c>` interrupts the task's turn (option prompt.keys.interrupt, mapped in `prepare`).
  {
    "c",
    function(buf)
      local t = record_of(buf)
      if t and not t.status then
        -- Not in the cache (another editor's task): ask the backend.
        t = require("claude-tasks").get(t) or t
      end
      require("claude-tasks.actions").run("cancel", t)
    end,
    "cancel the task (asks first while it runs)",
  },
  {
    "r",
    function(buf)
      require("claude-tasks.prompt").open(buf, "r")
    end,
    "write to the task (the prompt window)",
  },
  { "gf", goto_file(false), "go to the file on this line (relative to the task's directory)" },
  { "gF", goto_file(true), "go to the file on this line, at its line" },
  { "<CR>", goto_file(true, "\r"), "go to the file on this line, at its line" },
  -- The permission request under the cursor (or the oldest): permissions.lua.
  {
    "a",
    function(buf)
      require("claude-tasks.permissions").key(buf, "allow")
    end,
    "allow the request under the cursor (or the oldest)",
  },
  {
    "A",
    function(buf)
      require("claude-tasks.permissions").key(buf, "always")
    end,
    "always allow the request under the cursor (or the oldest)",
  },
  {
    "d",
    function(buf)
      require("claude-tasks.permissions").key(buf, "deny")
    end,
    "deny the request under the cursor (or the oldest)",
  },
  {
    "e",
    function(buf)
      require("claude-tasks.permissions").key(buf, "edit")
    end,
    "edit the request under the cursor (or the oldest)",
  },
  {
    "<Tab>",
    function()
      pcall(vim.cmd, "normal! za")
    end,
    "open or close the fold under the cursor (a tool's long result)",
  },
}

--- A key of the prompt line pressed in output buffer `buf`: on the last line (`i` and `o` on
--- any line) the prompt window; elsewhere what the key does otherwise, `fallback(buf)` (its row
--- in M.keys: `<CR>` goes to the file on the line, `a` allows a request) or its own meaning.
--- `a` allows a waiting request on the last line too.
local function prompt_key(buf, lhs, fallback)
  local last = api.nvim_win_get_cursor(0)[1] >= api.nvim_buf_line_count(buf)
  local waiting = false
  local info = M.info[buf]
  if lhs == "a" and info then
    local t = require("claude-tasks.state").get(info.cwd, info.id)
    waiting = t ~= nil and require("claude-tasks.permissions").waiting(t)
  end
  if not waiting and (last or lhs == "i" or lhs == "o") then
    return require("claude-tasks.prompt").open(buf, lhs)
  end
  if fallback then
    return fallback(buf)
  end
  api.nvim_feedkeys(api.nvim_replace_termcodes(lhs, true, false, true), "n", false)
end

--- The keys of output buffers as the options make them: M.keys, the prompt line's keys
--- (option prompt.keys.open) wrapped around the rows of the same keys, and the interrupt key.
function M.key_rows()
  local config = require("claude-tasks.config")
  local keys = config.get().prompt.keys
  local rows, at = {}, {}
  for _, row in ipairs(M.keys) do
    rows[#rows + 1] = row
    at[row[1]] = #rows
  end
  local function put(row)
    if at[row[1]] then
      rows[at[row[1]]] = row
    else
      rows[#rows + 1] = row
      at[row[1]] = #rows
    end
  end
  for _, lhs in ipairs(config.keys(keys.open)) do
    local under = at[lhs] and rows[at[lhs]]
    put({
      lhs,
      function(buf)
        prompt_key(buf, lhs, under and under[2])
      end,
      "on the last line, write to the task (the prompt window)"
        .. (under and ("; elsewhere: " .. under[3]) or ""),
    })
  end
  for _, lhs in ipairs(config.keys(keys.interrupt)) do
    put({
      lhs,
      function(buf)
        require("claude-tasks.conversation").interrupt_task(task_of(buf))
      end,
      "interrupt the task's turn (it waits for your next message; nothing is asked)",
    })
  end
  return rows
end

local function map(buf, lhs, rhs, desc)
  vim.keymap.set("n", lhs, rhs, { buffer = buf, nowait = true, silent = true, desc = desc })
end

local reload

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

  for _, key in ipairs(M.key_rows()) do
    local fn = key[2]
    map(buf, key[1], function()
      fn(buf)
    end, "claude-tasks: " .. key[3])
  end

  local group = api.nvim_create_augroup("claude-tasks.buffer." .. buf, { clear = true })
  api.nvim_create_autocmd("BufReadCmd", {
    group = group,
    buffer = buf,
    callback = function()
      reload(buf)
    end,
  })
  api.nvim_create_autocmd("BufWinEnter", {
    group = group,
    buffer = buf,
    callback = function()
      require("claude-tasks.folds").apply_all(buf)
    end,
  })
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
      require("claude-tasks.folds").forget(buf)
      pcall(api.nvim_del_augroup_by_id, group)
    end,
  })

  require("claude-tasks.highlights").attach(buf)
  require("claude-tasks.activity").setup()
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

--- The buffer's name, short for tab labels and the buffer list: `claude #3 fix the test`, with
--- `(~/other)` when a task of another project has that name. No `/` (Neovim shortens the
--- parts before one in tab labels: `c//3`).
function M.name_for(id, cwd, name)
  local title = type(name) == "string" and vim.trim(name:gsub("[%c/\\]", " "):gsub("%s+", " "))
    or ""
  if vim.fn.strchars(title) > 40 then
    title = vim.fn.strcharpart(title, 0, 39) .. "…"
  end
  local short = vim.trim(string.format("claude #%s %s", tostring(id), title))
  local other = name_taken(short) or name_taken(vim.fn.fnamemodify(short, ":p"))
  if other and not (M.info[other] and M.info[other].cwd == cwd and M.info[other].id == id) then
    return short .. " (" .. vim.fn.fnamemodify(cwd, ":~"):gsub("/", "∕") .. ")"
  end
  return short
end

--- The buffer of task (`id`, `cwd`), or nil.
function M.find(id, cwd)
  for buf, info in pairs(M.info) do
    if info.id == id and info.cwd == cwd and api.nvim_buf_is_valid(buf) then
      return buf
    end
  end
end

--- The task buffer for (`id`, `cwd`), created and attached if needed; `name`: the task's, for
--- the buffer's name. Raises on backend errors (the new buffer is then wiped).
function M.ensure(id, cwd, name)
  local buf = M.find(id, cwd)
  if buf and api.nvim_buf_is_loaded(buf) then
    if not M.info[buf].attached then
      attach(buf)
    end
    return buf
  end
  if not buf then
    buf = api.nvim_create_buf(false, true)
    local ok, err = pcall(api.nvim_buf_set_name, buf, M.name_for(id, cwd, name))
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
--- opts: name (the task's), title (of a float), focus, reuse (see window.show). Returns the
--- buffer and the window (nil when not shown).
function M.open(id, cwd, mode, opts)
  opts = opts or {}
  local buf = M.ensure(id, cwd, opts.name)
  if not mode then
    return buf
  end
  local win = require("claude-tasks.window").show(buf, mode, opts.title, opts)
  return buf, win
end

local function wipe_soon(buf)
  vim.schedule(function()
    if api.nvim_buf_is_valid(buf) then
      pcall(api.nvim_buf_delete, buf, { force = true })
    end
  end)
end

--- BufReadCmd claude-tasks://*: `:edit claude-tasks://3` shows task 3 of the current project
--- in its buffer (`claude #3 ...`); an unknown id is said and the buffer wiped.
function M.read_cmd(ev)
  local buf = ev.buf
  if tostring(ev.match):match("^claude%-tasks://%d+/") then
    -- A review's buffer (review.lua): a diff is fetched again, a file's old side stays.
    return require("claude-tasks.review").reload(buf)
  end
  local notify = require("claude-tasks.notify").notify
  local id = tonumber(tostring(ev.match):match("^claude%-tasks://#?(%d+)$"))
  if not id then
    notify(
      "claude-tasks: not a task: " .. tostring(ev.match) .. " (claude-tasks://{id})",
      vim.log.levels.ERROR
    )
    return wipe_soon(buf)
  end
  local cwd = vim.fn.getcwd()
  local ok, task = pcall(require("claude-tasks.backend").request, "get", { id = id, cwd = cwd })
  if not ok then
    local msg = require("claude-tasks.backend").clean_error(task)
    if msg:find("no task", 1, true) then
      msg = string.format("claude-tasks: no task %d in %s", id, vim.fn.fnamemodify(cwd, ":~"))
    end
    notify(msg, vim.log.levels.ERROR)
    return wipe_soon(buf)
  end
  local existing = M.find(id, cwd)
  if existing and existing ~= buf then
    -- The task has its buffer already: show that one instead.
    vim.schedule(function()
      for _, win in ipairs(vim.fn.win_findbuf(buf)) do
        pcall(api.nvim_win_set_buf, win, existing)
      end
      pcall(api.nvim_buf_delete, buf, { force = true })
    end)
    return
  end
  -- This buffer becomes the task's, under the task's short name. Renaming leaves the old name
  -- behind as an unlisted buffer and the alternate file: wipe it, keep the user's alternate.
  local alt = vim.fn.bufnr("#")
  vim.bo[buf].buftype = "nofile"
  pcall(api.nvim_buf_set_name, buf, M.name_for(id, cwd, task.name))
  local left = vim.fn.bufnr("^" .. vim.fn.escape(tostring(ev.match), "\\.*~[]") .. "$")
  if left > 0 and left ~= buf then
    pcall(api.nvim_buf_delete, left, { force = true })
  end
  if alt > 0 and alt ~= buf and api.nvim_buf_is_valid(alt) then
    pcall(vim.fn.setreg, "#", alt)
  end
  prepare(buf, id, cwd)
  local aok, err = pcall(attach, buf)
  if not aok then
    notify(require("claude-tasks.backend").clean_error(err), vim.log.levels.ERROR)
  end
end

--- `:edit` in a task buffer: render it anew (attaching an attached buffer again replaces its
--- view; the backend renders it from line 0).
reload = function(buf)
  local info = M.info[buf]
  if not info then
    return
  end
  prepare(buf, info.id, info.cwd)
  local ok, err = pcall(attach, buf)
  if not ok then
    require("claude-tasks.notify").notify(
      require("claude-tasks.backend").clean_error(err),
      vim.log.levels.ERROR
    )
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
