-- Options: defaults, validation and the current values.
--
-- `setup(opts)` validates everything before changing anything: a wrong option is an error naming
-- the key and what it expected, an unknown key is an error too (typo protection).

local M = {}

--- The defaults (`:help claude-tasks-options` says more about each). `state_dir`, `log_file`
--- and `binary` are resolved when read (see `state_dir()`, `log_file()`, backend.find_binary).
local function defaults()
  return {
    -- The Claude Code program: a string, or a list with leading arguments
    -- ({ "npx", "@anthropic-ai/claude-code" }).
    cmd = "claude",
    -- Extra CLI arguments, before the plugin's own.
    args = {},
    -- `--model` for new tasks; nil: the CLI's default.
    model = nil,
    -- `--permission-mode`: one the tested CLIs document (see PERMISSION_MODES); another
    -- well-formed name is passed on with a warning, for a newer CLI. What it does not allow is
    -- asked in the editor (see `permissions`).
    permission_mode = "acceptEdits",
    -- `--allowedTools`, e.g. { "Bash(npm test:*)", "Edit" }.
    allowed_tools = {},
    -- What happens to a permission request no rule allows: "ask" (it waits for your answer in
    -- the editor) or "deny" (denied at once, for a run nobody watches).
    permissions = "ask",
    -- How a new task's output is shown: "split", "vsplit", "tab", "float", or false (not shown).
    open = "split",
    -- Whether the cursor goes to a new task's output window (false: you stay where you are,
    -- the window opens beside you).
    focus = false,
    -- One output window for the newest task: a new task (or a follow-up) is shown in the
    -- output window shown last, instead of a new split, tab or float each time.
    reuse_window = true,
    -- The float of `open = "float"`: width and height as a fraction of the editor (0-1) or in
    -- cells (> 1); border as for nvim_open_win().
    float = {
      width = 0.6,
      height = 0.6,
      border = "rounded",
    },
    -- Ask before cancelling a running task and before disposing of a task (the output
    -- buffer's <C-c>, the task list, the picker, :ClaudeTasks cancel / dispose).
    confirm = true,
    -- The output buffers' 'filetype'. "claude-tasks": the plugin highlights the markdown of what
    -- the windows show, at the same cost however long the output; "markdown" (or another)
    -- hands them to that filetype's syntax, treesitter and plugins (slow on long outputs).
    filetype = "claude-tasks",
    -- vim.notify() when a task ends.
    notify = true,
    -- Several tasks in one directory: "queue" (one at a time), "reject" or "parallel".
    concurrency = "queue",
    -- Most tasks running at once, across projects; more wait as queued.
    max_running = 4,
    -- Where new tasks run: "none" (in the project's files) or "worktree" (each in a git
    -- worktree of its own; :ClaudeTask! starts one whatever this says).
    isolation = "none",
    -- A worktree task's branch: this, then its id (claude-tasks/3).
    branch_prefix = "claude-tasks/",
    -- What :ClaudeTasks apply does: "files" (merge into the files) or "commit" (and commit).
    apply = "files",
    -- Running tasks when Neovim exits: "cancel" (says which), "detach" (they go on; the next
    -- editor adopts them) or "ask" (asks which, or to stay).
    on_exit = "cancel",
    -- A cancelled task's time after SIGINT before SIGTERM, and after SIGTERM before SIGKILL.
    cancel_grace_ms = 2000,
    -- CPU niceness of the backend and every task it runs (0-19), so the editor stays smooth.
    nice = 10,
    -- Task records and transcripts; nil: stdpath("state") .. "/claude-tasks".
    state_dir = nil,
    -- The backend's log; nil: stdpath("log") .. "/claude-tasks.log".
    log_file = nil,
    -- The backend executable; nil: target/release (else target/debug) in the plugin's directory.
    binary = nil,
    -- Finished tasks kept per project; older ones are disposed (not worktree tasks whose
    -- worktree is still there).
    keep = 100,
    -- Also write a finished task's output to <cwd>/.claude-tasks/task-<id>-output.md.
    export_markdown = false,
    -- Record what each run changes (snapshots of the work tree at its start and end) for
    -- :ClaudeTasks changes / diff / revert and the footer's "· 3 files +12 −4".
    track_changes = true,
    -- How long a task's Claude Code process stays alive and idle after a run, so that a
    -- follow-up goes to it at once (no new process, no session reload); 0: it ends with its run
    -- and a follow-up resumes the session in a new one.
    keep_alive_ms = 600000,
    -- Most idle processes kept at once (each takes ~300 MB); the oldest are closed first.
    max_idle = 2,
    -- The prompt line of an output buffer: a small window under it where you write to the task.
    prompt = {
      -- Most lines the window grows to.
      max_height = 10,
      -- Keys (a list for several; false: not mapped).
      keys = {
        -- In an output buffer, on its last line (i and o on any line): open the window. `a`
        -- allows a waiting request instead.
        open = { "i", "a", "o", "<CR>" },
        -- In an output buffer: stop the task's current turn (it stays for your next message).
        interrupt = "<C-c>",
        -- In the window: send, in normal mode ...
        send = "<CR>",
        -- ... and in insert and normal mode.
        send_insert = "<C-s>",
        -- Close the window without sending (normal mode: <Esc><Esc> from insert mode).
        close = { "<Esc>", "q" },
        -- Walk this task's earlier prompts (insert mode: on the first / last line).
        prev = "<Up>",
        next = "<Down>",
      },
    },
    -- The icons of statusline().
    statusline = {
      -- Before the number of running tasks.
      icon = "✻",
      -- Before the number of queued tasks.
      queued_icon = "⏳",
      -- Before the number of tasks waiting for your answer.
      waiting_icon = "?",
    },
  }
