-- Worktree tasks (`isolation = "worktree"`): the review of a task's worktree, bringing its
-- changes back (apply), removing it (discard), and the questions asked before unapplied work
-- is thrown away. The git work happens in the backend (doc/protocol.md, "Worktree tasks").
--
-- Functions return their result, or nil and a one-line error; only the `confirm_*` ones ask
-- (through vim.ui.select), and only `report` notifies.

local M = {}

local api = vim.api
local levels = vim.log.levels

local function nn(v)
  if v == vim.NIL then
    return nil
  end
  return v
end

local function request(method, args)
  local backend = require("claude-tasks.backend")
  local ok, res = pcall(backend.request, method, args)
  if not ok then
    return nil, backend.clean_error(res)
  end
  return res
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

--- The file and line a row (1-based) of a diff buffer stands for: the file from the count of
--- `diff --git` headers above it (the backend lists `files` in the patch's order, so names
--- never have to be parsed back out of the patch), the line from the hunk header and the
--- lines between. A removed line maps to the line now in its place.
function M.locate(lines, row, files)
  local file_index, header_row = 0, nil
  for r = 1, math.min(row, #lines) do
    local l = lines[r]
    if l:sub(1, 11) == "diff --git " then
      file_index = file_index + 1
      header_row = nil
    elseif l:sub(1, 3) == "@@ " then
      header_row = r
    end
  end
  local file = files[file_index]
  if not file then
    return nil
  end
  if not header_row then
    return file.path, 1
  end
  local new_start = tonumber(lines[header_row]:match("^@@ %-%d+,?%d* %+(%d+)")) or 1
  local line = new_start
  for r = header_row + 1, row - 1 do
    local c = lines[r]:sub(1, 1)
    if c == " " or c == "+" then
      line = line + 1
    end
  end
  return file.path, math.max(line, 1)
end

local function jump(buf)
  local info = vim.b[buf].claude_task_diff
  if not info then
    return
  end
  local lines = api.nvim_buf_get_lines(buf, 0, -1, false)
  local row = api.nvim_win_get_cursor(0)[1]
  local path, line = M.locate(lines, row, info.files)
  if not path then
    return
  end
  local full = info.root .. "/" .. path
  if vim.fn.filereadable(full) == 0 then
    return vim.notify("claude-tasks: " .. full .. " does not exist (deleted?)", levels.WARN)
  end
  vim.cmd("wincmd p")
  if api.nvim_get_current_buf() == buf then
    vim.cmd("split")
  end
  vim.cmd("edit " .. vim.fn.fnameescape(full))
  pcall(api.nvim_win_set_cursor, 0, { line, 0 })
end

local function diff_buffer(task, d)
  local name = string.format("claude-tasks://%d/diff", task.id)
  if task.cwd ~= vim.fn.getcwd() then
    name = string.format("%s (%s)", name, vim.fn.fnamemodify(task.cwd, ":t"))
  end
  local buf = vim.fn.bufnr(name)
  if buf < 0 or not api.nvim_buf_is_valid(buf) then
    buf = api.nvim_create_buf(true, true)
    api.nvim_buf_set_name(buf, name)
  end
  local bo = vim.bo[buf]
  bo.buftype, bo.bufhidden, bo.swapfile = "nofile", "hide", false
  bo.modifiable = true
  local lines = vim.split(d.patch or "", "\n", { plain = true })
  if lines[#lines] == "" then
    lines[#lines] = nil
  end
  api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  bo.modifiable, bo.modified = false, false
  bo.filetype = "diff"
  local files = {}
  for i, f in ipairs(d.files or {}) do
    files[i] = { path = f.path }
  end
  vim.b[buf].claude_task = { id = task.id, cwd = task.cwd }
  vim.b[buf].claude_task_diff = { root = d.root, files = files }
  vim.keymap.set("n", "<CR>", function()
    jump(buf)
  end, { buffer = buf, desc = "claude-tasks: this hunk in the worktree's file" })
  vim.keymap.set("n", "q", function()
    require("claude-tasks.window").close(0)
  end, { buffer = buf, desc = "claude-tasks: close" })
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
    vim.notify(
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

--- `:edit` of a diff buffer: fetched again.
function M.reload(buf)
  local t = vim.b[buf].claude_task
  if type(t) ~= "table" then
    return
  end
  local d, err = request("worktree_diff", { id = t.id, cwd = t.cwd })
  if not d then
    return vim.notify(err, levels.ERROR)
  end
  diff_buffer(t, d)
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
  vim.notify(msg, level)
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
