-- The task picker and the action menu, both through vim.ui.select (so telescope, fzf-lua,
-- snacks... show their own).

local M = {}

local function notify_err(err)
  vim.notify(require("claude-tasks.backend").clean_error(err), vim.log.levels.ERROR)
end

--- The tasks to pick from: the current project's, plus those of other projects this editor
--- ran (from the cache), newest first. Raises.
function M.tasks(opts)
  opts = opts or {}
  local resolve = require("claude-tasks.resolve")
  local cwd = vim.fn.getcwd()
  local out, seen = {}, {}
  local function add(list)
    for _, t in ipairs(list) do
      local k = tostring(t.cwd) .. "\0" .. tostring(t.id)
      if not seen[k] then
        seen[k] = true
        out[#out + 1] = t
      end
    end
  end
  add(resolve.list(cwd))
  for _, dir in ipairs(require("claude-tasks.state").cwds()) do
    if dir ~= cwd then
      local ok, list = pcall(resolve.list, dir)
      if ok then
        add(list)
      end
    end
  end
  require("claude-tasks.state").refresh(out)
  local permissions = require("claude-tasks.permissions")
  table.sort(out, function(a, b)
    -- Tasks waiting for an answer first: they are what needs the user.
    local wa, wb = permissions.waiting(a), permissions.waiting(b)
    if wa ~= wb then
      return wa
    end
    local ca, cb = tonumber(a.created_at_ms) or 0, tonumber(b.created_at_ms) or 0
    if ca ~= cb then
      return ca > cb
    end
    return (tonumber(a.id) or 0) > (tonumber(b.id) or 0)
  end)
  if opts.running then
    out = vim.tbl_filter(function(t)
      return t.status == "running" or t.status == "queued"
    end, out)
  end
  return out
end

--- The actions offered for a task: { label, run(task) }.
function M.actions(task)
  local ct = require("claude-tasks")
  local live = task.status == "running" or task.status == "queued"
  local actions = require("claude-tasks.permissions").actions(task)
  vim.list_extend(actions, {
    {
      label = "Open output",
      run = function()
        local _, err = ct.open(task)
        if err then
          notify_err(err)
        end
      end,
    },
  })
  if live then
    actions[#actions + 1] = {
      label = "Cancel",
      run = function()
        require("claude-tasks.commands").cancel_task(task)
      end,
    }
  else
    actions[#actions + 1] = {
      label = "Follow up",
      run = function()
        require("claude-tasks.commands").follow_up(task)
      end,
    }
  end
  local sid = task.session_id
  if type(sid) == "string" and sid ~= "" then
    actions[#actions + 1] = {
      label = "Copy session id",
      run = function()
        pcall(vim.fn.setreg, "+", sid)
        vim.fn.setreg('"', sid)
        vim.notify("claude-tasks: copied session id " .. sid, vim.log.levels.INFO)
      end,
    }
  end
  local worktree = require("claude-tasks.worktree")
  if worktree.live(task) then
    local commands = require("claude-tasks.commands")
    actions[#actions + 1] = {
      label = "Diff of the worktree",
      run = function()
        commands.diff_task(task)
      end,
    }
    if not live then
      actions[#actions + 1] = {
        label = "Apply to the project",
        run = function()
          commands.apply_task(task)
        end,
      }
      actions[#actions + 1] = {
        label = "Discard the worktree",
        run = function()
          commands.discard_task(task)
        end,
      }
    end
  end
  if not live then
    vim.list_extend(actions, require("claude-tasks.changes").actions(task))
    actions[#actions + 1] = {
      label = "Dispose",
      run = function()
        require("claude-tasks.commands").dispose_task(task)
      end,
    }
  end
  return actions
end

--- The action menu of one task.
function M.act(task)
  local actions = M.actions(task)
  vim.ui.select(actions, {
    prompt = require("claude-tasks.format").label(task),
    kind = "claude-tasks.action",
    format_item = function(a)
      return a.label
    end,
  }, function(choice)
    if choice then
      choice.run(task)
    end
  end)
end

--- Picks a task from `tasks` (already fetched) and calls `on_choice(task)` (default: the
--- action menu).
function M.select(tasks, prompt, on_choice)
  local format = require("claude-tasks.format")
  local now = format.now_ms()
  vim.ui.select(tasks, {
    prompt = prompt or "Claude tasks",
    kind = "claude-tasks",
    format_item = function(t)
      return format.entry(t, now)
    end,
  }, function(choice)
    if choice then
      (on_choice or M.act)(choice)
    end
  end)
end

--- The picker. opts: running (only running/queued tasks), tasks (a given list), prompt,
--- on_choice (instead of the action menu).
function M.pick(opts)
  opts = opts or {}
  local tasks = opts.tasks
  if not tasks then
    local ok, res = pcall(M.tasks, opts)
    if not ok then
      return notify_err(res)
    end
    tasks = res
  end
  if #tasks == 0 then
    vim.notify(
      opts.running and "claude-tasks: no running task"
        or "claude-tasks: no task yet in this project",
      vim.log.levels.INFO
    )
    return
  end
  M.select(tasks, opts.prompt, opts.on_choice)
end

return M
