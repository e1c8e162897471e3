-- Claude's own TUI on a task's session (`:ClaudeTasks tui`), for what the output buffer cannot
-- do: `claude --resume <session>` in a terminal split, in the directory the task runs in. The
-- backend refuses a running task and closes an idle live Claude first, so the next follow-up
-- resumes the session with what was said in the TUI.

local M = {}

local api = vim.api

--- Terminal jobs by task key.
local jobs = {}

local function key_of(t)
  return tostring(t.cwd) .. "\0" .. tostring(t.id)
end

--- Whether a TUI opened from here on `task`'s session still runs.
function M.is_open(task)
  local job = jobs[key_of(task)]
  return job ~= nil and vim.fn.jobwait({ job }, 0)[1] == -1
end

--- The program of `task` (its `cmd` option's first word) when it cannot be run, else nil.
local function missing_program(cmd)
  local program = type(cmd) == "table" and cmd[1] or nil
  if type(program) ~= "string" or program == "" then
    program = "claude"
  end
  if vim.fn.executable(program) == 1 then
    return nil
  end
  return program
end

--- Opens the TUI; returns the terminal buffer, or nil and an error.
function M.open(ref)
  local t, err = require("claude-tasks.resolve").one(ref)
  if not t then
    return nil, err
  end
  if M.is_open(t) then
    return nil, string.format("claude-tasks: Claude's TUI is already open on #%s", tostring(t.id))
  end
  local backend = require("claude-tasks.backend")
  local ok, rec = pcall(backend.request, "get", { id = t.id, cwd = t.cwd })
  if not ok then
    return nil, backend.clean_error(rec)
  end
  -- Checked before the backend closes an idle Claude for it.
  local options = rec.options ~= vim.NIL and rec.options or {}
  local program = missing_program(options.cmd)
  if program then
    return nil,
      string.format(
        "claude-tasks: cannot open Claude's TUI: '%s' is not executable or not on PATH (set the `cmd` option)",
        program
      )
  end
  local ok2, res = pcall(backend.request, "tui", { id = t.id, cwd = t.cwd })
  if not ok2 then
    return nil, backend.clean_error(res)
  end
  require("claude-tasks.state").refresh({ res.task })
  local buf = api.nvim_create_buf(true, false)
  local split = vim.o.splitbelow and "below" or "above"
  local win = api.nvim_open_win(buf, true, { split = split, win = 0 })
  local job
  local term_opts = {
    cwd = res.cwd,
    on_exit = function()
      jobs[key_of(t)] = nil
    end,
  }
  local started, e = pcall(function()
    if vim.fn.has("nvim-0.11") == 1 then
      term_opts.term = true
      job = vim.fn.jobstart(res.argv, term_opts)
    else
      job = vim.fn.termopen(res.argv, term_opts)
    end
  end)
  if not started or not job or job <= 0 then
    pcall(api.nvim_win_close, win, true)
    pcall(api.nvim_buf_delete, buf, { force = true })
    return nil,
      string.format("claude-tasks: cannot start Claude's TUI: %s", tostring(e or res.argv[1]))
  end
  jobs[key_of(t)] = job
  pcall(api.nvim_buf_set_name, buf, string.format("claude #%d tui", t.id))
  -- Not b:claude_task: that names a task's output buffer.
  vim.b[buf].claude_task_tui = { id = t.id, cwd = t.cwd }
  vim.cmd.startinsert()
  return buf
end

return M
