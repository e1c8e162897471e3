-- What can be done to a task: one table of actions that the picker's menu, the task list's
-- keys, the output buffer's keys, the subcommands' completion and the confirmations all read.
-- A feature adds its rows with `add` (permissions, review, worktrees...), and they appear in
-- each of those places at once.
--
-- A row: { name, label (the picker's menu: a string, or label(task)), key (the task list's
-- key, or nil), desc (the key's description), when(task) -> bool (whether it applies to the
-- task), run(task, opts) (opts.force: ask nothing), confirm(task) -> nil | question (asked
-- first unless the option `confirm` is false or opts.force; `yes`: its answer's label) }.

local M = {}

local levels = vim.log.levels

local function err(msg)
  require("claude-tasks.notify").notify(
    require("claude-tasks.backend").clean_error(msg),
    levels.ERROR
  )
end

local nn = require("claude-tasks.format").nn

--- Running or queued: something to cancel.
function M.live(task)
  return task.status == "running" or task.status == "queued"
end

--- Ended (any outcome): something to follow up on or dispose of.
function M.finished(task)
  return not M.live(task)
end

--- Its run is over and its Claude idles, kept alive for the next message (`keep_alive_ms`).
function M.idle(task)
  return require("claude-tasks.format").idle(task)
end

local function always()
  return true
end

local function label(task)
  return require("claude-tasks.format").label(task)
end

local function elapsed(task)
  local format = require("claude-tasks.format")
  local ms = format.elapsed_ms(task)
  return ms and format.duration(ms) or nil
end

local function permissions()
  return require("claude-tasks.permissions")
end

local function worktree()
  return require("claude-tasks.worktree")
end

local function changes()
  return require("claude-tasks.changes")
end

local function report(_, e)
  if e then
    err(e)
  end
end

--- A row that answers the task's oldest waiting permission request (permissions.lua).
local function answer(name, action, label, key, desc, questions)
  return {
    name = name,
    label = label,
    key = key,
    desc = desc,
    when = function(task)
      local req = permissions().waiting(task) and permissions().find(task)
      if not req then
        return false
      end
      -- A question (AskUserQuestion) is answered or denied; always and edit are for tools, and
      -- a plan (ExitPlanMode) is never made a rule.
      local question = req.tool_name == "AskUserQuestion"
      if action == "always" and req.tool_name == "ExitPlanMode" then
        return false
      end
      return questions == nil or questions == question
    end,
    run = function(task)
      local req = permissions().find(task)
      if req then
        permissions().act(task, req, action)
      end
    end,
  }
end

local function req_title(task)
  local req = permissions().find(task)
  return req and permissions().title(req) or "?"
end

M.rows = {
  answer("allow", "allow", function(task)
    return "Allow: " .. req_title(task)
  end, "a", "allow the task's request", false),
  answer("answer", "allow", function(task)
    return "Answer: " .. req_title(task)
  end, "a", "answer the task's question", true),
  answer("always", "always", "Always allow…", "A", "always allow what the task asks", false),
  answer("edit", "edit", "Edit and allow…", "e", "edit the task's request, then allow it", false),
  answer("deny", "deny", "Deny…", "x", "deny the task's request"),
  {
    name = "open",
    label = "Open output",
    key = "<CR>",
    desc = "open the task's output",
    when = always,
    run = function(task)
      local _, e = require("claude-tasks").open(task)
      if e then
        err(e)
      end
    end,
  },
  {
    name = "say",
    label = "Say… (now, into the running turn or right after it)",
    key = "r",
    desc = "say something to the task (into its running turn, or right after it)",
    when = function(task)
      return task.status == "running"
    end,
    run = function(task)
      require("claude-tasks.commands").follow_up(task)
    end,
  },
  {
    name = "interrupt",
    label = "Interrupt (stop this turn; the task waits for your next message)",
    key = "<C-c>",
    desc = "interrupt the task's turn (it waits for your next message)",
    when = function(task)
      return task.status == "running"
    end,
    -- Nothing is lost (the task stays, for the next message): nothing is asked.
    run = function(task)
      require("claude-tasks.conversation").interrupt_task(task)
    end,
  },
  {
    name = "cancel",
    label = "Cancel",
    yes = "Cancel it",
    key = "c",
    desc = "cancel the task",
    when = M.live,
    -- A queued task loses nothing; a running one loses the work of its current turn.
    confirm = function(task)
      if task.status ~= "running" then
        return nil
      end
      local took = elapsed(task)
      return string.format("Cancel %s (running%s)?", label(task), took and (" for " .. took) or "")
    end,
    run = function(task)
      local _, e = require("claude-tasks").cancel(task)
      if e then
        err(e)
      end
    end,
  },
  {
    name = "resume",
    label = function(task)
      return M.idle(task) and "Follow up (its Claude is live)" or "Follow up"
    end,
    key = "r",
    desc = "follow up on the task (asks for the prompt)",
    when = M.finished,
    run = function(task)
      require("claude-tasks.commands").follow_up(task)
    end,
  },
  {
    name = "tui",
    label = "Open Claude's TUI on its session",
    key = "T",
    desc = "open Claude's own TUI on the task's session (its idle Claude is closed first)",
    when = M.finished,
    run = function(task)
      require("claude-tasks.conversation").tui_task(task)
    end,
  },
  {
    name = "close",
    label = "Close its idle Claude",
    key = "c",
    desc = "close the task's idle Claude (a follow-up then resumes the session)",
    when = function(task)
      return M.idle(task)
    end,
    -- Nothing is lost: the session stays, and a follow-up resumes it in a new Claude.
    run = function(task)
      local _, e = require("claude-tasks").cancel(task)
      if e then
        err(e)
      end
    end,
  },
  {
    name = "log",
    label = "Transcript",
    key = "L",
    desc = "open the task's transcript (the CLI's own lines)",
    when = always,
    run = function(task)
      require("claude-tasks.log").open(task)
    end,
  },
  {
    name = "copy_session",
    label = "Copy session id",
    key = "y",
    desc = "copy the task's Claude session id",
    when = function(task)
      local sid = nn(task.session_id)
      return type(sid) == "string" and sid ~= ""
    end,
    run = function(task)
      local sid = task.session_id
      pcall(vim.fn.setreg, "+", sid)
      vim.fn.setreg('"', sid)
      require("claude-tasks.notify").notify("claude-tasks: copied session id " .. sid)
    end,
  },
  {
    name = "diff",
    label = "Diff of the worktree",
    key = "=",
    desc = "the diff of the task's worktree",
    when = function(task)
      return worktree().live(task)
    end,
    run = function(task)
      require("claude-tasks.commands").diff_task(task)
    end,
  },
  {
    name = "apply",
    label = "Apply to the project",
    key = "p",
    desc = "apply the worktree's changes to the project",
    when = function(task)
      return worktree().live(task) and M.finished(task)
    end,
    run = function(task)
      require("claude-tasks.commands").apply_task(task)
    end,
  },
  {
    name = "discard",
    label = "Discard the worktree",
    key = "X",
    desc = "discard the task's worktree (asks first)",
    when = function(task)
      return worktree().live(task) and M.finished(task)
    end,
    run = function(task)
      require("claude-tasks.commands").discard_task(task)
    end,
  },
  {
    name = "changes",
    label = function(task)
      local run = changes().reviewable(task)
      return "Changes (quickfix): " .. changes().totals(run and nn(run.changes) or {})
    end,
    key = "C",
    desc = "what the task's last run changed, in the quickfix list",
    when = function(task)
      return changes().reviewable(task) ~= nil
    end,
    run = function(task)
      report(changes().quickfix(task))
    end,
  },
  {
    name = "run_diff",
    label = "Diff",
    key = "=",
    desc = "the diff of what the task's last run changed",
    when = function(task)
      return changes().reviewable(task) ~= nil
    end,
    run = function(task)
      report(changes().diff(task, { whole = true }))
    end,
  },
  {
    name = "revert",
    label = "Revert",
    key = "u",
    desc = "revert the task's last run (asks first, naming the files)",
    when = function(task)
      return changes().reviewable(task) ~= nil
    end,
    -- changes.revert asks itself, naming the files, whatever the option `confirm` says.
    run = function(task)
      changes().revert(task)
    end,
  },
  {
    name = "dispose",
    label = "Dispose",
    key = "d",
    desc = "dispose of the task: its record, transcript and buffer (asks first)",
    when = M.finished,
    -- Its question is the worktree's when unapplied changes would go, else a plain one.
    run = function(task, opts)
      require("claude-tasks.commands").dispose_task(task, opts)
    end,
  },
}

--- The row named `name`, or nil.
function M.get(name)
  for _, row in ipairs(M.rows) do
    if row.name == name then
      return row
    end
  end
end

--- Adds (or replaces, by name) a row; opts.before / opts.after: the name of the row it goes
--- next to (default: the end).
function M.add(row, opts)
  opts = opts or {}
  for i, r in ipairs(M.rows) do
    if r.name == row.name then
      table.remove(M.rows, i)
      break
    end
  end
  local at = #M.rows + 1
  for i, r in ipairs(M.rows) do
    if opts.before and r.name == opts.before then
      at = i
      break
    elseif opts.after and r.name == opts.after then
      at = i + 1
      break
    end
  end
  table.insert(M.rows, at, row)
end

--- The rows that apply to `task`, in order.
function M.for_task(task)
  local out = {}
  for _, row in ipairs(M.rows) do
    if row.when(task) then
      out[#out + 1] = row
    end
  end
  return out
end

--- The row's label for `task`.
function M.label(row, task)
  if type(row.label) == "function" then
    return row.label(task)
  end
  return row.label
end

--- Asks `question` (vim.ui.select of `yes` and "No", so a picker plugin shows it) unless the
--- option `confirm` is false, then calls `on_yes()` if the answer is yes.
function M.confirm(question, yes, on_yes)
  if not require("claude-tasks.config").get().confirm then
    return on_yes()
  end
  vim.ui.select({ yes, "No" }, {
    prompt = question,
    kind = "claude-tasks.confirm",
  }, function(choice)
    if choice == yes then
      on_yes()
    end
  end)
end

--- Runs action `name` on `task` when it applies, asking first when the row says so.
--- opts.force: do not ask. Returns false when it did not apply.
function M.run(name, task, opts)
  local row = M.get(name)
  if not row or not task then
    return false
  end
  if not row.when(task) then
    require("claude-tasks.notify").notify(
      string.format(
        "claude-tasks: %s: not for %s (%s)",
        M.label(row, task),
        label(task),
        tostring(task.status)
      ),
      levels.WARN
    )
    return false
  end
  local question = row.confirm and not (opts and opts.force) and row.confirm(task)
  if question then
    M.confirm(question, row.yes or M.label(row, task), function()
      row.run(task, opts)
    end)
  else
    row.run(task, opts)
  end
  return true
end

return M
