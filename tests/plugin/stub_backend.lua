-- Replaces require("claude-tasks.backend").request with an in-memory stand-in that records
-- every call in _G.__calls. Tasks live in _G.__tasks (newest first). dofile() it in the child.
local b = require("claude-tasks.backend")
_G.__calls = {}
_G.__tasks = {}

local function now()
  local s, us = vim.uv.gettimeofday()
  return s * 1000 + math.floor(us / 1000)
end

local function find(args)
  for _, t in ipairs(_G.__tasks) do
    if t.id == args.id and t.cwd == (args.cwd or vim.fn.getcwd()) then
      return t
    end
  end
  error(
    string.format(
      "Vim:Error invoking 'x' on channel 9:\nno task %s in %s",
      tostring(args.id),
      tostring(args.cwd)
    ),
    0
  )
end

--- Adds a task record directly.
function _G.__add_task(t)
  t.cwd = t.cwd or vim.fn.getcwd()
  t.status = t.status or "running"
  t.name = t.name or ("task " .. t.id)
  t.session_id = t.session_id or ("sid-" .. t.id)
  t.created_at_ms = t.created_at_ms or (now() - 1000 * (100 - t.id))
  t.started_at_ms = t.started_at_ms or t.created_at_ms
  t.transcript = t.transcript or (vim.fn.tempname() .. ".jsonl")
  table.insert(_G.__tasks, 1, t)
  table.sort(_G.__tasks, function(a, c)
    return a.created_at_ms > c.created_at_ms
  end)
  return t
end

function _G.__calls_of(method)
  local out = {}
  for _, c in ipairs(_G.__calls) do
    if c.method == method then
      out[#out + 1] = c.args
    end
  end
  return out
end

b.running = function()
  return true
end

b.request = function(method, args)
  table.insert(_G.__calls, { method = method, args = args })
  if method == "start" then
    local n = 0
    for _, t in ipairs(_G.__tasks) do
      if t.cwd == args.cwd then
        n = math.max(n, t.id)
      end
    end
    return _G.__add_task({
      id = n + 1,
      cwd = args.cwd,
      name = args.name or args.prompt:match("[^\n]*"),
    })
  elseif method == "list" then
    local out = {}
    for _, t in ipairs(_G.__tasks) do
      if args.all or t.cwd == (args.cwd or vim.fn.getcwd()) then
        out[#out + 1] = t
      end
    end
    return out
  elseif method == "get" then
    return find(args)
  elseif method == "cancel" then
    local t = find(args)
    t.status = "cancelled"
    return t
  elseif method == "resume" then
    local t = find(args)
    t.status = "running"
    return t
  elseif method == "interrupt" then
    local t = find(args)
    if t.status ~= "running" then
      error("interrupt: task " .. t.id .. " is not running (it is " .. t.status .. ")", 0)
    end
    return t
  elseif method == "dispose" then
    local t = find(args)
    for i, x in ipairs(_G.__tasks) do
      if x == t then
        table.remove(_G.__tasks, i)
        break
      end
    end
    return true
  elseif method == "attach" or method == "detach" or method == "configure" then
    return true
  end
  error("unknown method '" .. method .. "'", 0)
end
