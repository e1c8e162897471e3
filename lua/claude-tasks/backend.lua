-- The Rust backend: found, started on first use, version-checked, configured, and restarted on
-- the next call after an unexpected exit. Every call goes through `request`, which raises a Lua
-- error with a clean one-line message (no "Vim:Error invoking ..." noise) on failure.

local M = {}

--- The plugin's version; the backend must report the same one.
M.VERSION = "0.1.0"

local uv = vim.uv or vim.loop

--- The running backend: { job = channel id, bin = path, ready = bool } or nil.
local current = nil
--- Jobs we stopped on purpose (no "exited unexpectedly" message for them).
local expected_exit = {}
--- Jobs started by the automatic restart after a crash: job -> uv.now() at start.
local auto_started = {}

--- Calls `module[fn]()` if that module is loaded: nothing to tell a module nobody used yet.
local function if_loaded(module, fn)
  local mod = package.loaded[module]
  if mod then
    mod[fn]()
  end
end

--- The backend is gone: cached task states and buffer views belonged to it.
local function forget_backend()
  if_loaded("claude-tasks.state", "backend_gone")
  if_loaded("claude-tasks.buffer", "backend_gone")
end

--- The plugin's root directory (the one holding lua/, plugin/, target/).
function M.plugin_root()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  src = uv.fs_realpath(src) or src
  return vim.fn.fnamemodify(src, ":h:h:h")
end

local function executable(path)
  return vim.fn.executable(path) == 1 and vim.fn.isdirectory(path) == 0
end

local function build_hint(root)
  return string.format("build it with: cd %s && cargo build --release", vim.fn.shellescape(root))
end

--- The backend binary: the `binary` option, else target/release, else target/debug.
--- Returns the path, or nil and an error message saying how to build it.
function M.find_binary()
  local opts = require("claude-tasks.config").get()
  local root = M.plugin_root()
  if opts.binary then
    local path = vim.fn.expand(opts.binary)
    if executable(path) then
      return path
    end
    return nil,
      string.format(
        "claude-tasks: option 'binary' is %s, which is not an executable file; %s",
        path,
        build_hint(root)
      )
  end
  local release = root .. "/target/release/claude-tasks"
  local debug_ = root .. "/target/debug/claude-tasks"
  if executable(release) then
    return release
  elseif executable(debug_) then
    return debug_
  end
  return nil,
    string.format(
      "claude-tasks: backend binary not found (looked for %s and %s); %s",
      release,
      debug_,
      build_hint(root)
    )
end

--- Turns an error raised by rpcrequest (or anything else) into one clean line.
function M.clean_error(err)
  local msg = type(err) == "string" and err or vim.inspect(err)
  -- "Vim:Error invoking 'start' on channel 3 (claude-tasks):\nstart: 'prompt' must be ..."
  msg = msg:gsub("^.-Error invoking '[^']*' on channel %d+[^:\n]*:%s*", "")
  msg = msg:gsub("^Vim%(%w+%):", ""):gsub("^Vim:", "")
  -- Errors sent as [code, message] arrive stringified by some versions.
  msg = msg:gsub('^%[%s*%d+,%s*"(.*)"%s*%]$', "%1")
  msg = vim.trim(msg)
  if not msg:match("^claude%-tasks:") then
    msg = "claude-tasks: " .. msg
  end
  return msg
end

local function append_log(data)
  local path = require("claude-tasks.config").log_file()
  local f = io.open(path, "a")
  if f then
    f:write(table.concat(data, "\n"))
    f:close()
  end
end

local function on_exit(job, code)
  local auto = auto_started[job]
  auto_started[job] = nil
  local was_current = current and current.job == job
  if was_current then
    current = nil
  end
  if expected_exit[job] then
    expected_exit[job] = nil
    return
  end
  if not was_current then
    return
  end
  forget_backend()
  if vim.v.exiting ~= vim.NIL then
    return
  end
  -- Hardening fix: with an output buffer open, start a new backend at once (it re-attaches the
  -- buffers and re-adopts the running tasks) instead of leaving the buffer frozen until the next
  -- command. Not again for a backend that was itself auto-started less than 10 s ago, so a
  -- backend that crashes at start-up cannot loop.
  local buffer = package.loaded["claude-tasks.buffer"]
  local restart = buffer ~= nil and buffer.has_loaded() and not (auto and uv.now() - auto < 10000)
  vim.schedule(function()
    require("claude-tasks.notify").notify(
      string.format(
        "claude-tasks: the backend exited unexpectedly (exit code %d); see %s. %s",
        code,
        require("claude-tasks.config").log_file(),
        restart and "Restarting it for the open output buffers."
          or "A new one starts on the next command."
      ),
      vim.log.levels.ERROR
    )
    if restart and current == nil then
      local ok, job2 = pcall(M.ensure)
      if ok then
        auto_started[job2] = uv.now()
      else
        require("claude-tasks.notify").notify(M.clean_error(job2), vim.log.levels.ERROR)
      end
    end
  end)
