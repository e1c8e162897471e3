-- The tasks an earlier editor left running (on_exit = "detach", or it died), known at setup()
-- from one small file the backend writes as it leaves them (store/detached.rs), so the
-- statusline shows them from the first redraw: no record is read and no backend is started on
-- the way. Each task's process is checked to be the same one still (pid and start time). A
-- backend is then started once the editor is up, which adopts the tasks; its events keep the
-- cache right from there.

local M = {}

local uv = vim.uv or vim.loop

--- The start time (field 22 of /proc/<pid>/stat) of process `pid`, or nil when it is gone.
local function start_time(pid)
  local f = io.open("/proc/" .. tostring(pid) .. "/stat", "r")
  if not f then
    return nil
  end
  local stat = f:read("*l")
  f:close()
  -- After the command name, which may hold spaces and parentheses: fields 3, 4, ...
  local rest = stat and stat:match("^.*%)%s+(.*)$")
  if not rest then
    return nil
  end
  local i = 3
  for field in rest:gmatch("%S+") do
    if i == 22 then
      return tonumber(field)
    end
    i = i + 1
  end
end

--- Whether the task's process is the one the file names (a reused pid is another process).
function M.alive(t)
  local pid, started = tonumber(t.pid), tonumber(t.start_time)
  return pid ~= nil and pid > 0 and started ~= nil and start_time(pid) == started
end

--- The tasks of `path` (detached.json) whose process lives, as records for the cache.
function M.read(path)
  local f = io.open(path, "r")
  if not f then
    return {}
  end
  local text = f:read("*a")
  f:close()
  local ok, data = pcall(vim.json.decode, text)
  if not ok or type(data) ~= "table" or type(data.tasks) ~= "table" then
    return {}
  end
  local out = {}
  for _, t in ipairs(data.tasks) do
    if type(t) == "table" and type(t.cwd) == "string" and tonumber(t.id) and M.alive(t) then
      out[#out + 1] = {
        id = tonumber(t.id),
        cwd = t.cwd,
        name = type(t.name) == "string" and t.name or "",
        status = "running",
        created_at_ms = tonumber(t.created_at_ms),
        started_at_ms = tonumber(t.started_at_ms),
        detached = true,
      }
    end
  end
  return out
end

local loaded = false

--- Starts a backend once the editor is up (it adopts the tasks); not during startup.
local function adopt_soon()
  local function start()
    vim.defer_fn(function()
      local backend = require("claude-tasks.backend")
      if not backend.running() then
        local ok, err = pcall(backend.ensure)
        if not ok then
          require("claude-tasks.notify").notify(backend.clean_error(err), vim.log.levels.ERROR)
        end
      end
    end, 100)
  end
  if vim.v.vim_did_enter == 1 then
    start()
  else
    vim.api.nvim_create_autocmd("VimEnter", { once = true, callback = start })
  end
end

--- At the first setup(): puts the tasks left running in the cache. Cheap when there are none
--- (one failed open).
function M.load()
  if loaded then
    return
  end
  loaded = true
  local backend = package.loaded["claude-tasks.backend"]
  if backend and backend.running() then
    return
  end
  local path = require("claude-tasks.config").state_dir() .. "/detached.json"
  if not uv.fs_stat(path) then
    return
  end
  local tasks = M.read(path)
  if #tasks == 0 then
    return
  end
  local state = require("claude-tasks.state")
  for _, t in ipairs(tasks) do
    if not state.get(t.cwd, t.id) then
      state.put(t)
    end
  end
  adopt_soon()
end

return M
