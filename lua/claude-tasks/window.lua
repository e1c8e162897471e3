-- Showing a buffer per the `open` option: a window that already shows it is used again, and
-- with `reuse` one output window shows the newest task instead of a new split per task; the
-- cursor goes there only with `focus`.

local M = {}

local api = vim.api

--- A window of the current tabpage showing `buf` (for "tab": of any tabpage), or nil.
function M.find(buf, mode)
  for _, win in ipairs(api.nvim_tabpage_list_wins(0)) do
    if api.nvim_win_get_buf(win) == buf then
      return win
    end
  end
  if mode == "tab" then
    for _, win in ipairs(api.nvim_list_wins()) do
      if api.nvim_win_get_buf(win) == buf then
        return win
      end
    end
  end
end

local function is_float(win)
  return api.nvim_win_get_config(win).relative ~= ""
end

--- Whether `buf` is a task's output buffer.
local function is_output(buf)
  local buffer = package.loaded["claude-tasks.buffer"]
  return buffer ~= nil and buffer.info[buf] ~= nil
end

--- Shows are counted so the output window used last is the one reused.
local shown = 0

--- The output window to show another task in, per `mode`: one showing a task's output (a
--- float for "float", a tabpage's window for "tab", else a window of this tabpage), the one
--- used last. Nil when there is none.
function M.reusable(mode)
  local wins = mode == "tab" and api.nvim_list_wins() or api.nvim_tabpage_list_wins(0)
  local best, best_n
  for _, win in ipairs(wins) do
    if is_output(api.nvim_win_get_buf(win)) and is_float(win) == (mode == "float") then
      local n = vim.w[win].claude_tasks_shown or 0
      if not best or n > best_n then
        best, best_n = win, n
      end
    end
  end
  return best
end

--- A size option: a fraction of `total` (0 < v <= 1) or a number of cells, within 1..total.
local function size(v, total)
  local n = v <= 1 and math.floor(total * v) or math.floor(v)
  return math.max(1, math.min(n, total))
end

--- The float's window config, from the option `float` (width, height, border).
function M.float_config(title)
  local o = require("claude-tasks.config").get().float
  local cols, lines = vim.o.columns, vim.o.lines - vim.o.cmdheight
  -- Room for the border.
  local width = size(o.width, math.max(1, cols - 2))
  local height = size(o.height, math.max(1, lines - 2))
  local config = {
    relative = "editor",
    width = width,
    height = height,
    row = math.max(0, math.floor((lines - height) / 2) - 1),
    col = math.max(0, math.floor((cols - width) / 2)),
    border = o.border,
  }
  if title and o.border ~= "none" then
    config.title = " " .. title .. " "
    config.title_pos = "center"
  end
  return config
end

--- Opens a new window for `buf` per `mode`, entering it only with `enter`.
local function open_new(buf, mode, title, enter)
  if mode == "float" then
    return api.nvim_open_win(buf, enter, M.float_config(title))
  elseif mode == "tab" then
    local tab, win = api.nvim_get_current_tabpage(), api.nvim_get_current_win()
    vim.cmd("tab split")
    local new = api.nvim_get_current_win()
    api.nvim_win_set_buf(new, buf)
    if not enter then
      api.nvim_set_current_tabpage(tab)
      api.nvim_set_current_win(win)
    end
    return new
  elseif mode == "vsplit" then
    return api.nvim_open_win(
      buf,
      enter,
      { split = vim.o.splitright and "right" or "left", win = 0 }
    )
  end
  return api.nvim_open_win(buf, enter, { split = vim.o.splitbelow and "below" or "above", win = 0 })
end

--- Shows `buf` in a window per `mode` ("split" | "vsplit" | "tab" | "float"). A window already
--- showing it is used; else, with opts.reuse, the output window used last (`reusable`); else
--- a new one, whose cursor starts on the last line (so it follows the output). opts.focus:
--- go to the window (default true). Returns the window.
function M.show(buf, mode, title, opts)
  opts = opts or {}
  local focus = opts.focus ~= false
  local win = M.find(buf, mode)
  if not win and opts.reuse then
    win = M.reusable(mode)
    if win then
      api.nvim_win_set_buf(win, buf)
      if is_float(win) and title then
        pcall(api.nvim_win_set_config, win, { title = " " .. title .. " ", title_pos = "center" })
      end
      api.nvim_win_set_cursor(win, { api.nvim_buf_line_count(buf), 0 })
    end
  end
  if win then
    if focus then
      local tab = api.nvim_win_get_tabpage(win)
      if tab ~= api.nvim_get_current_tabpage() then
        api.nvim_set_current_tabpage(tab)
      end
      api.nvim_set_current_win(win)
    end
  else
    win = open_new(buf, mode, title, focus)
    api.nvim_win_set_cursor(win, { api.nvim_buf_line_count(buf), 0 })
  end
  shown = shown + 1
  vim.w[win].claude_tasks_shown = shown
  return win
end

--- Closes `win`; when it is the last window, shows the alternate (or an empty) buffer instead.
function M.close(win)
  win = (win == nil or win == 0) and api.nvim_get_current_win() or win
  if pcall(api.nvim_win_close, win, false) then
    return
  end
  local cur = api.nvim_win_get_buf(win)
  api.nvim_win_call(win, function()
    local alt = vim.fn.bufnr("#")
    if alt > 0 and alt ~= cur and api.nvim_buf_is_valid(alt) then
      api.nvim_win_set_buf(win, alt)
    else
      vim.cmd("enew")
    end
  end)
end

return M
