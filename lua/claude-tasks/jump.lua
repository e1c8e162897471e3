-- Going from a line of a task's output to the file it names (gf, gF, <CR>): the file of a tool
-- call line (`● Edit(src/a.lua)`), else the path under the cursor or the first on the line
-- that exists (`src/a.lua:12:3`), relative to where the task runs (a worktree task: its
-- worktree). The file opens in a window of the user's (the previous one), never in the output
-- window, from a split, a tab or a float.

local M = {}

local api = vim.api
local uv = vim.uv or vim.loop

--- Tools whose call line names a file (render/tools.rs: `tool_summary`).
local FILE_TOOLS = { Read = true, Write = true, Edit = true, MultiEdit = true, NotebookEdit = true }

--- Characters that end a path in the text (Claude quotes paths in backticks, parentheses...).
local STOP = "[%s%(%)%[%]{}<>\"'`|,;]"

local function exists(path)
  local st = uv.fs_stat(path)
  return st ~= nil and (st.type == "file" or st.type == "directory")
end

--- `token` as a path, line and column: "a.lua:12:3", "a.lua:12", "a.lua#L12", "a.lua".
local function split_position(token)
  local path, l, c = token:match("^(.-):(%d+):(%d+)$")
  if path then
    return path, tonumber(l), tonumber(c)
  end
  path, l = token:match("^(.-):(%d+)$")
  if path then
    return path, tonumber(l)
  end
  path, l = token:match("^(.-)#L(%d+)$")
  if path then
    return path, tonumber(l)
  end
  return token
end

--- The file `token` names (relative to `cwd`), if it exists: path, line, col.
local function resolve(token, cwd)
  -- Punctuation a sentence puts around a path.
  token = token:gsub("^[*_:.]+", ""):gsub("[*_:.!?]+$", "")
  if token == "" or not token:find("[%w~/]") then
    return nil
  end
  local path, line, col = split_position(token)
  if path == "" then
    return nil
  end
  if path:sub(1, 1) == "~" then
    path = vim.fn.expand(path)
  elseif path:sub(1, 1) ~= "/" then
    path = cwd .. "/" .. path
  end
  path = vim.fs.normalize(path)
  if exists(path) then
    return path, line, col
  end
end

--- The file named at byte `col` (0-based) of `line`, relative to `cwd`: path, line, column;
--- nil when the line names none that exists.
function M.target(line, col, cwd)
  local tool, arg = line:match("^%s*● ([%w_]+)%((.*)%)%s*$")
  if tool and FILE_TOOLS[tool] then
    local path, l, c = resolve(arg, cwd)
    if path then
      return path, l, c
    end
  end
  -- The token under the cursor...
  local s = col + 1
  while s > 1 and not line:sub(s - 1, s - 1):find(STOP) do
    s = s - 1
  end
  local e = line:find(STOP, col + 1) or (#line + 1)
  if s <= col + 1 and e > s then
    local path, l, c = resolve(line:sub(s, e - 1), cwd)
    if path then
      return path, l, c
    end
  end
  -- ... else the first on the line that exists.
  for token in line:gmatch("[^%s%(%)%[%]{}<>\"'`|,;]+") do
    local path, l, c = resolve(token, cwd)
    if path then
      return path, l, c
    end
  end
end

local function is_float(win)
  return api.nvim_win_get_config(win).relative ~= ""
end

--- A window of the current tabpage for the file, never one showing a task's output: the
--- current one (after a float closed), else the previous one, else another normal window;
--- nil when there is none.
local function user_window()
  local buffer = require("claude-tasks.buffer")
  local function fits(win)
    if win == 0 or not api.nvim_win_is_valid(win) or is_float(win) then
      return false
    end
    local buf = api.nvim_win_get_buf(win)
    return buffer.info[buf] == nil and vim.bo[buf].buftype == ""
  end
  local cur, prev = api.nvim_get_current_win(), vim.fn.win_getid(vim.fn.winnr("#"))
  for _, win in ipairs({ cur, prev, unpack(api.nvim_tabpage_list_wins(0)) }) do
    if fits(win) then
      return win
    end
  end
end

--- Opens `path` (at `line`, `col` when given) in a window of the user's, leaving the output
--- window as it is (a float is closed: it would cover the file).
function M.open(path, line, col)
  local from = api.nvim_get_current_win()
  if is_float(from) then
    require("claude-tasks.window").close(from)
  end
  local win = user_window()
  if win then
    api.nvim_set_current_win(win)
  else
    -- The output fills the tabpage (open = "tab", or the only window): the file goes above it.
    vim.cmd("aboveleft split")
  end
  local ok, err = pcall(vim.cmd.edit, vim.fn.fnameescape(path))
  if not ok then
    require("claude-tasks.notify").notify(
      require("claude-tasks.backend").clean_error(err),
      vim.log.levels.ERROR
    )
    return
  end
  if line then
    local last = api.nvim_buf_line_count(0)
    pcall(api.nvim_win_set_cursor, 0, { math.min(line, last), math.max(0, (col or 1) - 1) })
    vim.cmd("normal! zv")
  end
end

--- Where the task's CLI runs, which its paths are relative to: a worktree task's place in its
--- worktree while it is there, else the task's directory.
function M.task_dir(id, cwd)
  local task = require("claude-tasks.state").get(cwd, id)
  if not task then
    -- Not in the cache (no event about it yet in this editor): one request, on a key press.
    local ok, res = pcall(require("claude-tasks.backend").request, "get", { id = id, cwd = cwd })
    task = ok and type(res) == "table" and res or nil
  end
  local worktree = require("claude-tasks.worktree")
  if task and worktree.live(task) then
    local dir = worktree.of(task).cwd
    if type(dir) == "string" and dir ~= "" then
      return dir
    end
  end
  return cwd
end

--- The key's action in output buffer `buf`: the file on the cursor's line, opened (at its line
--- when `with_line`). Returns false when the line names no file.
function M.go(buf, with_line)
  local info = require("claude-tasks.buffer").info[buf]
  local cwd = info and M.task_dir(info.id, info.cwd) or vim.fn.getcwd()
  local cursor = api.nvim_win_get_cursor(0)
  local line = api.nvim_buf_get_lines(buf, cursor[1] - 1, cursor[1], false)[1] or ""
  local path, l, c = M.target(line, cursor[2], cwd)
  if not path then
    return false
  end
  if with_line then
    M.open(path, l, c)
  else
    M.open(path)
  end
  return true
end

return M