end

--- The options the backend applies itself (sent with its `configure` request); the others
--- are the plugin's, or go with each task's `start`.
M.backend_options = {
  "on_exit",
  "concurrency",
  "max_running",
  "cancel_grace_ms",
  "keep",
  "export_markdown",
  "track_changes",
  "keep_alive_ms",
  "max_idle",
}

local function describe(v)
  if type(v) == "string" then
    return string.format("%q", v)
  elseif type(v) == "table" then
    return "a table " .. vim.inspect(v, { newline = " ", indent = "" })
  elseif type(v) == "function" then
    return "a function"
  end
  return tostring(v)
end

local function is_int(v)
  return type(v) == "number" and v == math.floor(v) and v > -math.huge and v < math.huge
end

local function is_list_of_strings(v)
  if type(v) ~= "table" or (next(v) ~= nil and not vim.islist(v)) then
    return false
  end
  for _, s in ipairs(v) do
    if type(s) ~= "string" then
      return false
    end
  end
  return true
end

local function one_of(...)
  local choices = { ... }
  local shown = {}
  for i, c in ipairs(choices) do
    shown[i] = type(c) == "string" and string.format("%q", c) or tostring(c)
  end
  return {
    check = function(v)
      return vim.list_contains(choices, v)
    end,
    expected = "one of " .. table.concat(shown, ", "),
  }
end

local string_ = {
  check = function(v)
    return type(v) == "string"
  end,
  expected = "a string",
}
local nonempty_string = {
  check = function(v)
    return type(v) == "string" and v ~= ""
  end,
  expected = "a non-empty string",
}
local boolean = {
  check = function(v)
    return type(v) == "boolean"
  end,
  expected = "a boolean",
}
local list_of_strings = { check = is_list_of_strings, expected = "a list of strings" }
local positive_size = {
  check = function(v)
    return type(v) == "number" and v > 0 and (v <= 1 or v == math.floor(v)) and v < math.huge
  end,
  expected = "a fraction of the editor (0 < n <= 1) or a whole number of cells",
}
local keys_ = {
  check = function(v)
    if v == false then
      return true
    end
    if type(v) == "string" then
      return v ~= ""
    end
    if not is_list_of_strings(v) then
      return false
    end
    for _, k in ipairs(v) do
      if k == "" then
        return false
      end
    end
    return true
  end,
  expected = "a key (string), a list of keys, or false",
}

--- The `--permission-mode` values the tested Claude Code versions document (`claude --help`,
--- tests/fixtures/claude-cli-*/help.txt): 2.1.197 lists "default", 2.1.332 lists "manual" in
--- its place (and still takes "default"; 2.1.197 refuses "manual").
M.PERMISSION_MODES = { "acceptEdits", "auto", "bypassPermissions", "default", "dontAsk", "plan" }
M.PERMISSION_MODES_NEWER = { "manual" }

local permission_mode = {
  check = function(v)
    -- A mode is one word: anything else would reach the CLI as a mistake (or a flag).
    return type(v) == "string" and v:match("^%a[%w_-]*$") ~= nil
  end,
  expected = "one of "
    .. table.concat(M.PERMISSION_MODES, ", ")
    .. " (or a newer CLI's mode, a single word)",
  --- A warning for a well-formed mode the tested CLIs do not document.
  warn = function(v)
    if
      vim.list_contains(M.PERMISSION_MODES, v) or vim.list_contains(M.PERMISSION_MODES_NEWER, v)
    then
      return nil
    end
    return string.format(
      "claude-tasks: option 'permission_mode' %q is not a mode the tested Claude Code versions"
        .. " document (%s); it is passed to the CLI as it is",
      v,
      table.concat(M.PERMISSION_MODES, ", ")
    )
  end,
}

