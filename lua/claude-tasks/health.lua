-- :checkhealth claude-tasks

local M = {}

local health = vim.health

local function run(cmd, timeout)
  local ok, obj = pcall(vim.system, cmd, { text = true })
  if not ok then
    return nil, tostring(obj)
  end
  local res = obj:wait(timeout or 5000)
  if res.signal ~= 0 then
    return nil, "timed out or killed (signal " .. tostring(res.signal) .. ")"
  end
  if res.code ~= 0 then
    return nil,
      vim.trim((res.stderr or "") .. " " .. (res.stdout or "")) .. " (exit code " .. res.code .. ")"
  end
  return vim.trim(res.stdout or "")
end

local function check_neovim()
  local v = vim.version()
  local s = string.format("%d.%d.%d", v.major, v.minor, v.patch)
  if vim.fn.has("nvim-0.10") == 1 then
    health.ok("Neovim " .. s)
  else
    health.error("Neovim " .. s .. " is too old", { "claude-tasks needs Neovim 0.10 or newer" })
  end
end

local function check_options()
  local config = require("claude-tasks.config")
  local err = config.check(config.get())
  if err then
    health.error(err)
  else
    health.ok("options are valid")
  end
end

local function check_backend()
  local backend = require("claude-tasks.backend")
  local bin, err = backend.find_binary()
  if not bin then
    health.error((err:gsub("^claude%-tasks: ", "")))
    return
  end
  health.ok("backend binary: " .. bin)
  local out, verr = run({ bin, "--version" })
  if not out then
    health.error("`" .. bin .. " --version` failed: " .. tostring(verr))
    return
  end
  local version = out:match("^claude%-tasks%s+(%S+)")
  if version == backend.VERSION then
    health.ok("backend version " .. version .. " (same as the plugin)")
  else
    health.error(
      string.format(
        "backend version %s, but the plugin is %s",
        tostring(version or out),
        backend.VERSION
      ),
      { "rebuild it: cd " .. backend.plugin_root() .. " && cargo build --release" }
    )
  end
  local info = backend.info()
  if info then
    health.info("a backend runs in this editor (channel " .. info.job .. ")")
  else
    health.info("no backend runs in this editor yet (it starts on first use)")
  end
end

