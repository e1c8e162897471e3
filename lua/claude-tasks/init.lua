-- claude-tasks.nvim: run Claude Code (`claude -p`) as background tasks.
--
-- The Lua API. Everything works without setup(). Functions that talk to the backend never
-- raise: on failure they return nil and a one-line error message ("claude-tasks: ...").
-- Only setup() raises (on a wrong option).

local config = require("claude-tasks.config")
local state = require("claude-tasks.state")

local M = {}

M.version = require("claude-tasks.backend").VERSION

--- The statusline string: "" when no task of this editor runs, else e.g. "✻ 2 ? 1 ⏳ 1"
--- (running, waiting for an answer, queued).
--- Reads a cache kept up to date by backend events; never calls the backend.
M.statusline = state.statusline

--- pcall of a backend request; on failure: false and a clean one-line message.
local function request(method, args)
  local backend = require("claude-tasks.backend")
  local ok, res = pcall(backend.request, method, args)
  if not ok then
    return false, backend.clean_error(res)
  end
  return true, res
end

local function normalize_dir(dir)
  local path = vim.fn.fnamemodify(vim.fn.expand(dir), ":p")
  if #path > 1 then
    path = path:gsub("/+$", "")
  end
  return path
end

--- The task's name: from the record, else from the cache.
local function name_of(task)
  local name = task.name
  if name == nil or name == vim.NIL then
    local cached = state.get(task.cwd, task.id)
    name = cached and cached.name
  end
  return type(name) == "string" and name or ""
end

local function title(task)
  return vim.trim(string.format("claude-tasks #%s %s", tostring(task.id), name_of(task)))
end

--- buffer.open's options for `task`: shown in the output window used last (option
--- reuse_window), and entered when `focus`.
local function view_opts(task, focus)
  return {
    name = name_of(task),
    title = title(task),
    focus = focus,
    reuse = config.get().reuse_window,
  }
end

--- Shows the output of a task that was just started or followed up, per `mode`, entering its
--- window only with the option `focus`; a failure is reported but does not fail the caller.
local function show(task, mode)
  if not mode then
    return
  end
  local ok, err = pcall(
    require("claude-tasks.buffer").open,
    task.id,
    task.cwd,
    mode,
    view_opts(task, config.get().focus)
  )
  if not ok then
    require("claude-tasks.notify").notify(
      require("claude-tasks.backend").clean_error(err),
      vim.log.levels.ERROR
    )
  end
end

--- Sets the options (over the defaults). Raises an error naming the key on a wrong option.
function M.setup(opts)
  config.setup(opts)
  require("claude-tasks.helptags").ensure()
  -- Tasks an earlier editor left running show in the statusline from the first redraw.
  require("claude-tasks.detached").load()
  state.recompute()
  local backend = package.loaded["claude-tasks.backend"]
  if backend and backend.running() then
    local ok, err = pcall(backend.configure)
    if not ok then
      require("claude-tasks.notify").notify(backend.clean_error(err), vim.log.levels.ERROR)
    end
  end
end

