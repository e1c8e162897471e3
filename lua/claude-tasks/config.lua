-- Options: defaults, validation and the current values.
--
-- `setup(opts)` validates everything before changing anything: a wrong option is an error naming
-- the key and what it expected, an unknown key is an error too (typo protection).

local M = {}

--- The defaults. `binary`, `state_dir` and `log_file` are resolved when read (see `get`).
local function defaults()
  return {
    cmd = "claude",
    args = {},
    model = nil,
    permission_mode = "acceptEdits",
    allowed_tools = {},
    open = "split",
    notify = true,
    concurrency = "queue",
    max_running = 4,
    on_exit = "cancel",
    cancel_grace_ms = 2000,
    nice = 10,
    state_dir = nil,
    log_file = nil,
    binary = nil,
    keep = 100,
    export_markdown = false,
    statusline = { icon = "✻", queued_icon = "⏳" },
  }
end

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

--- The validators, by key. `optional` keys accept nil.
local schema = {
  cmd = {
    check = function(v)
      return (type(v) == "string" and v ~= "") or (is_list_of_strings(v) and #v > 0 and v[1] ~= "")
    end,
    expected = "a non-empty string or a non-empty list of strings",
  },
  args = list_of_strings,
  model = { check = string_.check, expected = "a string or nil", optional = true },
  permission_mode = nonempty_string,
  allowed_tools = list_of_strings,
  open = one_of("split", "vsplit", "tab", "float", false),
  notify = boolean,
  concurrency = one_of("queue", "reject", "parallel"),
  max_running = {
    check = function(v)
      return is_int(v) and v >= 1
    end,
    expected = "a positive integer",
  },
  on_exit = one_of("cancel", "detach"),
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
  statusline = {
    fields = {
      icon = string_,
      queued_icon = string_,
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

--- Validates `opts` against `spec`; returns nil or the error message.
local function check_table(opts, spec, path)
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
        local err = check_table(v, rule.fields, path .. key .. ".")
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
    end
  end
end

--- Validates a full or partial option table; returns nil or the error message.
function M.check(opts)
  if opts == nil then
    return nil
  end
  if type(opts) ~= "table" then
    return "claude-tasks: setup() expects a table of options; got " .. describe(opts)
  end
  return check_table(opts, schema, "")
end

--- Validates the per-task options of `start()` (a subset of the options plus name/cwd/open).
function M.check_task_opts(opts)
  if opts == nil then
    return nil
  end
  if type(opts) ~= "table" then
    return "claude-tasks: start() expects a table of options; got " .. describe(opts)
  end
  local spec = {
    name = { check = nonempty_string.check, expected = "a non-empty string", optional = true },
    cwd = { check = nonempty_string.check, expected = "a non-empty string", optional = true },
    model = schema.model,
    permission_mode = schema.permission_mode,
    allowed_tools = schema.allowed_tools,
    args = schema.args,
    cmd = schema.cmd,
    open = schema.open,
  }
  local err = check_table(opts, spec, "")
  return err and err:gsub("option '", "start() option '", 1) or nil
end

local current = defaults()

--- Validates and applies `opts` over the defaults (each call starts from the defaults).
--- Raises an error naming the key when an option is wrong; changes nothing then.
function M.setup(opts)
  local err = M.check(opts)
  if err then
    error(err, 0)
  end
  local new = defaults()
  for k, v in pairs(opts or {}) do
    if k == "statusline" then
      new.statusline = vim.tbl_extend("force", new.statusline, v)
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

--- The command as a list (`cmd` may be a string).
function M.cmd_list(cmd)
  cmd = cmd or current.cmd
  return type(cmd) == "string" and { cmd } or cmd
end

return M
