-- Highlight groups (linked to built-ins with `default = true`, so a colorscheme or the user can
-- override them) and the output buffer's decorations: a decoration provider that highlights
-- only the visible lines of task buffers, by their first characters. Costs nothing elsewhere
-- and nothing per written line.

local M = {}

local api = vim.api

M.links = {
  ClaudeTasksQueued = "DiagnosticHint",
  ClaudeTasksRunning = "DiagnosticInfo",
  ClaudeTasksCompleted = "DiagnosticOk",
  ClaudeTasksFailed = "DiagnosticError",
  ClaudeTasksCancelled = "DiagnosticWarn",
  ClaudeTasksInterrupted = "DiagnosticWarn",
  ClaudeTasksHeader = "Title",
  ClaudeTasksSeparator = "Title",
  ClaudeTasksTool = "Function",
  ClaudeTasksToolResult = "Comment",
  ClaudeTasksError = "DiagnosticError",
  ClaudeTasksWarning = "DiagnosticWarn",
  ClaudeTasksFooter = "Special",
}

--- The header (the buffer's first lines, as the backend renders them): { prefix, group }.
M.header = {
  { "# #", "ClaudeTasksHeader" },
  { "cwd: ", "ClaudeTasksFooter" },
  { "model: ", "ClaudeTasksFooter" },
}
M.header_rows = 4

--- Other lines are highlighted by prefix: { prefix, group }. First match wins.
M.prefixes = {
  { "● ", "ClaudeTasksTool" },
  { "  ⎿ ", "ClaudeTasksToolResult" },
  { "  … ", "ClaudeTasksToolResult" },
  { "  ✗ ", "ClaudeTasksError" },
  { "✓ ", "ClaudeTasksCompleted" },
  { "✗ ", "ClaudeTasksFailed" },
  { "■ ", "ClaudeTasksCancelled" },
  { "⚠ interrupted", "ClaudeTasksInterrupted" },
  { "⚠ ", "ClaudeTasksWarning" },
  { "↻ ", "ClaudeTasksWarning" },
  { "── ", "ClaudeTasksSeparator" },
  { "… running", "ClaudeTasksRunning" },
  { "… queued", "ClaudeTasksQueued" },
}

M.ns = api.nvim_create_namespace("claude-tasks")

--- Buffers to decorate: bufnr -> true.
M.buffers = {}

function M.apply()
  for group, link in pairs(M.links) do
    api.nvim_set_hl(0, group, { link = link, default = true })
  end
end

local function match(line, list)
  for _, p in ipairs(list) do
    if line:sub(1, #p[1]) == p[1] then
      return p[2]
    end
  end
end

--- The group of line `line` at 0-based `row`, or nil.
function M.group_of(line, row)
  local b = line:byte(1)
  if b == nil then
    return nil
  end
  if row and row < M.header_rows and b < 128 then
    return match(line, M.header)
  end
  -- Every other prefix starts with a space or a multibyte character.
  if b < 128 and b ~= 32 then
    return nil
  end
  return match(line, M.prefixes)
end

local done = false

function M.setup()
  if done then
    return
  end
  done = true
  M.apply()
  api.nvim_create_autocmd("ColorScheme", {
    group = api.nvim_create_augroup("claude-tasks.highlights", { clear = true }),
    callback = M.apply,
    desc = "claude-tasks: re-apply the default highlight links",
  })
  api.nvim_set_decoration_provider(M.ns, {
    on_win = function(_, _, buf)
      return M.buffers[buf] == true
    end,
    on_line = function(_, _, buf, row)
      local line = api.nvim_buf_get_lines(buf, row, row + 1, false)[1]
      local group = line and M.group_of(line, row)
      if group then
        api.nvim_buf_set_extmark(buf, M.ns, row, 0, {
          end_col = #line,
          hl_group = group,
          ephemeral = true,
          priority = 150,
        })
      end
    end,
  })
end

return M