--- The validators, by key. `optional` keys accept nil.
local schema = {
  cmd = {
    check = function(v)
      return (type(v) == "string" and v ~= "") or (is_list_of_strings(v) and #v > 0 and v[1] ~= "")
    end,
    expected = "a non-empty string or a non-empty list of strings",
  },
  args = list_of_strings,
  model = { check = nonempty_string.check, expected = "a non-empty string or nil", optional = true },
  permission_mode = permission_mode,
  allowed_tools = {
    check = function(v)
      if not is_list_of_strings(v) then
        return false
      end
      for _, r in ipairs(v) do
        -- `Tool` or `Tool(spec)`, as the CLI's --allowedTools takes them.
        if not (r:match("^[%w_%-%.:]+$") or r:match("^[%w_%-%.:]+%(.+%)$")) then
          return false
        end
      end
      return true
    end,
    expected = 'a list of tool rules such as "Read" or "Bash(npm test:*)"',
  },
  permissions = one_of("ask", "deny"),
  open = one_of("split", "vsplit", "tab", "float", false),
  focus = boolean,
  reuse_window = boolean,
  float = {
    fields = {
      width = positive_size,
      height = positive_size,
      border = {
        check = function(v)
          return type(v) == "string" or (type(v) == "table" and vim.islist(v) and #v > 0)
        end,
        expected = 'a border name ("rounded", "single", "none", ...) or a list of characters',
      },
    },
  },
  confirm = boolean,
  filetype = nonempty_string,
  notify = boolean,
  concurrency = one_of("queue", "reject", "parallel"),
  max_running = {
    check = function(v)
      return is_int(v) and v >= 1
    end,
    expected = "a positive integer",
  },
  isolation = one_of("none", "worktree"),
  branch_prefix = {
    check = function(v)
      return type(v) == "string" and vim.trim(v) ~= "" and not v:find("%s")
    end,
    expected = "a non-empty string without spaces (a branch name's start)",
  },
  apply = one_of("files", "commit"),
  on_exit = one_of("cancel", "detach", "ask"),
  cancel_grace_ms = {
    check = function(v)
      return is_int(v) and v >= 0
    end,
    expected = "a non-negative integer",
  },
  nice = {
    check = function(v)
      return is_int(v) and v >= 0 and v <= 19
    end,
    expected = "an integer from 0 to 19",
  },
  state_dir = { check = nonempty_string.check, expected = "a non-empty string", optional = true },
  log_file = { check = nonempty_string.check, expected = "a non-empty string", optional = true },
  binary = { check = nonempty_string.check, expected = "a non-empty string", optional = true },
  keep = {
    check = function(v)
      return is_int(v) and v >= 0
    end,
    expected = "a non-negative integer",
  },
  export_markdown = boolean,
  track_changes = boolean,
  keep_alive_ms = {
    check = function(v)
      return is_int(v) and v >= 0
    end,
    expected = "a non-negative integer (0: no process kept alive)",
  },
  max_idle = {
    check = function(v)
      return is_int(v) and v >= 0
    end,
    expected = "a non-negative integer",
  },
  prompt = {
    fields = {
      max_height = {
        check = function(v)
          return is_int(v) and v >= 1
        end,
        expected = "a positive integer",
      },
      keys = {
        fields = {
          open = keys_,
          interrupt = keys_,
          send = keys_,
          send_insert = keys_,
          close = keys_,
          prev = keys_,
          next = keys_,
        },
      },
    },
  },
  statusline = {
    fields = {
      icon = string_,
      queued_icon = string_,
      waiting_icon = string_,
    },
  },
}

local function sorted_keys(t)
  local keys = vim.tbl_keys(t)
  table.sort(keys)
  return keys
end

--- The closest key (by a small edit distance), for "did you mean".
local function closest(key, keys)
  local function distance(a, b)
    local prev = {}
    for j = 0, #b do
      prev[j] = j
    end
    for i = 1, #a do
      local cur = { [0] = i }
      for j = 1, #b do
        local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
        cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
      end
      prev = cur
    end
    return prev[#b]
  end
  local best, best_d = nil, 3
  for _, k in ipairs(keys) do
    local d = distance(key, k)
    if d < best_d then
      best, best_d = k, d
    end
  end
  return best
end

local function unknown_key(path, key, spec)
  local keys = sorted_keys(spec)
  local hint = closest(key, keys)
  return string.format(
    "claude-tasks: unknown option '%s%s'%s; valid options: %s",
    path,
    tostring(key),
    hint and string.format(" (did you mean '%s%s'?)", path, hint) or "",
    table.concat(keys, ", ")
  )
end

--- Validates `opts` against `spec`; returns nil or the error message. The warnings of valid
--- values (`rule.warn`) are added to `warnings` when given.
local function check_table(opts, spec, path, warnings)
  for key in pairs(opts) do
    if type(key) ~= "string" or not spec[key] then
      return unknown_key(path, key, spec)
    end
  end
  for _, key in ipairs(sorted_keys(spec)) do
    local rule, v = spec[key], opts[key]
    if rule.fields then
      if v ~= nil then
        if type(v) ~= "table" or vim.islist(v) and next(v) ~= nil then
          return string.format(
            "claude-tasks: option '%s%s' must be a table with keys %s; got %s",
            path,
            key,
            table.concat(sorted_keys(rule.fields), ", "),
            describe(v)
          )
        end
        local err = check_table(v, rule.fields, path .. key .. ".", warnings)
        if err then
          return err
        end
      end
    elseif v ~= nil then
      if not rule.check(v) then
        return string.format(
          "claude-tasks: option '%s%s' must be %s; got %s",
          path,
          key,
          rule.expected,
          describe(v)
        )
      end
      local warning = warnings and rule.warn and rule.warn(v)
      if warning then
        warnings[#warnings + 1] = warning
      end
    end
  end
end

--- Validates a full or partial option table; returns nil or the error message, and the
--- warnings about values that are valid but unusual (a list, empty when there are none).
function M.check(opts)
  local warnings = {}
  if opts == nil then
    return nil, warnings
  end
  if type(opts) ~= "table" then
    return "claude-tasks: setup() expects a table of options; got " .. describe(opts), warnings
  end
  return check_table(opts, schema, "", warnings), warnings
end

--- Shows each warning (scheduled: never in the middle of the caller's work).
function M.warn(warnings)
  for _, w in ipairs(warnings or {}) do
    vim.schedule(function()
      require("claude-tasks.notify").notify(w, vim.log.levels.WARN)
    end)
  end
end

--- Validates the per-task options of `start()` (a subset of the options plus name/cwd/open);
--- returns nil or the error message, and the warnings.
function M.check_task_opts(opts)
  local warnings = {}
  if opts == nil then
    return nil, warnings
  end
  if type(opts) ~= "table" then
    return "claude-tasks: start() expects a table of options; got " .. describe(opts), warnings
  end
  local spec = {
    name = { check = nonempty_string.check, expected = "a non-empty string", optional = true },
    cwd = { check = nonempty_string.check, expected = "a non-empty string", optional = true },
    context = list_of_strings,
    model = schema.model,
    permission_mode = schema.permission_mode,
    allowed_tools = schema.allowed_tools,
    permissions = schema.permissions,
    args = schema.args,
    cmd = schema.cmd,
    open = schema.open,
    isolation = schema.isolation,
    branch_prefix = schema.branch_prefix,
  }
  local err = check_table(opts, spec, "", warnings)
  for i, w in ipairs(warnings) do
    warnings[i] = w:gsub("option '", "start() option '", 1)
  end
  return err and err:gsub("option '", "start() option '", 1) or nil, warnings
end

local current = defaults()

--- Validates and applies `opts` over the defaults (each call starts from the defaults).
--- Raises an error naming the key when an option is wrong; changes nothing then.
function M.setup(opts)
  local err, warnings = M.check(opts)
  if err then
    error(err, 0)
  end
  M.warn(warnings)
  local new = defaults()
  for k, v in pairs(opts or {}) do
    if k == "statusline" or k == "float" then
      new[k] = vim.tbl_extend("force", new[k], v)
    elseif k == "prompt" then
      -- Key lists are replaced, not merged item by item.
      local keys = vim.tbl_extend("force", new.prompt.keys, v.keys or {})
      new.prompt = vim.tbl_extend("force", new.prompt, v)
      new.prompt.keys = keys
    else
      new[k] = v
    end
  end
  current = new
end

--- The current options (do not modify the table).
function M.get()
  return current
end

--- The state directory (option or default).
function M.state_dir()
  return current.state_dir or (vim.fn.stdpath("state") .. "/claude-tasks")
end

--- The backend's log file (option or default).
function M.log_file()
  return current.log_file or (vim.fn.stdpath("log") .. "/claude-tasks.log")
end

--- A key option as a list of keys (none when it is false).
function M.keys(v)
  if v == false or v == nil then
    return {}
  end
  return type(v) == "string" and { v } or v
end

--- The command as a list (`cmd` may be a string).
function M.cmd_list(cmd)
  cmd = cmd or current.cmd
  return type(cmd) == "string" and { cmd } or cmd
end

return M
