-- The review view of a set of changes, whoever made them (a run of a task, a worktree task):
--
-- - `open_diff(spec)`: one `filetype=diff` scratch buffer with the whole unified diff; `<CR>` on
--   a line opens the real file at the line it stands for (a deleted file: its side-by-side view).
-- - `open_file(spec)`: one file before the changes beside the file now, in Neovim's diff mode
--   (`:diffthis` of a scratch buffer holding the old content), in a tab of its own, so `do` and
--   `dp` move hunks between them.
--
-- A diff is given as `{ patch, files }`: the patch text (`diff --git` sections, as bytes) and its
-- files in patch order, each `{ path (absolute), rel, status, old_path?, patch_start?, hunks? }`
-- with `patch_start` the 0-based line of its `diff --git` header in the patch and each hunk
-- `{ patch_line, new_start, line }` (its `@@` line, its start in the new file, its first changed
-- line): what the backend's `changes` request answers, with `path` made absolute. Without
-- them (a worktree's diff), they are read from the patch: its k-th `diff --git` header is the
-- k-th file, so names are never parsed back out of it.

local M = {}

local api = vim.api

--- The file and line of the new side that 0-based line `idx` of the patch stands for: a `+` or
--- context line is itself, a removed line the line now in its place, a hunk header its first
--- changed line, a file header the file's first hunk. `lines` are the patch's lines (1-based).
function M.locate(files, lines, idx)
  local file
  for _, f in ipairs(files) do
    if f.patch_start ~= nil then
      if f.patch_start <= idx or file == nil then
        file = f
      end
      if f.patch_start > idx then
        break
      end
    end
  end
  if not file then
    return nil
  end
  local hunks = file.hunks or {}
  local hunk
  for _, h in ipairs(hunks) do
    if h.patch_line <= idx then
      hunk = h
    else
      break
    end
  end
  if not hunk then
    return file, hunks[1] and hunks[1].line or 1
  end
  if hunk.patch_line == idx then
    return file, math.max(hunk.line or hunk.new_start, 1)
  end
  local new_line = hunk.new_start
  local last_new = math.max(hunk.new_start, 1)
  for i = hunk.patch_line + 1, #lines - 1 do
    local c = lines[i + 1]:sub(1, 1)
    if i == idx then
      return file, math.max(new_line, 1)
    end
    if c == "+" or c == " " then
      last_new = new_line
      new_line = new_line + 1
    elseif c ~= "-" and c ~= "\\" then
      break
    end
  end
  return file, math.max(last_new, 1)
end

--- Fills in `patch_start` and `hunks` of files that lack them, from the patch's lines.
local function index_patch(files, lines)
  if #files == 0 or files[1].patch_start ~= nil then
    return
  end
  local k, file = 0, nil
  for i, l in ipairs(lines) do
    if l:sub(1, 11) == "diff --git " then
      k = k + 1
      file = files[k]
      if file then
        file.patch_start, file.hunks = i - 1, {}
      end
    elseif file and l:sub(1, 3) == "@@ " then
      local start = tonumber(l:match("^@@ %-%d+,?%d* %+(%d+)")) or 1
      local first = start
      -- The first changed line: past the leading context lines.
      for j = i + 1, #lines do
        local c = lines[j]:sub(1, 1)
        if c ~= " " then
          break
        end
        first = first + 1
      end
      table.insert(file.hunks, { patch_line = i - 1, new_start = start, line = math.max(first, 1) })
    end
  end
end

--- Functions that fill a diff buffer again (`:edit` of it): buf -> fn() returning a spec.
local refills = {}

--- The buffer named `name`, or a new scratch buffer with that name.
local function scratch(name)
  local buf = vim.fn.bufnr("^" .. vim.fn.escape(name, "\\^$.*~[]/") .. "$")
  if buf ~= -1 and api.nvim_buf_get_name(buf) ~= name then
    buf = -1
  end
  if buf == -1 or not api.nvim_buf_is_valid(buf) then
    buf = api.nvim_create_buf(true, true)
    api.nvim_buf_set_name(buf, name)
  end
  local bo = vim.bo[buf]
  bo.buftype = "nofile"
  bo.bufhidden = "hide"
  bo.swapfile = false
  return buf
end

local function set_lines(buf, lines)
  vim.bo[buf].modifiable = true
  api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.bo[buf].modified = false
end

--- A window to open a file in from `win` (the review's): the previous window when there is
--- one, else a new split above.
local function target_window(win)
  vim.cmd("wincmd p")
  local prev = api.nvim_get_current_win()
  if prev == win or vim.bo[api.nvim_win_get_buf(prev)].buftype ~= "" then
    api.nvim_set_current_win(win)
    vim.cmd("aboveleft split")
  end
end

--- Opens `path` at `line` in a window other than the review's.
local function jump(path, line)
  target_window(api.nvim_get_current_win())
  vim.cmd.edit(vim.fn.fnameescape(path))
  local last = api.nvim_buf_line_count(0)
  pcall(api.nvim_win_set_cursor, 0, { math.min(line, last), 0 })
  vim.cmd("normal! zv")
end

--- Splits the patch bytes into lines (a trailing newline ends the last one).
function M.patch_lines(patch)
  if patch == nil or patch == "" then
    return {}
  end
  local lines = vim.split(patch, "\n", { plain = true })
  if lines[#lines] == "" then
    lines[#lines] = nil
  end
  return lines
end

--- The diff buffer. spec: { name, header = { lines }, patch, files, before = function(file)
--- (for a deleted file's view), open = how ("split", "vsplit", "tab", "current"; default
--- "split"; false: the caller shows it), refill = function() returning a new spec (for
--- `:edit`) }. Returns the buffer.
function M.open_diff(spec)
  local lines = M.patch_lines(spec.patch)
  index_patch(spec.files or {}, lines)
  local header = spec.header or {}
  local buf = scratch(spec.name)
  refills[buf] = spec.refill
  local all = vim.list_extend(vim.list_extend({}, header), lines)
  if #lines == 0 then
    all[#all + 1] = "# (no changes)"
  end
  set_lines(buf, all)
  vim.bo[buf].filetype = "diff"
  vim.b[buf].claude_tasks_review = { header = #header, files = spec.files }
  local function on_enter()
    local idx = api.nvim_win_get_cursor(0)[1] - 1 - #header
    local file, line = M.locate(spec.files or {}, lines, math.max(idx, 0))
    if not file then
      return
    end
    if file.status == "deleted" and not spec.before then
      return require("claude-tasks.notify").notify(
        "claude-tasks: " .. file.path .. " does not exist any more",
        vim.log.levels.WARN
      )
    end
    if file.status == "deleted" then
      return M.open_file({
        path = file.path,
        rel = file.rel,
        name = (spec.name or "claude-tasks://diff") .. "/" .. (file.rel or file.path),
        before = function()
          return spec.before(file)
        end,
      })
    end
    jump(file.path, line)
  end
  vim.keymap.set("n", "<CR>", on_enter, {
    buffer = buf,
    nowait = true,
    desc = "claude-tasks: open the file at this line of the diff",
  })
  vim.keymap.set("n", "q", function()
    require("claude-tasks.window").close(0)
  end, { buffer = buf, nowait = true, desc = "claude-tasks: close the diff" })
  local how = spec.open == nil and "split" or spec.open
  if how == false then
    return buf
  end
  if vim.fn.bufwinid(buf) ~= -1 then
    api.nvim_set_current_win(vim.fn.bufwinid(buf))
  elseif how == "tab" then
    vim.cmd("tab sbuffer " .. buf)
  elseif how == "vsplit" then
    vim.cmd("vertical sbuffer " .. buf)
  elseif how == "current" then
    api.nvim_win_set_buf(0, buf)
  else
    vim.cmd("sbuffer " .. buf)
  end
  pcall(api.nvim_win_set_cursor, 0, { math.min(#header + 1, #all), 0 })
  return buf
end

--- `:edit` of a diff buffer: filled again from its source.
function M.reload(buf)
  local refill = refills[buf]
  if not refill then
    return
  end
  local spec, err = refill()
  if not spec then
    return require("claude-tasks.notify").notify(
      err or "claude-tasks: nothing to show",
      vim.log.levels.ERROR
    )
  end
  spec.open = false
  M.open_diff(spec)
end

--- The side-by-side view of one file. spec: { path (absolute), rel, name (of the scratch
--- buffer), before = function() -> content or nil (no such file before), or nil and an error }.
--- Opens a new tab: the old content on the left (a scratch buffer), the file on the right, both
--- in diff mode. Returns the scratch buffer, or nil and an error.
function M.open_file(spec)
  local content, err = spec.before()
  if err then
    return nil, err
  end
  vim.cmd("tabedit " .. vim.fn.fnameescape(spec.path))
  local file_win = api.nvim_get_current_win()
  local file_buf = api.nvim_get_current_buf()
  vim.cmd("leftabove vnew")
  local buf = api.nvim_get_current_buf()
  local bo = vim.bo[buf]
  bo.buftype = "nofile"
  bo.bufhidden = "wipe"
  bo.swapfile = false
  pcall(api.nvim_buf_set_name, buf, spec.name)
  local lines = content and M.patch_lines(content) or {}
  api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  bo.modified = false
  local ft = vim.bo[file_buf].filetype
  if ft == "" then
    ft = vim.filetype.match({ filename = spec.path, buf = buf }) or ""
  end
  if ft ~= "" then
    bo.filetype = ft
  end
  vim.b[buf].claude_tasks_before = { path = spec.path, exists = content ~= nil }
  vim.cmd("diffthis")
  api.nvim_set_current_win(file_win)
  vim.cmd("diffthis")
  -- The file's window leaves diff mode when the old side goes.
  api.nvim_create_autocmd("BufWipeout", {
    buffer = buf,
    once = true,
    callback = function()
      if api.nvim_win_is_valid(file_win) then
        api.nvim_win_call(file_win, function()
          vim.cmd("diffoff")
        end)
      end
    end,
  })
  return buf
end

return M
