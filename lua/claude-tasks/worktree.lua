-- Worktree tasks (`isolation = "worktree"`): the review of a task's worktree, bringing its
-- changes back (apply), removing it (discard), and the questions asked before unapplied work
-- is thrown away. The git work happens in the backend (doc/protocol.md, "Worktree tasks").
--
-- Functions return their result, or nil and a one-line error; only the `confirm_*` ones ask
-- (through vim.ui.select), and only `report` notifies.

local M = {}

local api = vim.api
local levels = vim.log.levels

local nn = require("claude-tasks.format").nn

local function request(method, args)
  return require("claude-tasks.backend").try(method, args)
end

--- The task's worktree table, or nil for a task run in place.
function M.of(task)
  local wt = nn(task and task.worktree)
  return type(wt) == "table" and wt or nil
end

--- A worktree task whose worktree has not been discarded.
function M.live(task)
  local wt = M.of(task)
  return wt ~= nil and nn(wt.discarded_at_ms) == nil
end

--- What is left of the task's worktree and what it changed: { branch, path, dir, registered,
--- branch_exists, problem?, files = {...}, unapplied = { paths }, applied? }.
function M.status(task)
  return request("worktree", { id = task.id, cwd = task.cwd })
end

-- ------------------------------------------------------------------------------ the review

--- The review's spec (review.lua) of a worktree diff `d` of `task`: the worktree's files, each
--- deleted one shown side by side with its base.
local function diff_spec(task, d)
  local name = string.format("claude-tasks://%d/diff", task.id)
  if task.cwd ~= vim.fn.getcwd() then
    name = string.format("%s (%s)", name, vim.fn.fnamemodify(task.cwd, ":t"))
  end
  local files = {}
  for i, f in ipairs(d.files or {}) do
    files[i] = { path = d.root .. "/" .. f.path, rel = f.path, status = nn(f.status) }
  end
  return {
    name = name,
    patch = d.patch,
    files = files,
    open = false,
    before = function(file)
      return request(
        "worktree_file",
        { id = task.id, cwd = task.cwd, path = file.rel, at = "base" }
      )
    end,
    refill = function()
      local again, err = request("worktree_diff", { id = task.id, cwd = task.cwd })
      return again and diff_spec(task, again), err
    end,
  }
end

local function diff_buffer(task, d)
  local buf = require("claude-tasks.review").open_diff(diff_spec(task, d))
  vim.b[buf].claude_task = { id = task.id, cwd = task.cwd }
  return buf
end

local function quickfix(title, items)
  local list = {}
  for i, q in ipairs(items) do
    list[i] = { filename = q.filename, lnum = q.lnum, text = q.text }
  end
  vim.fn.setqflist({}, " ", { title = title, items = list })
end