end

local function stop_job(job)
  expected_exit[job] = true
  pcall(vim.fn.jobstop, job)
end

--- The options the backend applies to every task (the `configure` request).
local function configure_args()
  local config = require("claude-tasks.config")
  local o = config.get()
  local args = {}
  for _, key in ipairs(config.backend_options) do
    args[key] = o[key]
  end
  -- "ask" is the plugin's: it asks before Neovim quits (exit.lua) and tells the backend the
  -- answer; a Neovim that goes away without asking cancels.
  if args.on_exit == "ask" then
    args.on_exit = "cancel"
  end
  return args
end

local function start()
  local config = require("claude-tasks.config")
  local bin, err = M.find_binary()
  if not bin then
    error(err, 0)
  end
  local state_dir, log_file = config.state_dir(), config.log_file()
  vim.fn.mkdir(state_dir, "p")
  vim.fn.mkdir(vim.fn.fnamemodify(log_file, ":h"), "p")
  local ok, job = pcall(
    vim.fn.jobstart,
    { bin, "--state-dir", state_dir, "--log-file", log_file, "--nice", tostring(config.get().nice) },
    {
      rpc = true,
      on_stderr = function(_, data)
        append_log(data)
      end,
      on_exit = function(j, code)
        on_exit(j, code)
      end,
    }
  )
  if not ok or type(job) ~= "number" or job <= 0 then
    error(string.format("claude-tasks: cannot start the backend %s: %s", bin, tostring(job)), 0)
  end
  current = { job = job, bin = bin, ready = false }

  local vok, version = pcall(vim.fn.rpcrequest, job, "version")
  if not vok or version ~= M.VERSION then
    stop_job(job)
    current = nil
    if not vok then
      error(
        string.format(
          "claude-tasks: the backend %s did not answer 'version' (%s); see %s; %s",
          bin,
          M.clean_error(version):gsub("^claude%-tasks: ", ""),
          log_file,
          build_hint(M.plugin_root())
        ),
        0
      )
    end
    error(
      string.format(
        "claude-tasks: the backend %s is version %s but the plugin is %s; rebuild it: %s",
        bin,
        vim.inspect(version),
        M.VERSION,
        build_hint(M.plugin_root()):gsub("^build it with: ", "")
      ),
      0
    )
  end
  local cok, cerr = pcall(vim.fn.rpcrequest, job, "configure", configure_args())
  if not cok then
    stop_job(job)
    current = nil
    error(M.clean_error(cerr), 0)
  end
  current.ready = true
  -- The new backend learns which files have unsaved changes (and follows them from now on).
  require("claude-tasks.unsaved").setup()

  -- After a crash: views and cached states belong to the old backend.
  if_loaded("claude-tasks.buffer", "reattach_all")
  if_loaded("claude-tasks.state", "refresh_from_backend")
  return job
end

--- The channel of a ready backend, starting one if needed. Raises a clean error.
function M.ensure()
  if current then
    return current.job
  end
  return start()
end

--- Whether a backend is running (never starts one).
function M.running()
  return current ~= nil and current.ready
end

--- Information about the running backend, or nil: { job, bin }.
function M.info()
  return current and { job = current.job, bin = current.bin } or nil
end

--- Sends a request; returns its result or raises an error with a clean message.
--- `args` is the single map argument of doc/protocol.md.
function M.request(method, args)
  local chan = M.ensure()
  local ok, res = pcall(vim.fn.rpcrequest, chan, method, args or vim.empty_dict())
  if not ok then
    error(M.clean_error(res), 0)
  end
  return res
end

--- The same, for callers that report errors themselves: its result, or nil and the clean
--- one-line error.
function M.try(method, args)
  local ok, res = pcall(M.request, method, args)
  if not ok then
    return nil, M.clean_error(res)
  end
  return res
end

--- Sends `configure` if a backend runs (called after setup()).
function M.configure()
  if M.running() then
    M.request("configure", configure_args())
  end
end

--- Stops the backend on purpose (tests, :ClaudeTasks never needs it).
function M.stop()
  if current then
    local job = current.job
    current = nil
    stop_job(job)
    vim.fn.jobwait({ job }, 2000)
    forget_backend()
  end
end

return M
