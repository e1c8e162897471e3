-- Small pure helpers shared by the picker, the notifications and the commands.

local M = {}

--- Values from RPC map msgpack nil to vim.NIL; this maps it back to nil.
function M.nn(v)
  if v == vim.NIL then
    return nil
  end
  return v
end

--- Milliseconds since the Unix epoch.
function M.now_ms()
  local sec, usec = (vim.uv or vim.loop).gettimeofday()
  return sec * 1000 + math.floor(usec / 1000)
end

--- "42.1s", "3m 05s", "1h 02m" (the backend's footer uses the same format).
function M.duration(ms)
  ms = tonumber(M.nn(ms))
  if not ms or ms < 0 then
    return "-"
  end
  if ms < 60000 then
    return string.format("%.1fs", ms / 1000)
  elseif ms < 3600000 then
    return string.format("%dm %02ds", math.floor(ms / 60000), math.floor(ms / 1000) % 60)
  end
  return string.format("%dh %02dm", math.floor(ms / 3600000), math.floor(ms / 60000) % 60)
end

--- How long the task has run (running), waited (queued) or ran (finished), in ms.
function M.elapsed_ms(task, now)
  local nn = M.nn
  now = now or M.now_ms()
  local status = task.status
  if status == "queued" then
    local created = nn(task.created_at_ms)
    return created and math.max(0, now - created) or nil
  elseif status == "running" then
    local started = nn(task.started_at_ms) or nn(task.created_at_ms)
    local before = 0
    -- duration_ms sums the runs that already ended; add the current run's time so far.
    local runs = nn(task.runs)
    if type(runs) == "table" and #runs > 1 then
      local last = runs[#runs]
      started = nn(last.started_at_ms) or started
      before = nn(task.duration_ms) or 0
    end
    return started and (before + math.max(0, now - started)) or nil
  end
  local d = nn(task.duration_ms)
  if d then
    return d
  end
  local s, e = nn(task.started_at_ms), nn(task.ended_at_ms)
  return (s and e) and math.max(0, e - s) or nil
end

--- A project directory as shown to the user: relative to the cwd or to ~.
function M.dir(cwd)
  return vim.fn.fnamemodify(cwd, ":~:.")
end

--- "⎇ claude-tasks/3" for a worktree task ("(discarded)" after), nil for a task run in place.
function M.branch(task)
  local wt = M.nn(task.worktree)
  if type(wt) ~= "table" then
    return nil
  end
  local s = "⎇ " .. tostring(M.nn(wt.branch))
  if M.nn(wt.discarded_at_ms) then
    s = s .. " (discarded)"
  end
  return s
end

--- Whether the task's Claude idles, kept alive for a follow-up (`keep_alive_ms`).
function M.idle(task)
  return type(M.nn(task.live)) == "table" and task.status ~= "running" and task.status ~= "queued"
end

--- The status shown for a task: its record's, or "idle" when its run is over and its Claude
--- is kept alive for the next message (the record keeps the run's outcome).
function M.status(task)
  return M.idle(task) and "idle" or tostring(task.status)
end

--- The picker entry of a task: "#3 running    12.3s fix the test · ~/proj" ("idle" when its
--- run is over and its Claude is kept alive), and
--- " · ⎇ claude-tasks/3" for a worktree task; a task waiting for an answer:
--- "#3 ? waiting  12.3s fix the test · ~/proj · Bash(npm test)".
function M.entry(task, now)
  local elapsed = M.elapsed_ms(task, now)
  local branch = M.branch(task)
  local permissions = require("claude-tasks.permissions")
  local status, asks = M.status(task), ""
  local req = permissions.waiting(task) and permissions.pending(task)[1]
  if req then
    status, asks = "? waiting", " · " .. permissions.title(req)
  end
  return string.format(
    "#%s %-11s %7s %s · %s%s",
    tostring(task.id),
    status,
    elapsed and M.duration(elapsed) or "-",
    tostring(M.nn(task.name) or ""),
    M.dir(task.cwd),
    (branch and (" · " .. branch) or "") .. asks
  )
end

--- "#3 fix the test" (with the project when it is not the current directory).
function M.label(task)
  local s = string.format("#%s %s", tostring(task.id), tostring(M.nn(task.name) or ""))
  if task.cwd and task.cwd ~= vim.fn.getcwd() then
    s = s .. " (" .. M.dir(task.cwd) .. ")"
  end
  return s
end

--- "$0.0312", or nil when there is no cost.
function M.cost(task)
  local c = tonumber(M.nn(task.cost_usd))
  if c and c > 0 then
    return string.format("$%.4f", c)
  end
end

--- How long ago `ms` (epoch ms) was: "now", "42s ago", "5m ago", "3h ago", "2d ago".
function M.age(ms, now)
  ms = tonumber(M.nn(ms))
  if not ms then
    return "-"
  end
  local s = math.floor(math.max(0, (now or M.now_ms()) - ms) / 1000)
  if s < 5 then
    return "now"
  elseif s < 60 then
    return s .. "s ago"
  elseif s < 3600 then
    return math.floor(s / 60) .. "m ago"
  elseif s < 86400 then
    return math.floor(s / 3600) .. "h ago"
  end
  return math.floor(s / 86400) .. "d ago"
end

return M
