-- Highlight groups (linked to built-ins with `default = true`, so a colorscheme or the user can
-- override them) and the output buffer's decorations: a decoration provider that highlights
-- only the rows a window draws. Our own lines (tool calls, results, footers, ...) get a group
-- by their first characters; in buffers of filetype "claude-tasks", the answer's markdown is
-- highlighted too (markdown.lua). Nothing runs per written line, so a flood of output costs
-- the same to watch whatever its size: no regex syntax or parser goes over lines no window
-- shows.

local M = {}

local api = vim.api
local uv = vim.uv or vim.loop
local markdown = require("claude-tasks.markdown")

--- Group -> the group it links to, or a list of candidates: the first one the colorscheme
--- defines (not empty) wins, else the last. Treesitter's `@markup` groups come first, so the
--- output looks like markdown elsewhere; the default colorscheme leaves `@markup.raw` empty,
--- and code should still stand out.
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
  ClaudeTasksHeading = "@markup.heading",
  ClaudeTasksCode = { "@markup.raw.block", "@markup.raw", "String" },
  ClaudeTasksCodeFence = "Comment",
  ClaudeTasksCodeSpan = { "@markup.raw", "String" },
  ClaudeTasksStrong = "@markup.strong",
  ClaudeTasksEmphasis = "@markup.italic",
  ClaudeTasksQuote = { "@markup.quote", "Comment" },
  ClaudeTasksListMarker = { "@markup.list", "Special" },
  ClaudeTasksRule = "@punctuation.special",
  ClaudeTasksLink = { "@markup.link.label", "@markup.link", "Underlined" },
  ClaudeTasksUrl = { "@markup.link.url", "Underlined" },
  ClaudeTasksRequest = "DiagnosticWarn",
  ClaudeTasksAllowed = "DiagnosticOk",
}