--- Starts a task; returns its id (ids are per project directory), or nil and an error.
--- opts: name, cwd (default: the current directory), model, permission_mode, allowed_tools,
--- permissions ("ask" or "deny"), args, cmd, isolation ("none" or "worktree"), branch_prefix
--- (default: the options), open (default: option `open`; false: do not show), context (where
--- the prompt's context came from, e.g. { "src/sample.lua:2-4" }, for the header).
function M.start(prompt, opts)
  if type(prompt) ~= "string" or vim.trim(prompt) == "" then
    return nil, "claude-tasks: the prompt is empty"
  end
  local err, warnings = config.check_task_opts(opts)
  if err then
    return nil, err
  end
  config.warn(warnings)
  opts = opts or {}
  local o = config.get()
  local function pick(key)
    if opts[key] ~= nil then
      return opts[key]
    end
    return o[key]
  end
  local cwd = opts.cwd and normalize_dir(opts.cwd) or vim.fn.getcwd()
  if cwd == "" then
    -- Hardening fix: after the current directory was deleted, getcwd() returns "" and the
    -- backend's answer ("start: 'cwd' is empty") did not say what was wrong. Name the directory
    -- (Linux: /proc/self/cwd still links to it, marked " (deleted)").
    local link = (vim.uv or vim.loop).fs_readlink("/proc/self/cwd")
    local dir = link and (link:gsub(" %(deleted%)$", "")) or "?"
    return nil,
      string.format(
        "claude-tasks: the current directory '%s' no longer exists; :cd to an existing one",
        dir
      )
  end
  local ok, task = request("start", {
    prompt = prompt,
    cwd = cwd,
    name = opts.name,
    context = opts.context,
    model = pick("model"),
    permission_mode = pick("permission_mode"),
    allowed_tools = pick("allowed_tools"),
    permissions = pick("permissions"),
    args = pick("args"),
    cmd = pick("cmd"),
    isolation = pick("isolation"),
    branch_prefix = pick("branch_prefix"),
  })
  if not ok then
    return nil, task
  end
  show(task, pick("open"))
  return task.id
end

--- Cancels a task (`ref`: an id, a task record, or a unique part of a name). Returns the
--- task record, or nil and an error.
function M.cancel(ref)
  local t, err = require("claude-tasks.resolve").one(ref)
  if not t then
    return nil, err
  end
  local ok, task = request("cancel", { id = t.id, cwd = t.cwd })
  if not ok then
    return nil, task
  end
  return task
end

--- Opens a task's output (opts.open: how; default: option `open`, or "split" when it is
--- false) and goes to it (opts.focus = false: stays). Returns the buffer number, or nil and an
--- error.
function M.open(ref, opts)
  local t, err = require("claude-tasks.resolve").one(ref)
  if not t then
    return nil, err
  end
  opts = opts or {}
  local mode = opts.open
  if mode == nil then
    mode = config.get().open or "split"
  end
  if name_of(t) == "" and not require("claude-tasks.buffer").find(t.id, t.cwd) then
    -- A new buffer is named after its task: an id alone does not say the name.
    local gok, full = request("get", { id = t.id, cwd = t.cwd })
    if not gok then
      return nil, full
    end
    t = full
  end
  local ok, buf =
    pcall(require("claude-tasks.buffer").open, t.id, t.cwd, mode, view_opts(t, opts.focus ~= false))
  if not ok then
    return nil, require("claude-tasks.backend").clean_error(buf)
  end
  return buf
end

--- A follow-up in the task's Claude session: said at once to a running task (its Claude takes
--- it into the running turn, or answers it right after), written to its live Claude when one
--- idles (kept `keep_alive_ms`), else a new Claude resuming the session. Shows the output per
--- opts.open (default: option `open`). Returns the task record, or nil and an error.
function M.resume(ref, prompt, opts)
  if type(prompt) ~= "string" or vim.trim(prompt) == "" then
    return nil, "claude-tasks: the follow-up prompt is empty"
  end
  local t, err = require("claude-tasks.resolve").one(ref)
  if not t then
    return nil, err
  end
  if require("claude-tasks.tui").is_open(t) then
    return nil,
      string.format(
        "claude-tasks: Claude's TUI is open on #%s's session; close it first (both would write it)",
        tostring(t.id)
      )
  end
  local ok, task = request("resume", { id = t.id, prompt = prompt, cwd = t.cwd })
  if not ok then
    return nil, task
  end
  local mode = (opts or {}).open
  if mode == nil then
    mode = config.get().open
  end
  show(task, mode)
  return task
end

--- Says `text` to a task: resume() without showing its output. Returns the task record, or
--- nil and an error.
function M.say(ref, text)
  return M.resume(ref, text, { open = false })
end

--- Stops the task's current turn (its tools are stopped, its requests withdrawn); the task
--- stays, for the next message. Returns the task record, or nil and an error.
function M.interrupt(ref)
  local t, err = require("claude-tasks.resolve").one(ref)
  if not t then
    return nil, err
  end
  local ok, task = request("interrupt", { id = t.id, cwd = t.cwd })
  if not ok then
    return nil, task
  end
  return task
end

