-- The permissions group of bench/bench.py: a task whose CLI (fake-claude) asks for every tool
-- call. Each request is answered once both its `User ClaudeTaskPermission` has fired and its
-- header is in the visible output window; the times are vim.uv.hrtime(), the same clock
-- (CLOCK_MONOTONIC) as fake-claude's --fake-control-log, so the driver can subtract them.
local api = vim.api
local hrtime = (vim.uv or vim.loop).hrtime

local P = { fired = {}, drawn = {}, answered = {}, errors = {}, done = false }
_G.BP = P

local function try_answer(tag)
  local r = P.fired[tag]
  if not r or not P.drawn[tag] or P.answered[tag] then
    return
  end
  P.answered[tag] = hrtime()
  local ok, err = require("claude-tasks").allow(r.id, { request_id = r.request_id })
  if not ok then
    table.insert(P.errors, tostring(err))
  end
end

--- Starts the task (setup() done by the driver, `open = "split"`), follows its buffer.
function P.start(prompt)
  api.nvim_create_autocmd("User", {
    pattern = "ClaudeTaskPermission",
    callback = function(ev)
      local t = hrtime()
      local tag = ev.data.request_id:sub(1, 8)
      P.fired[tag] = { t = t, id = ev.data.id, request_id = ev.data.request_id }
      try_answer(tag)
    end,
  })
  api.nvim_create_autocmd("User", {
    pattern = "ClaudeTaskDone",
    callback = function(ev)
      P.done = true
      P.status = ev.data.status
    end,
  })
  local ct = require("claude-tasks")
  local id, err = ct.start(prompt, {})
  if not id then
    P.errors[#P.errors + 1] = err
    P.done = true
    return false
  end
  local buf = require("claude-tasks.buffer").find(id, vim.fn.getcwd()) or -1
  P.visible = vim.fn.bufwinid(buf) ~= -1
  api.nvim_buf_attach(buf, false, {
    on_lines = function(_, b, _, first, _, new_last)
      local t = hrtime()
      for _, l in ipairs(api.nvim_buf_get_lines(b, first, new_last, false)) do
        local tag = l:match("^%? .*%[(%x%x%x%x%x%x%x%x)%]$")
        if tag and not P.drawn[tag] then
          P.drawn[tag] = t
          -- Not from inside on_lines (the buffer is being changed).
          vim.schedule(function()
            try_answer(tag)
          end)
        end
      end
    end,
  })
  return true
end

function P.result()
  local out = {}
  for tag, r in pairs(P.fired) do
    out[tag] = { fired = r.t, drawn = P.drawn[tag], answered = P.answered[tag] }
  end
  return { done = P.done, status = P.status, errors = P.errors, visible = P.visible, by_tag = out }
end

return P