-- The Claude Code versions the test suite runs on (claude-versions.txt at the plugin's root,
-- the one list the install script and the tests read too), oldest first; nil and why if it
-- cannot be read.
local function tested_versions()
  local path = require("claude-tasks.backend").plugin_root() .. "/claude-versions.txt"
  local f, err = io.open(path, "r")
  if not f then
    return nil, err
  end
  local out = {}
  for line in f:lines() do
    line = vim.trim(line)
    if line ~= "" and not vim.startswith(line, "#") then
      local v = vim.version.parse(line, { strict = true })
      if not v then
        f:close()
        return nil, path .. ": '" .. line .. "' is not a version"
      end
      out[#out + 1] = { text = line, v = v }
    end
  end
  f:close()
  if #out == 0 then
    return nil, path .. ": no versions"
  end
  table.sort(out, function(a, b)
    return vim.version.lt(a.v, b.v)
  end)
  return out
end

-- What `claude --version` printed ("2.1.332 (Claude Code)") against the tested range.
local function check_claude_version(out)
  local tested, err = tested_versions()
  if not tested then
    health.warn("cannot read the tested Claude Code versions: " .. tostring(err))
    return
  end
  local oldest, newest = tested[1], tested[#tested]
  local range = oldest.text == newest.text and oldest.text or (oldest.text .. " to " .. newest.text)
  local install = "install a tested version: npm install -g @anthropic-ai/claude-code@"
    .. newest.text
  local text = out:match("^%s*v?(%d+%.%d+%.%d+)")
  local v = text and vim.version.parse(text, { strict = true })
  if not v then
    health.warn(
      "cannot tell the Claude Code version from `" .. out .. "` (tested: " .. range .. ")",
      { "is option 'cmd' the Claude Code CLI?", install }
    )
  elseif vim.version.lt(v, oldest.v) then
    health.warn(
      "Claude Code " .. text .. " is older than the tested range " .. range,
      { "update it; " .. install }
    )
  elseif vim.version.gt(v, newest.v) then
    health.warn(
      "Claude Code " .. text .. " is newer than the tested range " .. range,
      { "it may well work; if a task misbehaves, " .. install }
    )
  else
    health.ok("Claude Code " .. text .. " is in the tested range " .. range)
  end
end

-- Where a login can come from without `claude auth status` (a CLI without it): the variables
-- the CLI reads for an API key, a token or a cloud provider, and its credentials file.
local AUTH_VARS = {
  "ANTHROPIC_API_KEY",
  "ANTHROPIC_AUTH_TOKEN",
  "CLAUDE_CODE_OAUTH_TOKEN",
  "CLAUDE_CODE_USE_BEDROCK",
  "CLAUDE_CODE_USE_VERTEX",
}

local LOGIN_ADVICE = {
  "log in: run `claude auth login` in a terminal (or `claude`, then /login)",
  "or set ANTHROPIC_API_KEY in the environment Neovim starts from",
}

-- Whether the CLI is logged in, from what it says offline: `claude auth status` prints JSON
-- (`loggedIn`, `authMethod`, `apiKeySource`) and exits 1 when logged out, on 2.1.197 and
-- 2.1.332, without the network. Older CLIs: the variables and the credentials file.
local function check_claude_auth(cmd)
  local full = vim.list_extend(vim.deepcopy(cmd), { "auth", "status", "--json" })
  local ok, obj = pcall(vim.system, full, { text = true })
  local res = ok and obj:wait(10000) or nil
  local status = nil
  if res and res.signal == 0 then
    local decoded_ok, decoded = pcall(vim.json.decode, vim.trim(res.stdout or ""))
    if decoded_ok and type(decoded) == "table" and type(decoded.loggedIn) == "boolean" then
      status = decoded
    end
  end
  if status and status.loggedIn then
    local how = type(status.authMethod) == "string" and status.authMethod or "?"
    if type(status.apiKeySource) == "string" then
      how = how .. " from " .. status.apiKeySource
    end
    health.ok("Claude Code is logged in (" .. how .. ")")
    return
  elseif status then
    health.warn(
      "Claude Code is not logged in (`" .. table.concat(full, " ") .. "`): every task will fail",
      LOGIN_ADVICE
    )
    return
  end
  for _, var in ipairs(AUTH_VARS) do
    if (vim.env[var] or "") ~= "" then
      health.ok("Claude Code credentials: $" .. var .. " is set")
      return
    end
  end
  local config_dir = vim.env.CLAUDE_CONFIG_DIR or (vim.env.HOME or "~") .. "/.claude"
  local credentials = config_dir .. "/.credentials.json"
  if vim.fn.filereadable(credentials) == 1 then
    health.ok("Claude Code credentials: " .. credentials)
    return
  end
  health.warn(
    "cannot tell whether Claude Code is logged in: `"
      .. table.concat(full, " ")
      .. "` did not say, no "
      .. credentials
      .. " and none of $"
      .. table.concat(AUTH_VARS, ", $")
      .. " is set",
    LOGIN_ADVICE
  )
end

local function check_claude()
  local config = require("claude-tasks.config")
  local cmd = config.cmd_list()
  local exe = cmd[1]
  if vim.fn.executable(exe) == 0 then
    health.error(
      "`" .. exe .. "` (option 'cmd') not found",
      { "install Claude Code: npm install -g @anthropic-ai/claude-code", "or set option 'cmd'" }
    )
    return
  end
  health.ok("`" .. exe .. "` found: " .. vim.fn.exepath(exe))
  local full = vim.list_extend(vim.deepcopy(cmd), { "--version" })
  local out, err = run(full, 10000)
  if out then
    health.ok("`" .. table.concat(full, " ") .. "`: " .. out)
    check_claude_version(out)
    check_claude_auth(cmd)
  else
    health.warn("`" .. table.concat(full, " ") .. "` failed: " .. tostring(err))
  end
end

--- Worktree tasks (`:ClaudeTask!`, isolation = "worktree") run git: an error when they are the
--- default and there is none, a warning otherwise.
local function check_git()
  local out, err = run({ "git", "--version" })
  if out then
    health.ok(out .. " (for worktree tasks)")
    return
  end
  local msg = "git cannot be run (" .. tostring(err) .. "): worktree tasks (:ClaudeTask!) need it"
  if require("claude-tasks.config").get().isolation == "worktree" then
    health.error(msg, { 'install git, or set isolation = "none"' })
  else
    health.warn(msg)
  end
end

local function check_writable(what, dir)
  if vim.fn.mkdir(dir, "p") == 0 and vim.fn.isdirectory(dir) == 0 then
    health.error(what .. " " .. dir .. " cannot be created")
    return
  end
  local probe = dir .. "/.claude-tasks-health-" .. vim.fn.getpid()
  local f = io.open(probe, "w")
  if f then
    f:close()
    os.remove(probe)
    health.ok(what .. " " .. dir .. " is writable")
  else
    health.error(what .. " " .. dir .. " is not writable")
  end
end

function M.check()
  health.start("claude-tasks")
  check_neovim()
  check_options()
  check_backend()
  check_claude()
  check_git()
  local config = require("claude-tasks.config")
  check_writable("state directory", config.state_dir())
  check_writable("log directory", vim.fn.fnamemodify(config.log_file(), ":h"))
end

return M
