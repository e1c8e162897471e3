-- Finding tasks from what the user typed: an id, or a case-insensitive part of a name.

local M = {}

local nn = require("claude-tasks.format").nn

--- The tasks of project `cwd` (default: the current directory), newest first. Raises.
function M.list(cwd)
  local tasks = require("claude-tasks.backend").request("list", { cwd = cwd or vim.fn.getcwd() })
  return type(tasks) == "table" and tasks or {}
end

--- The tasks among `tasks` that `query` designates: the task with that id when `query` is a
--- number (or only digits, optionally after "#"), else those whose name contains `query`,
--- ignoring case.
function M.match(query, tasks)
  local out = {}
  local s = vim.trim(tostring(query))
  local id = tonumber(s:match("^#?(%d+)$"))
  if id then
    for _, t in ipairs(tasks) do
      if t.id == id then
        out[1] = t
        break
      end
    end
    return out
  end
  local needle = s:lower()
  for _, t in ipairs(tasks) do
    local name = nn(t.name)
    if type(name) == "string" and name:lower():find(needle, 1, true) then
      out[#out + 1] = t
    end
  end
  return out
end

--- A task's name on one line, as completion shows it after the id.
function M.one_line(name)
  if type(name) ~= "string" then
    return ""
  end
  return vim.trim((name:gsub("%s+", " ")))
end

local function by_id(tasks, id)
  for _, t in ipairs(tasks) do
    if t.id == id then
      return t
    end
  end
end

--- `query` without the task's name after its id ("12 fix the test", as completion inserts it,
--- is "12"); any other query as it is.
function M.strip_name(query, tasks)
  local id, after = vim.trim(query):match("^#?(%d+)%s+(.+)$")
  local t = id and by_id(tasks, tonumber(id))
  if t and M.one_line(nn(t.name)) == M.one_line(after) then
    return id
  end
  return query
end

--- "{id} {prompt}": the task's query and the rest, without the task's name when it follows its
--- id (as completion inserts it). Nil when `rest` is empty.
function M.split_ref(rest, tasks)
  local query, after = rest:match("^%s*(%S+)%s*(.-)%s*$")
  if not query then
    return nil
  end
  local id = tonumber(query:match("^#?(%d+)$"))
  local t = id and by_id(tasks, id)
  local name = t and M.one_line(nn(t.name)) or ""
  if name ~= "" and (after == name or vim.startswith(after, name .. " ")) then
    after = vim.trim(after:sub(#name + 1))
  end
  return query, after
end

--- "1 (fix the test), 2 (add docs)": what is valid, for error messages.
function M.describe(tasks, max)
  max = max or 10
  if #tasks == 0 then
    return "none"
  end
  local parts = {}
  for i, t in ipairs(tasks) do
    if i > max then
      parts[#parts + 1] = "…"
      break
    end
    parts[#parts + 1] = string.format("%s (%s)", tostring(t.id), tostring(nn(t.name) or ""))
  end
  return table.concat(parts, ", ")
end

--- The message for a query that matched nothing.
function M.no_match(query, tasks, cwd)
  return string.format(
    "claude-tasks: no task matches '%s' in %s; tasks: %s",
    tostring(query),
    vim.fn.fnamemodify(cwd or vim.fn.getcwd(), ":~"),
    M.describe(tasks)
  )
end

--- One task from `ref`: a task record (or any table with id and cwd), an id, or a query.
--- Returns { id, cwd } (a full record when a list was needed), or nil and an error message.
function M.one(ref, cwd)
  cwd = cwd or vim.fn.getcwd()
  if type(ref) == "table" then
    if ref.id == nil then
      return nil, "claude-tasks: a task reference needs an 'id' field"
    end
    return { id = ref.id, cwd = ref.cwd or cwd }
  elseif type(ref) == "number" then
    return { id = ref, cwd = cwd }
  elseif type(ref) ~= "string" or vim.trim(ref) == "" then
    return nil,
      "claude-tasks: expected a task id or a part of a task's name; got " .. vim.inspect(ref)
  end
  local id = tonumber(vim.trim(ref):match("^#?(%d+)$"))
  if id then
    return { id = id, cwd = cwd }
  end
  local ok, tasks = pcall(M.list, cwd)
  if not ok then
    return nil, require("claude-tasks.backend").clean_error(tasks)
  end
  local found = M.match(ref, tasks)
  if #found == 1 then
    return found[1]
  elseif #found == 0 then
    return nil, M.no_match(ref, tasks, cwd)
  end
  return nil, string.format("claude-tasks: '%s' matches several tasks: %s", ref, M.describe(found))
end

return M
