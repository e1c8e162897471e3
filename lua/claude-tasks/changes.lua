-- What a task changed, in the editor: the quickfix list of a run's hunks, its review view
-- (review.lua), its revert, the buffers of changed files reloaded when a run ends, and the
-- files this editor saves while a task runs (the backend marks them "also edited by you").
--
-- A run is the first turn or a follow-up; each one's changes are recorded from its start to its
-- end (doc/protocol.md). `run` defaults to the task's last run everywhere.

local M = {}

local api = vim.api
local levels = vim.log.levels

local function notify(msg, level)
  require("claude-tasks.notify").notify(msg, level)
end

local nn = require("claude-tasks.format").nn

local function request(method, args)
  return require("claude-tasks.backend").try(method, args)
end

local function plural(n, one, many)
  return string.format("%d %s", n, n == 1 and one or many)
end

--- "4 files +12 −4".
function M.totals(t)
  return string.format(
    "%s +%d −%d",
    plural(tonumber(t.files) or 0, "file", "files"),
    tonumber(t.added) or 0,
    tonumber(t.removed) or 0
  )
end

--- `root/rel` (the backend's paths are relative to the run's root).
local function absolute(root, rel)
  if rel:sub(1, 1) == "/" then
    return rel
  end
  return (root:gsub("/+$", "")) .. "/" .. rel
end

--- A run's changes from the backend (the `changes` request), with absolute paths and the
--- patch's lines. Returns it, or nil and an error.
function M.fetch(task, run)
  local c, err = request("changes", { id = task.id, cwd = task.cwd, run = run })
  if not c then
    return nil, err
  end
  c.patch = nn(c.patch) or ""
  for _, f in ipairs(c.files or {}) do
    f.rel = f.path
    f.path = absolute(c.root, f.rel)
    f.old_path = nn(f.old_path)
    f.patch_start = nn(f.patch_start)
  end
  return c
end

--- What `file` (of `fetch`) held before the run: its content, or nil when it did not exist;
--- nil and an error when it cannot be read.
function M.original(task, run, rel)
  local res, err = request("original", { id = task.id, cwd = task.cwd, run = run, path = rel })
  if not res then
    return nil, err
  end
  if not res.exists then
    return nil
  end
  return nn(res.content) or ""
end

--- "claude-tasks #3 run 1: fix the test · 4 files +12 −4".
local function title(c)
  local s = string.format(
    "claude-tasks #%s run %s: %s · %s",
    tostring(c.id),
    tostring(c.run),
    tostring(nn(c.name) or ""),
    M.totals(c.totals or {})
  )
  if c.method == "files" then
    s = s .. " (edit tools only: not a git work tree)"
  end
  return s
end

--- The quickfix list of a run's changes: one entry per hunk (`path:line: +n −m`), titled with
--- the task. opts: run, open (default true: `:copen`). Returns the changes, or nil and an error.
function M.quickfix(task, opts)
  opts = opts or {}
  local c, err = M.fetch(task, opts.run)
  if not c then
    return nil, err
  end
  local by_you = {}
  for _, f in ipairs(c.files or {}) do
    if f.edited_by_you then
      by_you[f.rel] = true
    end
  end
  local items = {}
  for _, q in ipairs(c.quickfix or {}) do
    local text = q.text
    if by_you[q.path] then
      text = text .. " (also edited by you)"
    end
    items[#items + 1] = {
      filename = absolute(c.root, q.path),
      lnum = q.line,
      col = 1,
      text = text,
      user_data = { claude_tasks = { id = c.id, cwd = c.cwd, run = c.run, path = q.path } },
    }
  end
  vim.fn.setqflist({}, " ", {
    title = title(c),
    items = items,
    context = { claude_tasks = { id = c.id, cwd = c.cwd, run = c.run, root = c.root } },
  })
  if opts.open ~= false then
    vim.cmd("botright copen")
  end
  return c
end

