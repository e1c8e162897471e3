-- The context a range adds to a prompt: the file's path relative to the cwd, the line numbers
-- and the lines themselves in a fenced block; and its short name for the output's header.

local M = {}

--- `prompt` followed by lines `line1`..`line2` (1-based, inclusive) of `buf`:
---
---   {prompt}
---
---   Context: lua/foo.lua lines 10-20:
---   ```lua
---   ...
---   ```
---
--- Returns the prompt and the context's short name ("lua/foo.lua:10-20").
function M.add(prompt, buf, line1, line2)
  buf = (buf == nil or buf == 0) and vim.api.nvim_get_current_buf() or buf
  if line1 > line2 then
    line1, line2 = line2, line1
  end
  local lines = vim.api.nvim_buf_get_lines(buf, line1 - 1, line2, false)
  local text = table.concat(lines, "\n")
  local name = vim.api.nvim_buf_get_name(buf)
  local path = name ~= "" and vim.fn.fnamemodify(name, ":.") or "[No Name]"
  local where = line1 == line2 and ("line " .. line1) or string.format("lines %d-%d", line1, line2)
  -- A fence longer than any run of backticks in the text.
  local longest = 0
  for run in text:gmatch("`+") do
    longest = math.max(longest, #run)
  end
  local fence = string.rep("`", math.max(3, longest + 1))
  local ft = vim.bo[buf].filetype
  local short = path .. ":" .. (line1 == line2 and tostring(line1) or (line1 .. "-" .. line2))
  return string.format(
    "%s\n\nContext: %s %s:\n%s%s\n%s\n%s",
    prompt,
    path,
    where,
    fence,
    ft,
    text,
    fence
  ),
    short
end

return M
