-- :ClaudeTask and :ClaudeTasks: argument parsing, completion, and user-facing messages.

local M = {}

local levels = vim.log.levels

local function notify(msg, level)
  require("claude-tasks.notify").notify(msg, level)
end

local function err(msg)
  notify(require("claude-tasks.backend").clean_error(msg), levels.ERROR)
end

local function start(prompt, opts)
  local id, e = require("claude-tasks").start(prompt, opts)
  if not id then
    return err(e)
  end
  if not require("claude-tasks.config").get().open then
    notify(string.format("claude-tasks: started #%d (:ClaudeTasks open %d)", id, id))
  end
end

--- :ClaudeTask {prompt}: the whole argument is the prompt; a range adds the lines as context.
--- With a bang, the task runs in a git worktree of its own. Without a prompt, it is asked for
--- (vim.ui.input); the range's lines are taken at once, from the buffer the command ran in.
function M.task(o)
  local prompt = o.args or ""
  local range = (o.range or 0) > 0
  local buf, line1, line2 = vim.api.nvim_get_current_buf(), o.line1, o.line2
  local function go(text)
    local context
    if range then
      if not vim.api.nvim_buf_is_valid(buf) then
        return err("claude-tasks: the buffer of the range is gone")
      end
      local where
      text, where = require("claude-tasks.context").add(text, buf, line1, line2)
      context = { where }
    end
    start(text, { context = context, isolation = o.bang and "worktree" or nil })
  end
  if vim.trim(prompt) ~= "" then
    return go(prompt)
  end
  local where = ""
  if range then
    local name = vim.api.nvim_buf_get_name(buf)
    where = string.format(
      " (%s:%d-%d)",
      name ~= "" and vim.fn.fnamemodify(name, ":.") or "[No Name]",
      math.min(line1, line2),
      math.max(line1, line2)
    )
  end
  local what = o.bang and "Claude task in a worktree" or "Claude task"
  vim.ui.input({ prompt = what .. where .. ": " }, function(input)
    if input and vim.trim(input) ~= "" then
      go(input)
    end
  end)
end

--- Cancels `task` ({ id, cwd } or a record), asking first when it runs (option `confirm`;
--- opts.force: never), or closes its Claude when it idles; reports errors.
function M.cancel_task(task, opts)
  if not task then
    return
  end
  if not task.status then
    -- A bare reference: the question needs the status.
    task = require("claude-tasks").get(task) or task
  end
  if task.status then
    local actions = require("claude-tasks.actions")
    -- An idle task's cancel closes its Claude (nothing is lost: nothing is asked).
    return actions.run(actions.idle(task) and "close" or "cancel", task, opts)
  end
  local _, e = require("claude-tasks").cancel(task)
  if e then
    err(e)
  end
end

--- Asks for a follow-up prompt (vim.ui.input) and resumes `task` with it.
function M.follow_up(task, prompt)
  if not task then
    return
  end
  local function go(input)
    if not input or vim.trim(input) == "" then
      return
    end
    local _, e = require("claude-tasks").resume(task, input)
    if e then
      err(e)
    end
  end
  if prompt and vim.trim(prompt) ~= "" then
    return go(prompt)
  end
  vim.ui.input({ prompt = "Follow up on #" .. tostring(task.id) .. ": " }, go)
end

local function open_task(task)
  local _, e = require("claude-tasks").open(task)
  if e then
    err(e)
  end
end

--- Disposes of `task` after a question (option `confirm`; opts.force: none): the worktree's
--- when its changes were not applied (they would be lost), else a plain one.
function M.dispose_task(task, opts)
  local label = require("claude-tasks.format").label(task)
  require("claude-tasks.worktree").confirm_dispose(task, function(force)
    local function go()
      local _, e = require("claude-tasks").dispose(task, { force = force })
      if e then
        return err(e)
      end
      notify("claude-tasks: disposed " .. label)
    end
    if force or (opts and opts.force) then
      return go()
    end
    require("claude-tasks.actions").confirm(
      string.format("Dispose of %s? Its output and transcript are deleted.", label),
      "Dispose",
      go
    )
  end)
end