--- The header (the buffer's first lines, as the backend renders them): { prefix, group }.
M.header = {
  { "# #", "ClaudeTasksHeader" },
  { "cwd: ", "ClaudeTasksFooter" },
  { "model: ", "ClaudeTasksFooter" },
  { "context: ", "ClaudeTasksFooter" },
}
M.header_rows = 5

--- Other lines are highlighted by prefix: { prefix, group }. First match wins.
M.prefixes = {
  { "● ", "ClaudeTasksTool" },
  { "  ⎿ ", "ClaudeTasksToolResult" },
  -- A permission request (its header starts with "? ") and what was decided.
  { "? ", "ClaudeTasksRequest" },
  { "  ✓ ", "ClaudeTasksAllowed" },
  { "  … ", "ClaudeTasksToolResult" },
  { "  ✗ ", "ClaudeTasksError" },
  { "  │ ", "ClaudeTasksError" },
  { "  ⚠ ", "ClaudeTasksWarning" },
  { "✓ ", "ClaudeTasksCompleted" },
  { "✗ ", "ClaudeTasksFailed" },
  { "■ ", "ClaudeTasksCancelled" },
  { "⚠ interrupted", "ClaudeTasksInterrupted" },
  { "⚠ ", "ClaudeTasksWarning" },
  { "↻ ", "ClaudeTasksWarning" },
  { "↶ ", "ClaudeTasksWarning" },
  { "── ", "ClaudeTasksSeparator" },
  { "… running", "ClaudeTasksRunning" },
  { "… queued", "ClaudeTasksQueued" },
}

M.ns = api.nvim_create_namespace("claude-tasks")

--- The filetype whose buffers get the markdown highlighting.
M.filetype = "claude-tasks"

--- Buffers to decorate: bufnr -> true.
M.buffers = {}

local function resolve(link)
  if type(link) == "string" then
    return link
  end
  for i = 1, #link - 1 do
    if next(api.nvim_get_hl(0, { name = link[i], create = false })) ~= nil then
      return link[i]
    end
  end
  return link[#link]
end

function M.apply()
  for group, link in pairs(M.links) do
    api.nvim_set_hl(0, group, { link = resolve(link), default = true })
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
  -- Every other prefix starts with a space, "?" or a multibyte character.
  if b < 128 and b ~= 32 and b ~= 63 then
    return nil
  end
  return match(line, M.prefixes)
end

-- The code-fence state of the rows a window draws ---------------------------------------------
--
-- Markdown carries one state from line to line that matters here: whether a code fence is
-- open. Finding it for a row exactly would take every line above it, which is what makes
-- syntax and parsers cost per written line. Instead: a text block ends at the next line of
-- ours (a tool call, a footer: the backend never puts them inside one), so the state before a
-- row is found by reading back at most LOOKBACK rows to such a line; and each buffer keeps the
-- state at the top row of the window it drew last, so a window following a stream reads
-- forward from there over the few new rows. Only a code block longer than LOOKBACK rows, seen
-- from its middle after a jump or a flood, may show as text.

--- Rows read, at most, to find the fence state before a row.
M.LOOKBACK = 200

--- buf -> { row, state }: the fence state before `row`, valid while no line above it changes.
local checkpoints = {}

--- The fence state after `lines` (rows from `first`), from `state`; nil at our own lines.
local function advance(state, lines, first)
  local step = markdown.step
  for i = 1, #lines do
    local l = lines[i]
    local b = l:byte(1)
    -- Only a line starting with a space, a backtick, a tilde or a multibyte character can be
    -- a fence or one of ours.
    if b == 32 or b == 96 or b == 126 or (b and b >= 128) or first + i - 1 < M.header_rows then
      if M.group_of(l, first + i - 1) then
        state = nil
      elseif b ~= nil and b < 128 then
        state = step(state, l)
      end
    end
  end
  return state
end

--- The fence state before `row` of `buf`.
function M.state_before(buf, row)
  local cp = checkpoints[buf]
  local state
  if cp and cp.row <= row and row - cp.row <= M.LOOKBACK then
    state = advance(cp.state, api.nvim_buf_get_lines(buf, cp.row, row, false), cp.row)
  else
    local from = math.max(0, row - M.LOOKBACK)
    local lines = api.nvim_buf_get_lines(buf, from, row, false)
    -- From the last line of ours; before it, no fence can be open.
    local start = 1
    for i = #lines, 1, -1 do
      if M.group_of(lines[i], from + i - 1) then
        start = i
        break
      end
    end
    state = advance(nil, start == 1 and lines or vim.list_slice(lines, start), from + start - 1)
  end
  checkpoints[buf] = { row = row, state = state }
  return state
end

local attached = {}

--- Starts decorating `buf` (a task buffer). Idempotent.
function M.attach(buf)
  M.setup()
  M.buffers[buf] = true
  if attached[buf] then
    return
  end
  attached[buf] = true
  -- A checkpoint holds while the lines above it stay: one call per write, not per line.
  api.nvim_buf_attach(buf, false, {
    on_lines = function(_, b, _, first)
      local cp = checkpoints[b]
      if cp and cp.row > first then
        checkpoints[b] = nil
      end
      if not M.buffers[b] then
        attached[b] = nil
        return true
      end
    end,
    on_reload = function(_, b)
      checkpoints[b] = nil
    end,
    on_detach = function(_, b)
      attached[b], checkpoints[b] = nil, nil
    end,
  })
end

--- Stops decorating `buf` (wiped).
function M.detach(buf)
  M.buffers[buf] = nil
  checkpoints[buf] = nil
end

-- The decoration provider ----------------------------------------------------------------------

--- Per window being drawn: { md = markdown on?, bot = its last row (a guess), row = the next
--- row in order, state = the fence state before it, lines = rows from `first`, read ahead;
--- top = its top row when last drawn, decorated = uv.now() of its last decorated draw,
--- timer = the pending catch-up }.
local draws = {}

--- A window whose rows all changed since its last draw, less than FLYING_MS after its last
--- decorated draw, shows output going by faster than anyone reads (a flood redraws after
--- every write, ~1,600 lines apart): it is drawn plain, and again with its decorations
--- FLYING_MS after the last decorated draw at the latest. A flood's frames then cost nothing
--- here, and a window that follows a stream (a few rows per frame) is always decorated.
M.FLYING_MS = 100

local function catch_up(win, d, delay)
  if d.timer then
    return
  end
  d.timer = uv.new_timer()
  d.timer:start(
    math.max(0, delay),
    0,
    vim.schedule_wrap(function()
      d.timer:close()
      d.timer = nil
      if api.nvim_win_is_valid(win) then
        api.nvim__redraw({ win = win, valid = false })
      else
        draws[win] = nil
      end
    end)
  )
end

local set_extmark = api.nvim_buf_set_extmark
local get_lines = api.nvim_buf_get_lines
local mark_opts = { ephemeral = true }

local function mark(buf, row, s, e, group, priority)
  mark_opts.end_col, mark_opts.hl_group, mark_opts.priority = e, group, priority
  set_extmark(buf, M.ns, row, s, mark_opts)
end

--- Rows read in one call when a window draws: a call costs more than a row.
local READ_AHEAD = 32

local function on_win(_, win, buf, topline, botline)
  if not M.buffers[buf] then
    return false
  end
  local d = draws[win] or {}
  draws[win] = d
  local now = uv.now()
  local moved = d.top and math.abs(topline - d.top) > api.nvim_win_get_height(win)
  d.top = topline
  if moved and d.decorated and now - d.decorated < M.FLYING_MS then
    catch_up(win, d, d.decorated + M.FLYING_MS - now)
    return false
  end
  d.decorated = now
  d.md = api.nvim_get_option_value("filetype", { buf = buf }) == M.filetype
  d.bot, d.row, d.first, d.lines = botline, nil, nil, nil
  return true
end

local function line_at(d, buf, row)
  local i = d.first and row - d.first + 1
  if not i or i < 1 or i > #d.lines then
    d.first = row
    d.lines = get_lines(buf, row, math.max(row + 1, math.min(row + READ_AHEAD, d.bot + 1)), false)
    i = 1
  end
  return d.lines[i]
end

local function on_line(_, win, buf, row)
  local d = draws[win]
  if not d then
    return
  end
  local line = line_at(d, buf, row)
  if not line then
    return
  end
  local group = M.group_of(line, row)
  if group then
    mark(buf, row, 0, #line, group, 150)
    d.row, d.state = row + 1, nil
    return
  end
  if not d.md then
    return
  end
  -- Rows come in order, but not all of them: a redraw draws the rows that changed (after a
  -- scroll, the new ones at the bottom). The state is kept for the window's top row, where the
  -- next frame (and a redraw in place) starts from.
  if d.row ~= row then
    local top = d.top
    if top <= row and row - top <= M.LOOKBACK then
      d.state = advance(M.state_before(buf, top), get_lines(buf, top, row, false), top)
    else
      d.state = M.state_before(buf, row)
    end
  end
  local spans, state = markdown.line(line, d.state)
  for i = 1, #spans do
    local s = spans[i]
    mark(buf, row, s[1], s[2], s[3], 120 + i)
  end
  d.row, d.state = row + 1, state
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
  api.nvim_set_decoration_provider(M.ns, { on_win = on_win, on_line = on_line })
  api.nvim_create_autocmd("WinClosed", {
    group = api.nvim_create_augroup("claude-tasks.highlights.windows", { clear = true }),
    callback = function(ev)
      local win = tonumber(ev.match)
      local d = win and draws[win]
      if d and not d.timer then
        draws[win] = nil
      end
    end,
    desc = "claude-tasks: forget a closed window's drawing state",
  })
end

return M
