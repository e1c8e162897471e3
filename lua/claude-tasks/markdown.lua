-- The markdown of Claude's answers, highlighted a line at a time: code fences and the code
-- between them, headings, quotes, list markers, rules, and inline code, strong, emphasis and
-- links. Pure functions over strings (highlights.lua feeds them the rows a window draws), so
-- the cost is per drawn line, never per written one.
--
-- Not a full CommonMark parser, on purpose: the only state carried from line to line is the
-- open code fence, and nothing is ever marked as an error (an unmatched `*` or a snake_case
-- `_` is text). Indented code blocks are not recognised: the output's tool results are
-- indented, and they are not code.

local M = {}

local find, sub, byte = string.find, string.sub, string.byte

local BACKTICK, TILDE, STAR, SPACE = 96, 126, 42, 32

--- The fence of `line`, or nil: a run of three or more backticks or tildes after at most
--- three spaces. Returns the fence character's byte, the run's length and the info string
--- (the first word after it, "" when none). A backtick fence's info may hold no backtick.
function M.fence(line)
  local s, e, run = find(line, "^ ? ? ?(```+)")
  if not s then
    s, e, run = find(line, "^ ? ? ?(~~~+)")
    if not s then
      return nil
    end
  end
  local rest = sub(line, e + 1)
  local ch = byte(run, 1)
  if ch == BACKTICK and find(rest, "`", 1, true) then
    return nil
  end
  return ch, #run, rest:match("^%s*([^%s{]+)") or ""
end

--- The fence state after `line` given the state before it (nil: outside a code block, else
--- { char, len, lang }). Closing takes the same character, at least as long, and no info.
function M.step(state, line)
  local ch, len, info = M.fence(line)
  if not ch then
    return state
  end
  if state == nil then
    return { char = ch, len = len, lang = info }
  end
  if ch == state.char and len >= state.len and info == "" then
    return nil
  end
  return state
end

-- Inline spans -------------------------------------------------------------------------------