--- Opens Claude's own TUI on the task's session in a terminal split, in the task's directory
--- (a worktree task's worktree). Refused while the task runs; its idle Claude is closed first.
--- Returns the terminal buffer, or nil and an error.
function M.tui(ref)
  return require("claude-tasks.tui").open(ref)
end

--- The tasks of the current directory (opts.cwd: another one; opts.all: every project),
--- newest first. Returns the list, or nil and an error.
function M.list(opts)
  opts = opts or {}
  local ok, tasks = request("list", {
    cwd = opts.cwd and normalize_dir(opts.cwd) or vim.fn.getcwd(),
    all = opts.all and true or nil,
  })
  if not ok then
    return nil, tasks
  end
  state.refresh(tasks)
  return tasks
end

--- A task's record, or nil and an error.
function M.get(ref)
  local t, err = require("claude-tasks.resolve").one(ref)
  if not t then
    return nil, err
  end
  local ok, task = request("get", { id = t.id, cwd = t.cwd })
  if not ok then
    return nil, task
  end
  state.refresh({ task })
  return task
end

--- Deletes a finished task (its record, transcript and buffer; a worktree task's worktree and
--- branch too). A worktree with changes that were not applied is refused unless opts.force.
--- Returns true, or nil and an error.
function M.dispose(ref, opts)
  local t, err = require("claude-tasks.resolve").one(ref)
  if not t then
    return nil, err
  end
  local force = (opts or {}).force and true or nil
  local ok, res = request("dispose", { id = t.id, cwd = t.cwd, force = force })
  if not ok then
    return nil, res
  end
  local buffer = package.loaded["claude-tasks.buffer"]
  if buffer then
    buffer.forget(t.id, t.cwd)
  end
  state.remove(t.cwd, t.id)
  return true
end

--- Worktree tasks (see claude-tasks.worktree): `fn(task, ...)` on the task `ref` designates.
local function on_worktree(fn)
  return function(ref, ...)
    local t, err = require("claude-tasks.resolve").one(ref)
    if not t then
      return nil, err
    end
    return require("claude-tasks.worktree")[fn](t, ...)
  end
end

--- Brings a worktree task's changes into the project's files by three-way merge (conflicts:
--- markers and the quickfix list). opts.mode: "files" or "commit" (default: option `apply`),
--- opts.message. Returns the report, or nil and an error.
M.apply = on_worktree("apply")

--- Removes a worktree task's worktree and branch, without asking. Returns the task record, or
--- nil and an error.
M.discard = on_worktree("discard")

--- Allows a waiting request of a task. opts: request_id (default: the oldest), input (the
--- edited input), always (true: the proposed rule, or a rule string), scope ("task" or
--- "project"). Returns the task record, or nil and an error.
function M.allow(ref, opts)
  return require("claude-tasks.permissions").allow(ref, opts)
end

--- Denies a waiting request. opts: request_id, message (told to Claude), interrupt (also stop
--- the turn). Returns the task record, or nil and an error.
function M.deny(ref, opts)
  return require("claude-tasks.permissions").deny(ref, opts)
end

--- Answers a question (AskUserQuestion): `answers` maps each question to the chosen label (or
--- a list of labels, or free text). opts: request_id. Returns the task record, or nil and an
--- error.
function M.answer(ref, answers, opts)
  return require("claude-tasks.permissions").answer(ref, answers, opts)
end

--- The "always" rules of the current directory (opts.cwd: another; opts.id: and a task's
--- own): { { rule, scope, id? }, ... }, or nil and an error.
function M.rules(opts)
  return require("claude-tasks.permissions").rules(opts)
end

--- What a task's run changed (opts.run: which run, default the last): sets the quickfix list,
--- one entry per hunk (opts.open = false: without opening it). Returns the changes ({ files,
--- totals, method, root, patch, ... }), or nil and an error.
function M.changes(ref, opts)
  local t, err = require("claude-tasks.resolve").one(ref)
  if not t then
    return nil, err
  end
  return require("claude-tasks.changes").quickfix(t, opts)
end

--- The review: a worktree task's changes against its base (a diff buffer and the quickfix
--- list), or what a task's run changed (opts.run, default the last): opts.path (a changed
--- file) side by side in diff mode, else the whole diff in `claude-tasks://<id>/diff`.
--- opts.open: how to show it. Returns the buffer, or nil and an error.
function M.diff(ref, opts)
  local t, err = require("claude-tasks.resolve").one(ref)
  if not t then
    return nil, err
  end
  opts = opts or {}
  return require("claude-tasks.changes").review_task(
    t,
    vim.tbl_extend("force", opts, { whole = opts.path == nil })
  )
end

--- Reverts a task's run (opts.run; three-way: later edits are kept, conflicts get markers and
--- the quickfix list), after a confirmation unless opts.confirm == false; opts.on_done(result).
--- Returns true, or nil and an error.
function M.revert(ref, opts)
  local t, err = require("claude-tasks.resolve").one(ref)
  if not t then
    return nil, err
  end
  require("claude-tasks.changes").revert(t, opts)
  return true
end

--- The picker (vim.ui.select) of the tasks, newest first; choosing one offers actions.
--- opts: { running = true } only running and queued tasks; { tasks = {...} } these tasks.
function M.pick(opts)
  require("claude-tasks.picker").pick(opts)
end

return M