--- The review of a worktree task: its changes against its base in a `filetype=diff` buffer
--- `claude-tasks://<id>/diff` (<CR> on a line opens the worktree's file there), and a quickfix
--- list of the hunks. opts.open: how to show it (default: option `open`, or "split").
--- Returns the buffer, or nil and a message (an error, or that nothing changed).
function M.diff(task, opts)
  local d, err = request("worktree_diff", { id = task.id, cwd = task.cwd })
  if not d then
    return nil, err
  end
  if #(d.files or {}) == 0 then
    return nil, string.format("claude-tasks: #%d changed nothing in its worktree", task.id)
  end
  local buf = diff_buffer(task, d)
  quickfix(
    string.format("claude-tasks #%d: worktree changes (%s)", task.id, d.branch),
    d.quickfix or {}
  )
  local mode = (opts or {}).open
  if mode == nil then
    mode = require("claude-tasks.config").get().open or "split"
  end
  require("claude-tasks.window").show(buf, mode, string.format("#%d %s", task.id, d.branch))
  api.nvim_win_set_cursor(0, { 1, 0 })
  if nn(d.missing) then
    require("claude-tasks.notify").notify(
      string.format(
        "claude-tasks: #%d: %s; the diff shows its branch's commits",
        task.id,
        d.missing
      ),
      levels.WARN
    )
  end
  return buf
end

--- One file of a worktree task side by side with its base, in diff mode (review.lua); `path`
--- relative to the repository's top level, or absolute in the worktree. Returns the scratch
--- buffer, or nil and an error.
function M.diff_file(task, path)
  local wt = M.of(task)
  if not wt then
    return nil, string.format("claude-tasks: #%s did not run in a worktree", tostring(task.id))
  end
  local root = tostring(nn(wt.path))
  local rel = vim.startswith(path, root .. "/") and path:sub(#root + 2) or path
  return require("claude-tasks.review").open_file({
    path = root .. "/" .. rel,
    rel = rel,
    name = string.format("claude-tasks://%d/base/%s", task.id, rel),
    before = function()
      return request("worktree_file", { id = task.id, cwd = task.cwd, path = rel, at = "base" })
    end,
  })
end

-- ------------------------------------------------------------------------------ apply

local WRITTEN = {
  created = true,
  updated = true,
  merged = true,
  deleted = true,
  renamed = true,
  conflicted = true,
}

--- Reloads the unmodified buffers of the files `r` wrote (`checktime`, for those buffers only);
--- returns the names of modified ones, which keep what they hold.
local function reload_buffers(r)
  local modified = {}
  for _, f in ipairs(r.files or {}) do
    if WRITTEN[f.action] then
      for _, p in ipairs({ f.path, nn(f.old_path) }) do
        local buf = vim.fn.bufnr(r.top .. "/" .. p)
        if buf > 0 and api.nvim_buf_is_loaded(buf) then
          if vim.bo[buf].modified then
            modified[#modified + 1] = p
          else
            pcall(vim.cmd.checktime, buf)
          end
        end
      end
    end
  end
  return modified
end

--- Brings the task's worktree changes (those since the last apply) into the project's files
--- by three-way merge: edits made meanwhile are kept; conflicts leave markers and become the
--- quickfix list. opts.mode: "files" or "commit" (default: option `apply`); opts.message: the
--- commit's message (default: from the task's name). Returns the backend's report (plus
--- `modified`: buffers with unsaved changes whose file changed), or nil and an error.
function M.apply(task, opts)
  opts = opts or {}
  local mode = opts.mode or require("claude-tasks.config").get().apply
  local r, err = request("apply", {
    id = task.id,
    cwd = task.cwd,
    mode = mode,
    message = opts.message,
  })
  if not r then
    return nil, err
  end
  r.modified = reload_buffers(r)
  if #(r.conflicts or {}) > 0 then
    quickfix(string.format("claude-tasks #%d: conflicts of apply", task.id), r.conflicts)
  end
  return r
end

local function count_actions(files)
  local counts, order = {}, {}
  for _, f in ipairs(files or {}) do
    if f.action ~= "unchanged" then
      if not counts[f.action] then
        order[#order + 1] = f.action
      end
      counts[f.action] = (counts[f.action] or 0) + 1
    end
  end
  local parts, total = {}, 0
  for _, a in ipairs(order) do
    parts[#parts + 1] = string.format("%d %s", counts[a], a)
    total = total + counts[a]
  end
  local files = string.format("%d file%s", total, total == 1 and "" or "s")
  if #order == 1 then
    -- "1 file updated", "3 files created"
    return total, files .. " " .. order[1]
  end
  return total, files .. ": " .. table.concat(parts, ", ")
end

--- Tells the user what `apply` did (one notification); returns the message and its level.
function M.report(task, r)
  local total, what = count_actions(r.files)
  local msg, level
  if total == 0 then
    msg = string.format("claude-tasks: #%d has nothing new to apply", task.id)
    level = levels.INFO
  else
    msg = string.format(
      "claude-tasks: applied #%d%s: %s",
      task.id,
      r.since_last_apply and " (since the last apply)" or "",
      what
    )
    level = levels.INFO
  end
  local conflicts = #(r.conflicts or {})
  if conflicts > 0 then
    msg = msg
      .. string.format(
        "; %d conflict%s left (markers, quickfix list)",
        conflicts,
        conflicts == 1 and "" or "s"
      )
    level = levels.WARN
  end
  if nn(r.commit) then
    msg = msg .. "; committed " .. r.commit:sub(1, 12)
  elseif nn(r.not_committed) then
    msg = msg .. "; not committed: " .. r.not_committed
    level = levels.WARN
  end
  if #(r.modified or {}) > 0 then
    msg = msg
      .. "; unsaved buffers kept as they were: "
      .. table.concat(r.modified, ", ")
      .. " (:edit! shows the file)"
    level = levels.WARN
  end
  if nn(r.missing) then
    msg = msg .. "; only its branch's commits: " .. r.missing
    level = levels.WARN
  end
  if total > 0 and conflicts == 0 then
    msg = msg .. string.format(" · :ClaudeTasks discard %d removes its worktree", task.id)
  end
  require("claude-tasks.notify").notify(msg, level)
  return msg, level
end

-- ------------------------------------------------------------------------------ discard

--- Removes the task's worktree and branch (no question: see `confirm_discard`). Returns the
--- task record, or nil and an error.
function M.discard(task)
  local rec, err = request("discard", { id = task.id, cwd = task.cwd })
  if not rec then
    return nil, err
  end
  require("claude-tasks.state").refresh({ rec })
  return rec
end

local function files_phrase(paths)
  local n = #paths
  local shown = {}
  for i = 1, math.min(n, 3) do
    shown[i] = paths[i]
  end
  local s = table.concat(shown, ", ")
  if n > 3 then
    s = s .. string.format(" and %d more", n - 3)
  end
  return string.format("%d changed file%s not applied (%s)", n, n == 1 and "" or "s", s)
end

local function ask(prompt, yes, on_yes)
  vim.ui.select({ yes, "Keep it" }, {
    prompt = prompt,
    kind = "claude-tasks.confirm",
  }, function(choice)
    if choice == yes then
      on_yes()
    end
  end)
end

--- Asks before discarding the task's worktree (naming what would be lost), then calls
--- `on_yes()`.
function M.confirm_discard(task, on_yes)
  local wt = M.of(task) or {}
  local st, err = M.status(task)
  local what
  if st then
    what = #(st.unapplied or {}) > 0 and files_phrase(st.unapplied) or "everything applied"
  else
    what = "cannot check it: " .. tostring(err)
  end
  ask(
    string.format(
      "Discard the worktree of #%d (branch %s, %s)?",
      task.id,
      tostring(nn(wt.branch)),
      what
    ),
    "Discard",
    on_yes
  )
end

--- Before disposing of `task`: `on_go(force)` at once when nothing would be lost, else after
--- the user confirms (with force: the worktree's unapplied changes go with the task).
function M.confirm_dispose(task, on_go)
  if not M.live(task) then
    return on_go(false)
  end
  local st, err = M.status(task)
  if st and #(st.unapplied or {}) == 0 then
    return on_go(false)
  end
  local what = st and files_phrase(st.unapplied)
    or ("its worktree cannot be checked (" .. tostring(err) .. ")")
  ask(
    string.format("Dispose of #%d? Its worktree has %s: they will be lost.", task.id, what),
    "Dispose",
    function()
      on_go(true)
    end
  )
end

return M
