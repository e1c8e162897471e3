-- The followup group of bench/bench.py: follow-ups to one task, each timed from the call of
-- say() (what the prompt line's send does) to the first line of its answer drawn in the visible
-- output window (a decoration provider's on_line, during the redraw). The times are
-- vim.uv.hrtime(), the same clock (CLOCK_MONOTONIC) as the mock's request log, so the driver can
-- also subtract the moment the CLI's request reached the mock.
local api = vim.api
local hrtime = (vim.uv or vim.loop).hrtime

--- The first line of every answer of the mock's `hello` scenario.
local FIRST = "Hello from the mock Anthropic server!"

local F = { sent = {}, drawn = {}, done = 0, errors = {} }
_G.BF = F

--- Starts the task (setup() done by the driver, `open = "split"`) and watches its window.
function F.start(prompt)
  api.nvim_create_autocmd("User", {
    pattern = "ClaudeTaskDone",
    callback = function(ev)
      F.done = F.done + 1
      F.status = ev.data.status
    end,
  })
  local id, err = require("claude-tasks").start(prompt, {})
  if not id then
    F.errors[#F.errors + 1] = err
    return false
  end
  F.id = id
  local buf = require("claude-tasks.buffer").find(id, vim.fn.getcwd()) or -1
  F.visible = vim.fn.bufwinid(buf) ~= -1
  -- Each answer's first line lands on a row of its own, below the one before: the n-th row
  -- (in order) that shows it is the n-th answer.
  api.nvim_set_decoration_provider(api.nvim_create_namespace("bench.followup"), {
    on_win = function(_, _, b)
      return b == buf
    end,
    on_line = function(_, _, b, row)
      if F.drawn[row] then
        return
      end
      local l = api.nvim_buf_get_lines(b, row, row + 1, false)[1]
      if l == FIRST then
        F.drawn[row] = hrtime()
      end
    end,
  })
  return true
end

--- Says `text` to the task, as the prompt window's send does.
function F.say(text)
  F.sent[#F.sent + 1] = hrtime()
  local _, err = require("claude-tasks").say(F.id, text)
  if err then
    F.errors[#F.errors + 1] = err
  end
end

function F.result()
  local rows = vim.tbl_keys(F.drawn)
  table.sort(rows)
  local drawn = {}
  for i, r in ipairs(rows) do
    drawn[i] = F.drawn[r]
  end
  local t = require("claude-tasks").get(F.id) or {}
  local pids = {}
  for i, run in ipairs(type(t.runs) == "table" and t.runs or {}) do
    pids[i] = run.via
  end
  return {
    done = F.done,
    status = F.status,
    errors = F.errors,
    visible = F.visible,
    sent = F.sent,
    drawn = drawn,
    via = pids,
  }
end

return F