-- Worktree tasks: review, apply, discard (claude-tasks.worktree).
function M.diff_task(task)
  if not require("claude-tasks.worktree").of(task) then
    return err(
      string.format(
        "claude-tasks: #%s did not run in a worktree (:ClaudeTask! starts one)",
        tostring(task.id)
      )
    )
  end
  local _, e = require("claude-tasks.worktree").diff(task)
  if e then
    notify(e, e:find("changed nothing", 1, true) and levels.INFO or levels.ERROR)
  end
end

function M.apply_task(task)
  local worktree = require("claude-tasks.worktree")
  local r, e = worktree.apply(task)
  if not r then
    return err(e)
  end
  worktree.report(task, r)
  if #(r.conflicts or {}) > 0 then
    vim.cmd("botright copen")
  end
end

function M.discard_task(task)
  local worktree = require("claude-tasks.worktree")
  worktree.confirm_discard(task, function()
    local _, e = worktree.discard(task)
    if e then
      return err(e)
    end
    notify(
      string.format(
        "claude-tasks: discarded the worktree of #%s (branch %s)",
        tostring(task.id),
        tostring(worktree.of(task).branch)
      )
    )
  end)
end

local function live(t)
  return t.status == "running" or t.status == "queued"
end

local function finished(t)
  return not live(t)
end

local function waiting(t)
  return require("claude-tasks.permissions").waiting(t)
end

--- Runs `fn(task)` on the task `query` designates in the current project: an id (completion
--- inserts "12 its-name": the name is dropped) or a unique part of a name; several matches (or
--- no query): the picker of the candidates. opts.running / waiting / filter(task): the
--- candidates; opts.none: what to say when there is none.
local function with_task(query, opts, fn)
  local resolve = require("claude-tasks.resolve")
  local ok, tasks = pcall(resolve.list)
  if not ok then
    return err(tasks)
  end
  local candidates = tasks
  if opts.running then
    candidates = vim.tbl_filter(live, tasks)
  elseif opts.waiting then
    candidates = vim.tbl_filter(waiting, tasks)
  end
  if opts.filter then
    candidates = vim.tbl_filter(opts.filter, candidates)
  end
  local picker = require("claude-tasks.picker")
  if query == "" then
    if #candidates == 0 then
      return notify(
        opts.none
          or opts.running and "claude-tasks: no running task in this project"
          or opts.waiting and "claude-tasks: no task in this project waits for an answer"
          or "claude-tasks: no task yet in this project"
      )
    end
    return picker.select(candidates, opts.prompt, fn)
  end
  query = resolve.strip_name(query, tasks)
  local found = resolve.match(query, tasks)
  if #found == 1 then
    return fn(found[1])
  elseif #found == 0 then
    return err(resolve.no_match(query, tasks))
  end
  picker.select(found, opts.prompt, fn)
end

--- Runs `action` ("allow", "always", "deny") on the oldest waiting request of `task`; `reason`:
--- the denial's message, which is then not asked for.
local function answer_task(action, reason)
  return function(task)
    local permissions = require("claude-tasks.permissions")
    local req = permissions.find(task)
    if not req then
      return err(string.format("claude-tasks: #%s is not waiting for an answer", tostring(task.id)))
    end
    if action == "deny" and reason and reason ~= "" then
      local res, e = permissions.deny(task, { request_id = req.request_id, message = reason })
      if not res then
        err(e)
      end
      return
    end
    permissions.act(task, req, action)
  end
end

