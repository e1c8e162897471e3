-- The task picker and the action menu, both through vim.ui.select (so telescope, fzf-lua,
-- snacks... show their own).

local M = {}

local function notify_err(err)
  require("claude-tasks.notify").notify(
    require("claude-tasks.backend").clean_error(err),
    vim.log.levels.ERROR
  )
end

--- The tasks to pick from, newest first: the current project's; with opts.all, every
--- project's (the backend's records, plus those of other projects this editor ran). Raises.
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
  if opts.all then
    local ok, all =
      pcall(require("claude-tasks.backend").request, "list", { cwd = cwd, all = true })
    if ok and type(all) == "table" then
      add(all)
    end
    for _, dir in ipairs(require("claude-tasks.state").cwds()) do
      if dir ~= cwd then
        local lok, list = pcall(resolve.list, dir)
        if lok then
          add(list)
        end
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

--- The actions offered for a task: the rows of actions.lua that apply to it.
function M.actions(task)
  local out = {}
  local actions = require("claude-tasks.actions")
  for _, row in ipairs(actions.for_task(task)) do
    out[#out + 1] = {
      label = actions.label(row, task),
      run = function()
        require("claude-tasks.actions").run(row.name, task)
      end,
    }
  end
  return out
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

--- The last entry of the picker of one project: the picker of every project.
local OTHERS = { others = true }

--- Picks a task from `tasks` (already fetched) and calls `on_choice(task)` (default: the
--- action menu). opts.others: end with an entry that opens the picker of every project.
function M.select(tasks, prompt, on_choice, opts)
  local format = require("claude-tasks.format")
  local now = format.now_ms()
  local items = tasks
  if opts and opts.others then
    items = vim.list_extend({}, tasks)
    items[#items + 1] = OTHERS
  end
  vim.ui.select(items, {
    prompt = prompt or "Claude tasks",
    kind = "claude-tasks",
    format_item = function(t)
      if t == OTHERS then
        return "… tasks of other projects"
      end
      return format.entry(t, now)
    end,
  }, function(choice)
    if choice == OTHERS then
      return M.pick(vim.tbl_extend("force", opts.pick or {}, { all = true }))
    elseif choice then
      (on_choice or M.act)(choice)
    end
  end)
end

--- The picker of the current project's tasks. opts: all (every project's), running (only
--- running/queued tasks), tasks (a given list), prompt, on_choice (instead of the action menu).
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
    require("claude-tasks.notify").notify(
      opts.running and "claude-tasks: no running task"
        or opts.all and "claude-tasks: no task yet"
        or "claude-tasks: no task yet in this project (:ClaudeTasks pick all: every project's)"
    )
    return
  end
  -- Other projects' tasks only on request: the last entry asks for them.
  local others = not opts.all and not opts.tasks and not opts.running
  M.select(tasks, opts.prompt, opts.on_choice, { others = others, pick = opts })
end

return M