--- The entry under the cursor of a quickfix window showing a list of ours, or nil.
local function quickfix_entry()
  if vim.bo.buftype ~= "quickfix" then
    return nil
  end
  local info = vim.fn.getwininfo(api.nvim_get_current_win())[1]
  if info and info.loclist == 1 then
    return nil
  end
  local list = vim.fn.getqflist({ context = 1, items = 1, idx = 0 })
  local ctx = type(list.context) == "table" and list.context.claude_tasks
  if not ctx then
    return nil
  end
  local item = list.items[vim.fn.line(".")]
  local data = item and type(item.user_data) == "table" and item.user_data.claude_tasks
  if not data then
    return nil
  end
  return data
end

local function before_of(task, run)
  return function(file)
    local rel = file.status == "renamed" and file.old_path or file.rel
    return M.original(task, run, rel)
  end
end

--- The review. With `path` (absolute or relative to the run's root) or from a quickfix entry
--- of ours: that file before the run beside the file now, in diff mode. Without: the whole
--- diff in a `filetype=diff` buffer `claude-tasks://<id>/diff`. opts: run, path, open.
--- Returns the buffer, or nil and an error.
function M.diff(task, opts)
  opts = opts or {}
  local path, run = opts.path, opts.run
  if (path == nil or path == "") and not opts.whole then
    local entry = quickfix_entry()
    if entry then
      task = { id = entry.id, cwd = entry.cwd }
      run, path = entry.run, entry.path
    end
  end
  local c, err = M.fetch(task, run)
  if not c then
    return nil, err
  end
  if #(c.files or {}) == 0 then
    return nil,
      string.format("claude-tasks: run %s of #%s changed no file", tostring(c.run), tostring(c.id))
  end
  local before = before_of(task, c.run)
  local name = string.format("claude-tasks://%s/diff", tostring(c.id))
  if c.cwd ~= vim.fn.getcwd() then
    name = name .. " (" .. vim.fn.fnamemodify(c.cwd, ":~") .. ")"
  end
  if path and path ~= "" then
    local abs = vim.fn.fnamemodify(absolute(c.root, path), ":p")
    local real = (vim.uv or vim.loop).fs_realpath(abs) or abs
    local file
    for _, f in ipairs(c.files or {}) do
      if f.path == abs or f.path == real or f.rel == path then
        file = f
        break
      end
    end
    if not file then
      return nil,
        string.format(
          "claude-tasks: run %s of #%s did not change %s",
          tostring(c.run),
          tostring(c.id),
          path
        )
    end
    return M.review().open_file({
      path = file.path,
      rel = file.rel,
      name = string.format("claude-tasks://%s/before/%s", tostring(c.id), file.rel),
      before = function()
        return before(file)
      end,
    })
  end
  local header = {
    "# " .. title(c),
    c.method == "files" and ("# outside git: only the files its edit tools named (" .. tostring(
      nn(c.why) or ""
    ) .. ")") or ("# snapshots of " .. vim.fn.fnamemodify(c.root, ":~")),
    "# <CR>: the file at this line · :ClaudeTasks diff "
      .. tostring(c.id)
      .. " {path}: a file side by side",
  }
  if c.truncated then
    header[#header + 1] = "# (the diff is cut: too large to show whole)"
  end
  return M.review().open_diff({
    name = name,
    header = header,
    patch = c.patch,
    files = c.files,
    before = before,
    open = opts.open,
  })
end

function M.review()
  return require("claude-tasks.review")
end

--- :ClaudeTasks diff: a worktree task's changes against its base (worktree.lua; opts.path: one
--- file beside its base), or a run's changes (`diff`). opts: path, whole, run, open.
function M.review_task(task, opts)
  opts = opts or {}
  local rec = task
  if nn(task.runs) == nil then
    local err
    rec, err = request("get", { id = task.id, cwd = task.cwd })
    if not rec then
      return nil, err
    end
  end
  local worktree = require("claude-tasks.worktree")
  if worktree.live(rec) and opts.run == nil then
    if opts.path and opts.path ~= "" then
      return worktree.diff_file(rec, opts.path)
    end
    return worktree.diff(rec, opts)
  end
  return M.diff(rec, opts)
end

-- --------------------------------------------------------------------------- buffers

--- Loaded file buffers by the file they show: { [path] = buf }, paths resolved.
local function file_buffers()
  local uv = vim.uv or vim.loop
  local out = {}
  for _, buf in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(buf) and vim.bo[buf].buftype == "" then
      local name = api.nvim_buf_get_name(buf)
      if name ~= "" then
        out[uv.fs_realpath(name) or vim.fn.fnamemodify(name, ":p")] = buf
      end
    end
  end
  return out
end

--- Reloads `buf` from its file if it changed on disk (`:checktime` of this buffer alone, with
--- 'autoread' on for it meanwhile: no prompt).
local function reload(buf)
  local local_value = vim.bo[buf].autoread
  vim.bo[buf].autoread = true
  pcall(vim.cmd, "checktime " .. buf)
  if api.nvim_buf_is_valid(buf) then
    if local_value == nil then
      api.nvim_buf_call(buf, function()
        vim.cmd("set autoread<")
      end)
    else
      vim.bo[buf].autoread = local_value
    end
  end
end

--- After files under `root` changed (`paths`, relative): their unmodified buffers reload, the
--- modified ones are named in a warning (they keep the user's text), and buffers of files that
--- are gone are named too. `who` says who changed them ("#3"). Returns { reloaded, modified,
--- gone } (file names relative to the current directory).
function M.refresh(root, paths, who)
  local uv = vim.uv or vim.loop
  local bufs = file_buffers()
  local out = { reloaded = {}, modified = {}, gone = {} }
  local seen = {}
  for _, rel in ipairs(paths) do
    local abs = absolute(root, rel)
    local buf = bufs[uv.fs_realpath(abs) or abs]
    if buf and not seen[buf] then
      seen[buf] = true
      local shown = vim.fn.fnamemodify(abs, ":~:.")
      if vim.bo[buf].modified then
        out.modified[#out.modified + 1] = shown
      elseif not uv.fs_stat(abs) then
        out.gone[#out.gone + 1] = shown
      else
        reload(buf)
        out.reloaded[#out.reloaded + 1] = shown
      end
    end
  end
  if #out.modified > 0 then
    notify(
      string.format(
        "claude-tasks: %s changed %s, which you have unsaved changes in: your buffer is kept (:ClaudeTasks diff to compare, :e! to load the file)",
        who,
        table.concat(out.modified, ", ")
      ),
      levels.WARN
    )
  end
  if #out.gone > 0 then
    notify(
      string.format(
        "claude-tasks: %s removed %s (the buffer is kept)",
        who,
        table.concat(out.gone, ", ")
      ),
      levels.WARN
    )
  end
  return out
end

--- A run ended (its `completed`, `failed` or `cancelled` event): the buffers of the files it
--- changed reload (or are named when modified).
function M.after_run(task)
  local runs = nn(task.runs)
  local run = type(runs) == "table" and runs[#runs] or nil
  if not run then
    return
  end
  local files, ch = nn(run.files_changed), nn(run.changes)
  if type(files) ~= "table" or #files == 0 or type(ch) ~= "table" then
    return
  end
  local paths = {}
  for _, f in ipairs(files) do
    paths[#paths + 1] = f.path
    if nn(f.old_path) then
      paths[#paths + 1] = f.old_path
    end
  end
  if (tonumber(ch.files) or 0) > #files then
    -- The record lists the first files only: ask for all of them.
    local c = M.fetch(task, run.n)
    if c then
      paths = {}
      for _, f in ipairs(c.files or {}) do
        paths[#paths + 1] = f.rel
        if f.old_path then
          paths[#paths + 1] = f.old_path
        end
      end
    end
  end
  return M.refresh(ch.root, paths, "#" .. tostring(task.id))
end

-- --------------------------------------------------------------------------- revert

local WRITTEN = {
  created = true,
  updated = true,
  merged = true,
  deleted = true,
  renamed = true,
  conflicted = true,
}

--- Reverts a run (three-way, keeping later edits), after a confirmation (vim.ui.select) that
--- lists its files; reloads their buffers; conflicts go to the quickfix list. opts: run,
--- confirm (default true), on_done(result). Errors are reported; returns nothing.
function M.revert(task, opts)
  opts = opts or {}
  local c, err = M.fetch(task, opts.run)
  if not c then
    return notify(err, levels.ERROR)
  end
  local label =
    string.format("run %s of #%s %s", tostring(c.run), tostring(c.id), tostring(nn(c.name) or ""))
  if #(c.files or {}) == 0 then
    return notify("claude-tasks: " .. label .. " changed no file: nothing to revert", levels.INFO)
  end
  local function go()
    local res, rerr = request("revert", { id = c.id, cwd = c.cwd, run = c.run })
    if not res then
      return notify(rerr, levels.ERROR)
    end
    if type(res.task) == "table" then
      require("claude-tasks.state").refresh({ res.task })
    end
    local paths = {}
    for _, f in ipairs(res.files or {}) do
      if WRITTEN[f.action] then
        paths[#paths + 1] = f.path
        if nn(f.old_path) then
          paths[#paths + 1] = f.old_path
        end
      end
    end
    M.refresh(res.root, paths, "the revert of #" .. tostring(c.id))
    local conflicts = res.conflicts or {}
    if #conflicts > 0 then
      local items = {}
      for _, x in ipairs(conflicts) do
        items[#items + 1] =
          { filename = absolute(res.root, x.path), lnum = x.line, col = 1, text = x.reason }
      end
      vim.fn.setqflist({}, " ", {
        title = string.format(
          "claude-tasks #%s run %s: revert conflicts",
          tostring(c.id),
          tostring(c.run)
        ),
        items = items,
      })
      vim.cmd("botright copen")
      notify(
        string.format(
          "claude-tasks: reverted %s with %s to resolve (quickfix list): nothing was overwritten",
          label,
          plural(#conflicts, "conflict", "conflicts")
        ),
        levels.WARN
      )
    else
      notify(
        string.format("claude-tasks: reverted %s (%s)", label, plural(#paths, "file", "files")),
        levels.INFO
      )
    end
    if opts.on_done then
      opts.on_done(res)
    end
  end
  if opts.confirm == false then
    return go()
  end
  local names = {}
  for i, f in ipairs(c.files) do
    if i > 6 then
      names[#names + 1] = string.format("… %d more", #c.files - 6)
      break
    end
    names[#names + 1] = f.rel
  end
  local yes =
    string.format("Revert %s: %s", plural(#c.files, "file", "files"), table.concat(names, ", "))
  vim.ui.select({ yes, "Cancel" }, {
    prompt = "Revert " .. label .. "?",
    kind = "claude-tasks.confirm",
  }, function(_, idx)
    if idx == 1 then
      go()
    end
  end)
end

-- --------------------------------------------------------------------------- actions

--- The last run of a finished task run in place whose changes were recorded, when it changed
--- files (what the task list's and the picker's changes, diff and revert act on; a worktree
--- task's review is its worktree's).
function M.reviewable(task)
  if task.status == "running" or task.status == "queued" then
    return nil
  end
  local runs = nn(task.runs)
  local run = type(runs) == "table" and runs[#runs] or nil
  local files = run and nn(run.files_changed)
  if type(files) ~= "table" or #files == 0 or require("claude-tasks.worktree").live(task) then
    return nil
  end
  return run
end

-- --------------------------------------------------------------------------- saves

--- BufWritePost: tells the backend of a file saved under a running task's directory, so the
--- run's changes to it say "also edited by you". A notification: `:write` never waits.
function M.saved(ev)
  local state = package.loaded["claude-tasks.state"]
  local backend = package.loaded["claude-tasks.backend"]
  if not state or not backend or not backend.running() then
    return
  end
  local path = vim.fn.fnamemodify(ev.match or api.nvim_buf_get_name(ev.buf), ":p")
  for _, t in pairs(state.tasks) do
    if t.status == "running" then
      local runs = nn(t.runs)
      local run = type(runs) == "table" and runs[#runs] or nil
      local ch = run and nn(run.changes)
      local root = type(ch) == "table" and nn(ch.root) or t.cwd
      local real = (vim.uv or vim.loop).fs_realpath(path) or path
      if vim.startswith(real, root .. "/") or vim.startswith(path, t.cwd .. "/") then
        pcall(vim.rpcnotify, backend.info().job, "saved", { path = real })
        return
      end
    end
  end
end

return M