M.subcommands = {
  open = {
    usage = "open [id]",
    run = function(rest)
      with_task(rest, { prompt = "Open task" }, open_task)
    end,
  },
  cancel = {
    usage = "cancel [id]",
    live = true,
    run = function(rest, o)
      with_task(rest, { running = true, prompt = "Cancel task" }, function(task)
        M.cancel_task(task, { force = o.bang })
      end)
    end,
  },
  resume = {
    usage = "resume {id} {prompt}",
    filter = finished,
    run = function(rest)
      local ok, tasks = pcall(require("claude-tasks.resolve").list)
      if not ok then
        return err(tasks)
      end
      local query, prompt = require("claude-tasks.resolve").split_ref(rest, tasks)
      if not query then
        return err("claude-tasks: usage: :ClaudeTasks resume {id} {prompt}")
      end
      with_task(query, { prompt = "Follow up on" }, function(task)
        M.follow_up(task, prompt)
      end)
    end,
  },
  dispose = {
    usage = "dispose {id}",
    filter = finished,
    run = function(rest, o)
      with_task(rest, {
        filter = finished,
        none = "claude-tasks: no finished task in this project",
        prompt = "Dispose of task",
      }, function(task)
        M.dispose_task(task, { force = o.bang })
      end)
    end,
  },
  apply = {
    usage = "apply [id]",
    filter = function(t)
      return require("claude-tasks.worktree").live(t) and not live(t)
    end,
    run = function(rest)
      with_task(rest, {
        prompt = "Apply task",
        filter = M.subcommands.apply.filter,
        none = "claude-tasks: no finished worktree task to apply in this project",
      }, M.apply_task)
    end,
  },
  discard = {
    usage = "discard [id]",
    filter = function(t)
      return require("claude-tasks.worktree").live(t) and not live(t)
    end,
    run = function(rest)
      with_task(rest, {
        prompt = "Discard the worktree of",
        filter = M.subcommands.discard.filter,
        none = "claude-tasks: no finished worktree task to discard in this project",
      }, M.discard_task)
    end,
  },
  log = {
    usage = "log {id}",
    run = function(rest)
      with_task(rest, { prompt = "Transcript of task" }, function(task)
        require("claude-tasks.log").open(task)
      end)
    end,
  },
  list = {
    usage = "list",
    notask = true,
    run = function()
      local _, e = require("claude-tasks.list").open()
      if e then
        err(e)
      end
    end,
  },
  pick = {
    usage = "pick [all]",
    words = { "all" },
    run = function(rest)
      if rest ~= "" and rest ~= "all" then
        return err("claude-tasks: usage: :ClaudeTasks pick [all]")
      end
      require("claude-tasks.picker").pick({ all = rest == "all" })
    end,
  },
  allow = {
    usage = "allow [id]",
    waiting = true,
    run = function(rest)
      with_task(rest, { waiting = true, prompt = "Allow the request of" }, answer_task("allow"))
    end,
  },
  always = {
    usage = "always [id]",
    waiting = true,
    run = function(rest)
      with_task(
        rest,
        { waiting = true, prompt = "Always allow the request of" },
        answer_task("always")
      )
    end,
  },
  deny = {
    usage = "deny [id] [reason]",
    waiting = true,
    run = function(rest)
      -- The first word is the task only when it is an id: any other text is the reason.
      local id, reason = rest:match("^(#?%d+)%s*(.*)$")
      if not id then
        id, reason = "", rest
      end
      with_task(
        id,
        { waiting = true, prompt = "Deny the request of" },
        answer_task("deny", vim.trim(reason))
      )
    end,
  },
  rules = {
    usage = "rules",
    notask = true,
    run = function()
      require("claude-tasks.permissions").rules_ui()
    end,
  },
}

-- A conversation with a live task: say, interrupt, tui (conversation.lua).
for name, spec in pairs(require("claude-tasks.conversation").subcommands(with_task)) do
  M.subcommands[name] = spec
end

--- What a task changed (changes.lua): `{id} [run]` or nothing (the picker of the tasks whose
--- changes were recorded).
local function changed(t)
  for _, run in ipairs(type(t.runs) == "table" and t.runs or {}) do
    if type(run.files_changed) == "table" then
      return true
    end
  end
  return false
end

local CHANGED = {
  filter = changed,
  none = "claude-tasks: no task of this project has recorded changes yet",
}

--- "{id} [rest]" where completion may have put the task's name after its id: the id and the
--- rest without that name; nil when `rest` does not start with an id.
local function id_then(rest)
  if not rest:match("^%s*#?%d+") then
    return nil
  end
  local ok, tasks = pcall(require("claude-tasks.resolve").list)
  if not ok then
    return nil
  end
  local query, after = require("claude-tasks.resolve").split_ref(rest, tasks)
  if query and query:match("^#?%d+$") then
    return query, after
  end
end

--- `{id} [run]` of :ClaudeTasks changes / revert: the query and the run number.
local function id_and_run(rest)
  local id, after = id_then(rest)
  if id and (after == "" or after:match("^%d+$")) then
    return id, tonumber(after)
  end
  local query, run = rest:match("^(%S+)%s+(%d+)$")
  if query then
    return query, tonumber(run)
  end
  return rest, nil
end

local function report(_, e)
  if e then
    err(e)
  end
end

