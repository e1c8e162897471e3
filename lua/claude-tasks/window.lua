-- Showing a buffer per the `open` option, reusing a window that already shows it.

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

local function float_config(title)
  local cols, lines = vim.o.columns, vim.o.lines - vim.o.cmdheight
  local width = math.max(20, math.floor(cols * 0.8))
  local height = math.max(5, math.floor(lines * 0.8))
  width, height = math.min(width, cols - 2), math.min(height, lines - 2)
  local config = {
    relative = "editor",
    width = width,
    height = height,
    row = math.floor((lines - height) / 2) - 1,
    col = math.floor((cols - width) / 2),
    border = "rounded",
  }
  if title then
    config.title = " " .. title .. " "
    config.title_pos = "center"
  end
  return config
end

--- Shows `buf` in a window per `mode` ("split" | "vsplit" | "tab" | "float"), focusing it.
--- A window already showing it is reused. Returns the window; its cursor is on the last line
--- when the window is new (so it follows the output).
function M.show(buf, mode, title)
  local win = M.find(buf, mode)
  if win then
    api.nvim_set_current_win(win)
    return win
  end
  if mode == "float" then
    win = api.nvim_open_win(buf, true, float_config(title))
  elseif mode == "tab" then
    vim.cmd("tab split")
    win = api.nvim_get_current_win()
    api.nvim_win_set_buf(win, buf)
  elseif mode == "vsplit" then
    win = api.nvim_open_win(buf, true, { split = vim.o.splitright and "right" or "left", win = 0 })
  else
    win = api.nvim_open_win(buf, true, { split = vim.o.splitbelow and "below" or "above", win = 0 })
  end
  api.nvim_win_set_cursor(win, { api.nvim_buf_line_count(buf), 0 })
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
