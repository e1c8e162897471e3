-- The folds of the output buffers: a tool's long result is in the buffer whole (up to 200
-- lines), its lines after the first five folded. The backend sends the ranges with each write
-- (render/tools.rs, doc/protocol.md); here they become manual folds, closed, in each window
-- that shows the buffer, now or later. Nothing is computed per written line: no foldexpr, no
-- scan of the lines. zo, zc, za, zR... work as in any buffer; <Tab> toggles.

local M = {}

local api = vim.api

--- Folds of a buffer: buf -> { { first, last }, ... } (0-based lines, in order), and those
--- whose last line is not written yet.
local ranges, waiting = {}, {}

--- The text of a closed fold: how many lines it hides (with those of the result that are not
--- in the buffer at all, which its last line counts).
function M.text()
  local first, last = vim.v.foldstart, vim.v.foldend
  local n = last - first + 1
  local more = tostring(vim.fn.getline(last)):match("^  … (%d+) more line")
  if more then
    n = n - 1 + tonumber(more)
  end
  return {
    { string.format("    … %d more line%s", n, n == 1 and "" or "s"), "ClaudeTasksToolResult" },
    { "  (zo / <Tab> shows them)", "Comment" },
  }
end

--- Folds a window that shows an output buffer: manual folds, closed, our fold text; set for
--- this buffer in this window only (a file shown there later keeps its own).
function M.window(win)
  local wo = vim.wo[win][0]
  if wo.foldmethod ~= "manual" then
    wo.foldmethod = "manual"
  end
  wo.foldenable = true
  wo.foldlevel = 0
  wo.foldtext = "v:lua.require'claude-tasks.folds'.text()"
end

local function create(win, f)
  api.nvim_win_call(win, function()
    pcall(vim.cmd, string.format("silent %d,%dfold", f[1] + 1, f[2] + 1))
  end)
end

--- The buffer's folds in `win` (a window that shows it): all of them, unless it has them.
function M.apply(win, buf)
  local list = ranges[buf]
  M.window(win)
  if not list or #list == 0 then
    return
  end
  local has = api.nvim_win_call(win, function()
    return vim.fn.foldlevel(list[1][1] + 1) > 0
  end)
  if has then
    return
  end
  for _, f in ipairs(list) do
    create(win, f)
  end
end

--- Lines from 0-based `start` of `buf` were replaced; `flat`: the new folds, as first, last,
--- first, last... Folds of the replaced lines are gone (Neovim removes them with the lines).
function M.written(buf, start, flat)
  local list = ranges[buf]
  if list then
    -- Folds do not overlap: in order of their first lines, their last lines are in order too,
    -- and a write near the end (the usual one) looks at the last few only.
    for i = #list, 1, -1 do
      local f = list[i]
      if f[2] < start then
        break
      elseif f[1] >= start then
        table.remove(list, i)
      else
        f[2] = start - 1
        if f[2] <= f[1] then
          table.remove(list, i)
        end
      end
    end
  end
  local wait = waiting[buf]
  if wait then
    for i = #wait, 1, -1 do
      if wait[i][1] >= start then
        table.remove(wait, i)
      end
    end
  end
  if type(flat) == "table" and #flat > 0 then
    wait = wait or {}
    waiting[buf] = wait
    for i = 1, #flat - 1, 2 do
      wait[#wait + 1] = { flat[i], flat[i + 1] }
    end
  end
  if not wait or #wait == 0 then
    return
  end
  -- Those whole in the buffer now are folded in every window that shows it.
  local count = api.nvim_buf_line_count(buf)
  local ready = {}
  for i = #wait, 1, -1 do
    if wait[i][2] < count then
      table.insert(ready, 1, table.remove(wait, i))
    end
  end
  if #ready == 0 then
    return
  end
  list = ranges[buf] or {}
  ranges[buf] = list
  vim.list_extend(list, ready)
  local wins = vim.fn.win_findbuf(buf)
  for _, win in ipairs(wins) do
    M.window(win)
    for _, f in ipairs(ready) do
      create(win, f)
    end
  end
end

--- The buffer's folds in every window that shows it and lacks them (it was just shown).
function M.apply_all(buf)
  for _, win in ipairs(vim.fn.win_findbuf(buf)) do
    M.apply(win, buf)
  end
end

--- `buf` was wiped.
function M.forget(buf)
  ranges[buf], waiting[buf] = nil, nil
end

--- The folds known for `buf` (tests).
function M.of(buf)
  return vim.deepcopy(ranges[buf] or {})
end

return M