--- Code spans of `line`: a run of N backticks up to the next run of exactly N. Appends
--- { start, end, group } (0-based, end exclusive) to `out`; returns the list of covered ranges.
local function code_spans(line, out)
  local covered = {}
  local pos = 1
  while true do
    local s, e = find(line, "`+", pos)
    if not s then
      break
    end
    local n = e - s + 1
    local close_e
    local at = e + 1
    while true do
      local cs, ce = find(line, "`+", at)
      if not cs then
        break
      end
      if ce - cs + 1 == n then
        close_e = ce
        break
      end
      at = ce + 1
    end
    if not close_e then
      -- No closing run of the same length: the backticks are text; the next run may open.
      pos = e + 1
    else
      out[#out + 1] = { s - 1, close_e, "ClaudeTasksCodeSpan" }
      covered[#covered + 1] = { s, close_e }
      pos = close_e + 1
    end
  end
  return covered
end

local function inside(covered, i)
  for k = 1, #covered do
    local c = covered[k]
    if i >= c[1] and i <= c[2] then
      return true
    end
  end
  return false
end

--- Links `[label](target)` and bare http(s) URLs outside code spans.
local function links(line, out, covered)
  local pos = 1
  while true do
    local s, e = find(line, "%[[^%]]-%]%([^%s%)]*%)", pos)
    if not s then
      break
    end
    if not inside(covered, s) then
      local close = find(line, "](", s, true)
      out[#out + 1] = { s - 1, close, "ClaudeTasksLink" }
      out[#out + 1] = { close + 1, e - 1, "ClaudeTasksUrl" }
      covered[#covered + 1] = { s, e }
    end
    pos = e + 1
  end
  pos = 1
  while true do
    local s, e = find(line, "https?://[^%s%)>%]`'\"]+", pos)
    if not s then
      break
    end
    if not inside(covered, s) then
      -- A sentence's last character is not part of the URL.
      local url_end = e - #(sub(line, s, e):match("[%.,;:!%?]*$"))
      out[#out + 1] = { s - 1, url_end, "ClaudeTasksUrl" }
    end
    pos = e + 1
  end
end

--- `**strong**` and `*emphasis*` outside code spans and links: the delimiter touches its text
--- on the inside (`* a *` is not emphasis); underscores are never delimiters, so snake_case
--- and __dunder__ names stay text.
local function stars(line, out, covered)
  local pos = 1
  while true do
    local s, e = find(line, "%*+", pos)
    if not s then
      return
    end
    local n = e - s + 1
    local after = byte(line, e + 1)
    if n > 3 or after == nil or after == SPACE or after == 9 or inside(covered, s) then
      pos = e + 1
    else
      -- The closing run: the same length, right after a non-space.
      local at = e + 1
      local found
      while true do
        local cs, ce = find(line, "%*+", at)
        if not cs then
          break
        end
        local before = byte(line, cs - 1)
        if ce - cs + 1 == n and before ~= SPACE and before ~= 9 and not inside(covered, cs) then
          found = ce
          break
        end
        at = ce + 1
      end
      if not found then
        pos = e + 1
      else
        if n == 1 then
          out[#out + 1] = { s - 1, found, "ClaudeTasksEmphasis" }
        elseif n == 2 then
          out[#out + 1] = { s - 1, found, "ClaudeTasksStrong" }
        else
          out[#out + 1] = { s - 1, found, "ClaudeTasksStrong" }
          out[#out + 1] = { s - 1, found, "ClaudeTasksEmphasis" }
        end
        pos = found + 1
      end
    end
  end
end

local function inline(line, out)
  local url = find(line, "://", 1, true)
  if not url and not find(line, "[`%*%[]") then
    return
  end
  local covered = code_spans(line, out)
  if url or find(line, "[", 1, true) then
    links(line, out, covered)
  end
  if find(line, "*", 1, true) then
    stars(line, out, covered)
  end
end

-- Lines --------------------------------------------------------------------------------------

--- Whether `line` is a thematic break: three or more of one of `-`, `*`, `_`, spaces between.
local function is_rule(line)
  local t = line:gsub("[ \t]", "")
  return #t >= 3 and (find(t, "^%-+$") or find(t, "^%*+$") or find(t, "^_+$")) ~= nil
end

--- The highlight spans of `line` and the fence state after it, given the state before it.
--- Spans are { start_col, end_col, group } (bytes, 0-based, end exclusive), in drawing order:
--- a line's own group first, inline spans after it.
function M.line(line, state)
  local out = {}
  local b = byte(line, 1)
  if b == nil then
    return out, state
  end
  -- Most lines of prose start with a letter, which starts no block: only inline markup.
  if state == nil and (b >= 97 and b <= 122 or b >= 65 and b <= 90) then
    inline(line, out)
    return out, state
  end
  if b == BACKTICK or b == TILDE or b == SPACE then
    local next_state = M.step(state, line)
    if next_state ~= state then
      out[1] = { 0, #line, "ClaudeTasksCodeFence" }
      return out, next_state
    end
  end
  if state then
    out[1] = { 0, #line, "ClaudeTasksCode" }
    return out, state
  end
  if b == 35 then -- #
    local _, e = find(line, "^#+")
    local after = byte(line, e + 1)
    if e <= 6 and (after == nil or after == SPACE or after == 9) then
      out[1] = { 0, #line, "ClaudeTasksHeading" }
    end
  elseif b == 62 then -- >
    out[1] = { 0, #line, "ClaudeTasksQuote" }
  else
    local _, indent = find(line, "^[ \t]*")
    local c = byte(line, indent + 1)
    if (c == 45 or c == STAR or c == 95) and is_rule(line) then
      out[1] = { 0, #line, "ClaudeTasksRule" }
      return out, state
    end
    local _, e = find(line, "^[%-%*%+] ", indent + 1)
    if not e then
      _, e = find(line, "^%d+[%.%)] ", indent + 1)
    end
    if e then
      out[1] = { indent, e - 1, "ClaudeTasksListMarker" }
    end
  end
  inline(line, out)
  return out, state
end

return M