M.subcommands.changes = {
  usage = "changes [id [run]]",
  filter = changed,
  run = function(rest)
    local query, run = id_and_run(rest)
    with_task(query, vim.tbl_extend("force", CHANGED, { prompt = "Changes of" }), function(task)
      report(require("claude-tasks.changes").quickfix(task, { run = run }))
    end)
  end,
}

-- The review: a worktree task's changes against its base, or what a task's run changed.
M.subcommands.diff = {
  usage = "diff [id] [path]",
  filter = function(t)
    return require("claude-tasks.worktree").live(t) or changed(t)
  end,
  run = function(rest)
    local query, path = id_then(rest)
    if not query then
      query, path = "", rest
    end
    local changes = require("claude-tasks.changes")
    if query == "" and path == "" and vim.bo.buftype == "quickfix" then
      -- From an entry of a list of ours: the task is the list's.
      local ctx = vim.fn.getqflist({ context = 1 }).context
      local mine = type(ctx) == "table" and ctx.claude_tasks
      if mine then
        return report(changes.diff({ id = mine.id, cwd = mine.cwd }, {}))
      end
    end
    with_task(query, {
      prompt = "Diff of task",
      filter = M.subcommands.diff.filter,
      none = "claude-tasks: no task of this project has changes to review yet",
    }, function(task)
      local _, e = changes.review_task(task, { path = path, whole = path == "" })
      if e then
        notify(e, e:find("changed no", 1, true) and levels.INFO or levels.ERROR)
      end
    end)
  end,
}

M.subcommands.revert = {
  usage = "revert [id [run]]",
  filter = changed,
  run = function(rest)
    local query, run = id_and_run(rest)
    with_task(query, vim.tbl_extend("force", CHANGED, { prompt = "Revert" }), function(task)
      require("claude-tasks.changes").revert(task, { run = run })
    end)
  end,
}

M.order = {
  "open",
  "cancel",
  "resume",
  "say",
  "interrupt",
  "tui",
  "dispose",
  "log",
  "list",
  "pick",
  "changes",
  "diff",
  "revert",
  "apply",
  "discard",
  "allow",
  "always",
  "deny",
  "rules",
}

--- :ClaudeTasks[!] [subcommand] ... (! : no question before a cancel or a dispose)
function M.tasks(o)
  local sub, rest = (o.args or ""):match("^%s*(%S+)%s*(.-)%s*$")
  if not sub then
    return require("claude-tasks.picker").pick()
  end
  local spec = M.subcommands[sub]
  if not spec then
    local usages = {}
    for _, name in ipairs(M.order) do
      usages[#usages + 1] = M.subcommands[name].usage
    end
    return err(
      string.format(
        "claude-tasks: unknown subcommand '%s'; valid: %s (no argument: the picker)",
        sub,
        table.concat(usages, ", ")
      )
    )
  end
  spec.run(rest, o)
end

--- Completion of :ClaudeTasks: subcommands, then the tasks the subcommand can act on, as
--- "12 fix-failing-test" (an id, or a part of a name, completes).
function M.complete(arglead, cmdline, cursorpos)
  local before = cmdline:sub(1, cursorpos or #cmdline)
  local rest = before:match("ClaudeTasks!?%s+(.*)$") or ""
  local words = vim.split(rest, "%s+", { trimempty = true })
  local index = (rest == "" or rest:match("%s$")) and #words + 1 or #words
  if index <= 1 then
    return vim.tbl_filter(function(name)
      return vim.startswith(name, arglead)
    end, M.order)
  end
  local spec = M.subcommands[words[1]]
  if index ~= 2 or not spec or spec.notask then
    return {}
  end
  if spec.words then
    return vim.tbl_filter(function(w)
      return vim.startswith(w, arglead)
    end, spec.words)
  end
  local ok, tasks = pcall(require("claude-tasks.resolve").list)
  if not ok then
    return {}
  end
  local resolve = require("claude-tasks.resolve")
  local needle = arglead:lower()
  local out = {}
  for _, t in ipairs(tasks) do
    if
      (not spec.live or live(t))
      and (not spec.filter or spec.filter(t))
      and (not spec.waiting or waiting(t))
    then
      local id = tostring(t.id)
      local name = resolve.one_line(t.name)
      if
        vim.startswith(id, arglead)
        or vim.startswith("#" .. id, arglead)
        or (needle ~= "" and name:lower():find(needle, 1, true))
      then
        out[#out + 1] = vim.trim(id .. " " .. name)
      end
    end
  end
  return out
end

return M
