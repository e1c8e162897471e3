-- Permission requests and questions: the `ClaudeTaskPermission` autocmd and its notification,
-- answering (the Lua API, the output buffer's keys, the commands), and the "always" rules.
--
-- A task's record carries its waiting requests in `pending` (doc/protocol.md). This module
-- never keeps its own copy: it reads the cached records (state.lua) and asks the backend.

local M = {}

local levels = vim.log.levels

local nn = require("claude-tasks.format").nn

--- The waiting requests of a task record (a list, maybe empty).
function M.pending(task)
  local p = task and nn(task.pending)
  if type(p) ~= "table" then
    return {}
  end
  return p
end

--- Whether a task waits for an answer.
function M.waiting(task)
  return task ~= nil and task.status == "running" and #M.pending(task) > 0
end

--- `s` on one line, without control characters (a terminal escape must never reach the
--- message area), cut to `max` characters.
function M.clean(s, max)
  s = tostring(s or "")
  s = s:gsub("\27%[[%d;?]*[%a@]", ""):gsub("[%c\127]", " "):gsub("%s+", " ")
  s = vim.trim(s)
  max = max or 200
  if vim.fn.strchars(s) > max then
    s = vim.fn.strcharpart(s, 0, max - 1) .. "…"
  end
  return s
end

--- "Bash: npm test", "Write: src/lib.rs", "AskUserQuestion: Which color?": one line.
function M.title(req)
  local t = nn(req.title)
  if type(t) == "string" and t ~= "" then
    return M.clean(t)
  end
  local input = type(nn(req.input)) == "table" and req.input or {}
  local arg = input.command or input.file_path or input.notebook_path or input.url
  if not arg and type(input.questions) == "table" and input.questions[1] then
    arg = input.questions[1].question
  end
  return M.clean(tostring(req.tool_name) .. (arg and (": " .. tostring(arg)) or ""))
end

local function key(task, req)
  return string.format("%s\0%s\0%s", tostring(task.cwd), tostring(task.id), req.request_id)
end

--- request keys already announced: key -> true.
local announced = {}

--- The autocmd's data.
function M.data(task, req)
  return {
    id = nn(task.id),
    name = nn(task.name),
    cwd = nn(task.cwd),
    request_id = nn(req.request_id),
    tool_name = nn(req.tool_name),
    input = nn(req.input),
    suggestions = nn(req.suggestions),
    title = M.title(req),
    unsaved = nn(req.unsaved),
    rule = nn(req.rule),
  }
end

--- The notification of a new request: one line, short enough for the message area (the
--- request's title is cut first, then the hint).
function M.message(task, req)
  local format = require("claude-tasks.format")
  local head = "claude-tasks: " .. M.clean(format.label(task), 50) .. " asks: "
  local warn = nn(req.unsaved) and (" ⚠ unsaved " .. M.clean(req.unsaved, 40)) or ""
  local hint = " (:ClaudeTasks allow " .. tostring(task.id) .. ")"
  -- Never a "Press ENTER" prompt: at most the width the message area has.
  local room = math.max(40, (tonumber(vim.v.echospace) or 80) - 1)
  local width = vim.fn.strchars
  local left = room - width(head) - width(warn) - width(hint)
  if left < 12 then
    hint = ""
    left = room - width(head) - width(warn)
  end
  return M.clean(head .. M.clean(M.title(req), math.max(12, left)) .. warn .. hint, room)
end

--- Called for every task record Lua learns (events, list, get): fires `ClaudeTaskPermission`
--- (and notifies) once for each pending request not announced before. Scheduled: never inside
--- the backend's RPC call.
function M.announce(task)
  if type(task) ~= "table" or task.status ~= "running" then
    return
  end
  local fresh = {}
  for _, req in ipairs(M.pending(task)) do
    if type(req) == "table" and nn(req.request_id) then
      local k = key(task, req)
      if not announced[k] then
        announced[k] = true
        fresh[#fresh + 1] = req
      end
    end
  end
  if #fresh == 0 then
    return
  end
  vim.schedule(function()
    local config = require("claude-tasks.config").get()
    for _, req in ipairs(fresh) do
      local ok, err = pcall(vim.api.nvim_exec_autocmds, "User", {
        pattern = "ClaudeTaskPermission",
        data = M.data(task, req),
        modeline = false,
      })
      if not ok then
        require("claude-tasks.notify").notify(
          "claude-tasks: a ClaudeTaskPermission autocmd failed: " .. tostring(err),
          levels.ERROR
        )
      end
      if config.notify then
        require("claude-tasks.notify").notify(
          M.message(task, req),
          levels.WARN,
          { title = "claude-tasks" }
        )
      end
    end
  end)
end

local function request(method, args)
  local res, err = require("claude-tasks.backend").try(method, args)
  if res ~= nil then
    require("claude-tasks.state").refresh({ res })
  end
  return res, err
end

local function resolve(ref)
  return require("claude-tasks.resolve").one(ref)
end

--- Lua API: allow a request of task `ref`. opts: request_id (default: the oldest), input (the
--- edited input, a table), always (true: the proposed rule; a string: that rule), scope
--- ("task" or "project"). Returns the task record, or nil and an error.
function M.allow(ref, opts)
  opts = opts or {}
  if opts.input ~= nil and type(opts.input) ~= "table" then
    return nil, "claude-tasks: allow(): 'input' must be a table"
  end
  if opts.always ~= nil and type(opts.always) ~= "boolean" and type(opts.always) ~= "string" then
    return nil, "claude-tasks: allow(): 'always' must be true or a rule such as 'Bash(npm test:*)'"
  end
  if opts.scope ~= nil and opts.scope ~= "task" and opts.scope ~= "project" then
    return nil, 'claude-tasks: allow(): \'scope\' must be "task" or "project"'
  end
  local t, err = resolve(ref)
  if not t then
    return nil, err
  end
  return request("allow", {
    id = t.id,
    cwd = t.cwd,
    request_id = opts.request_id,
    input = opts.input,
    always = opts.always or nil,
    scope = opts.scope,
  })
end

--- Lua API: deny a request. opts: request_id, message (told to the model), interrupt (also
--- stop the turn).
function M.deny(ref, opts)
  opts = opts or {}
  if opts.message ~= nil and type(opts.message) ~= "string" then
    return nil, "claude-tasks: deny(): 'message' must be a string"
  end
  local t, err = resolve(ref)
  if not t then
    return nil, err
  end
  local msg = opts.message
  if msg and vim.trim(msg) == "" then
    msg = nil
  end
  return request("deny", {
    id = t.id,
    cwd = t.cwd,
    request_id = opts.request_id,
    message = msg,
    interrupt = opts.interrupt and true or nil,
  })
end

--- Lua API: answer an AskUserQuestion request; `answers` maps each question's text to the
--- chosen label (a list of labels for a multi-select question, or any text).
function M.answer(ref, answers, opts)
  opts = opts or {}
  if type(answers) ~= "table" or vim.tbl_isempty(answers) then
    return nil, "claude-tasks: answer(): 'answers' must be a table {question = answer}"
  end
  local t, err = resolve(ref)
  if not t then
    return nil, err
  end
  local clean = {}
  for q, a in pairs(answers) do
    if type(a) == "table" then
      a = table.concat(a, ", ")
    end
    clean[tostring(q)] = tostring(a)
  end
  return request(
    "answer",
    { id = t.id, cwd = t.cwd, request_id = opts.request_id, answers = clean }
  )
end

--- The rules that apply to the tasks of `cwd` (and task `id`'s own), or nil and an error.
function M.rules(opts)
  opts = opts or {}
  local backend = require("claude-tasks.backend")
  local ok, res =
    pcall(backend.request, "rules", { cwd = opts.cwd or vim.fn.getcwd(), id = opts.id })
  if not ok then
    return nil, backend.clean_error(res)
  end
  return res
end

-- Interactive answering (keys, commands, picker) --------------------------------------------

local function report(res, err, done)
  if not res then
    require("claude-tasks.notify").notify(err, levels.ERROR)
  elseif done then
    require("claude-tasks.notify").notify(done, levels.INFO)
  end
end

--- The cached record of a task (or the given one when it is fresher).
local function current(task)
  return require("claude-tasks.state").get(task.cwd, task.id) or task
end

--- The request `request_id` of `task` (default: the oldest), or nil.
function M.find(task, request_id)
  local list = M.pending(current(task))
  if #list == 0 then
    list = M.pending(task)
  end
  if not request_id then
    return list[1]
  end
  for _, r in ipairs(list) do
    if r.request_id == request_id or vim.startswith(r.request_id, request_id) then
      return r
    end
  end
end

local function is_question(req)
  return req.tool_name == "AskUserQuestion"
end

--- Asks each question with vim.ui.select (a multi-select question: pick until "Done"; every
--- question also takes free text), then answers.
function M.ask_questions(task, req)
  local input = type(nn(req.input)) == "table" and req.input or {}
  local questions = type(input.questions) == "table" and input.questions or {}
  if #questions == 0 then
    return require("claude-tasks.notify").notify(
      "claude-tasks: the question request has no questions",
      levels.ERROR
    )
  end
  local answers = {}
  local function finish()
    local res, err = M.answer(task, answers, { request_id = req.request_id })
    report(res, err)
  end
  local ask
  local function free_text(q, i)
    vim.ui.input({ prompt = M.clean(q.question, 80) .. " " }, function(text)
      if not text or vim.trim(text) == "" then
        return
      end
      answers[q.question] = text
      ask(i + 1)
    end)
  end
  ask = function(i)
    local q = questions[i]
    if not q then
      return finish()
    end
    local options = type(q.options) == "table" and q.options or {}
    local chosen = {}
    local function pick()
      local items = {}
      for _, o in ipairs(options) do
        items[#items + 1] = { label = tostring(o.label), description = o.description }
      end
      if q.multiSelect then
        items[#items + 1] = { done = true }
      end
      items[#items + 1] = { other = true }
      local prompt =
        M.clean((nn(q.header) and (q.header .. ": ") or "") .. tostring(q.question), 100)
      vim.ui.select(items, {
        prompt = prompt,
        kind = "claude-tasks.question",
        format_item = function(it)
          if it.done then
            return "✓ Done"
          elseif it.other then
            return "Other (type an answer)"
          end
          local mark = q.multiSelect and (vim.tbl_contains(chosen, it.label) and "[x] " or "[ ] ")
            or ""
          local desc = nn(it.description)
          return mark .. M.clean(it.label, 80) .. (desc and (" — " .. M.clean(desc, 80)) or "")
        end,
      }, function(choice)
        if not choice then
          return
        elseif choice.other then
          return free_text(q, i)
        elseif choice.done then
          if #chosen == 0 then
            return pick()
          end
          answers[q.question] = table.concat(chosen, ", ")
          return ask(i + 1)
        elseif q.multiSelect then
          if vim.tbl_contains(chosen, choice.label) then
            chosen = vim.tbl_filter(function(l)
              return l ~= choice.label
            end, chosen)
          else
            chosen[#chosen + 1] = choice.label
          end
          return pick()
        end
        answers[q.question] = choice.label
        ask(i + 1)
      end)
    end
    pick()
  end
  ask(1)
end

--- `A`: the proposed rule, editable, then its scope, then allow.
function M.ask_always(task, req)
  if is_question(req) or req.tool_name == "ExitPlanMode" then
    return require("claude-tasks.notify").notify(
      "claude-tasks: no 'always' for " .. tostring(req.tool_name),
      levels.WARN
    )
  end
  local default = nn(req.rule) or tostring(req.tool_name)
  vim.ui.input({ prompt = "Always allow (rule): ", default = default }, function(rule)
    if not rule or vim.trim(rule) == "" then
      return
    end
    rule = vim.trim(rule)
    local scopes = {
      { scope = "task", label = "only in task #" .. tostring(task.id) },
      { scope = "project", label = "in every task of " .. vim.fn.fnamemodify(task.cwd, ":~") },
    }
    vim.ui.select(scopes, {
      prompt = "Apply " .. rule,
      kind = "claude-tasks.scope",
      format_item = function(s)
        return s.label
      end,
    }, function(choice)
      if not choice then
        return
      end
      local res, err =
        M.allow(task, { request_id = req.request_id, always = rule, scope = choice.scope })
      report(res, err)
    end)
  end)
end

--- `d`: an optional reason, then deny.
function M.ask_deny(task, req)
  vim.ui.input({ prompt = "Deny " .. M.title(req) .. " (reason, optional): " }, function(reason)
    if reason == nil then
      return
    end
    local res, err = M.deny(task, { request_id = req.request_id, message = reason })
    report(res, err)
  end)
end

--- The field a user edits for `e`: Bash its command (one line), Write its content, Edit its
--- new text; anything else its whole input as JSON.
local function editable(req)
  local input = type(nn(req.input)) == "table" and req.input or {}
  if req.tool_name == "Bash" and type(input.command) == "string" then
    return "command", input.command
  elseif req.tool_name == "Write" and type(input.content) == "string" then
    return "content", input.content
  elseif req.tool_name == "Edit" and type(input.new_string) == "string" then
    return "new_string", input.new_string
  end
  return nil, vim.json.encode(input)
end

--- `e`: edit the input, then allow with it. Bash: the command in vim.ui.input; others: a
--- scratch buffer, `:w` allows with its text, `:q` leaves the request waiting.
function M.ask_edit(task, req)
  if req.input_cut then
    return require("claude-tasks.notify").notify(
      "claude-tasks: this request's input is too large to edit here; allow or deny it",
      levels.WARN
    )
  end
  local field, text = editable(req)
  local input = vim.deepcopy(type(nn(req.input)) == "table" and req.input or {})
  local function send(new_input)
    local res, err = M.allow(task, { request_id = req.request_id, input = new_input })
    report(res, err)
  end
  if field == "command" then
    return vim.ui.input({ prompt = "Run instead: ", default = text }, function(cmd)
      if not cmd or vim.trim(cmd) == "" then
        return
      end
      input.command = cmd
      send(input)
    end)
  end
  local buf = vim.api.nvim_create_buf(false, true)
  local name =
    string.format("claude-tasks://%s/request/%s", tostring(task.id), req.request_id:sub(1, 8))
  pcall(vim.api.nvim_buf_set_name, buf, name)
  vim.bo[buf].buftype = "acwrite"
  vim.bo[buf].bufhidden = "wipe"
  vim.bo[buf].swapfile = false
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, vim.split(text, "\n", { plain = true }))
  vim.bo[buf].modified = false
  if field == nil then
    vim.bo[buf].filetype = "json"
  else
    local path = input.file_path
    local ft = type(path) == "string" and vim.filetype.match({ filename = path }) or nil
    if ft then
      vim.bo[buf].filetype = ft
    end
  end
  vim.api.nvim_create_autocmd("BufWriteCmd", {
    buffer = buf,
    callback = function()
      local body = table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n")
      local new_input
      if field == nil then
        local ok, decoded = pcall(vim.json.decode, body)
        -- An array decodes to a table too; the CLI takes an object alone.
        local object = ok and type(decoded) == "table" and not body:match("^%s*%[")
        if not object then
          return require("claude-tasks.notify").notify(
            "claude-tasks: the input is not a JSON object",
            levels.ERROR
          )
        end
        new_input = decoded
      else
        new_input = input
        new_input[field] = body
      end
      vim.bo[buf].modified = false
      send(new_input)
      pcall(vim.api.nvim_buf_delete, buf, { force = true })
    end,
  })
  vim.cmd("split")
  vim.api.nvim_win_set_buf(0, buf)
  require("claude-tasks.notify").notify(
    "claude-tasks: edit, then :w to allow with this input (:q leaves the request waiting)",
    levels.INFO
  )
end

--- The request an action in `buf` applies to: the one whose header is at or above the cursor
--- (`? … [43ba1187]`), else the task's oldest.
local function request_at_cursor(buf, task)
  local row = vim.api.nvim_win_get_cursor(0)[1]
  local lines = vim.api.nvim_buf_get_lines(buf, math.max(0, row - 300), row, false)
  for i = #lines, 1, -1 do
    local l = lines[i]
    local tag = l:match("^%? .*%[(%x%x%x%x%x%x%x%x)%]$")
    if tag then
      local req = M.find(task, tag)
      if req then
        return req
      end
      break
    end
    -- The previous run's separator ends the search.
    if l:sub(1, 7) == "── " then
      break
    end
  end
  return M.find(task)
end

--- The output buffer's keys: `action` is "allow", "always", "deny" or "edit".
function M.key(buf, action)
  local info = require("claude-tasks.buffer").info[buf]
  if not info then
    return
  end
  local task = { id = info.id, cwd = info.cwd }
  local req = request_at_cursor(buf, task)
  if not req then
    return require("claude-tasks.notify").notify(
      "claude-tasks: #" .. tostring(info.id) .. " is not waiting for an answer",
      levels.INFO
    )
  end
  M.act(task, req, action)
end

--- Carries out `action` on request `req` of `task` (asking what it needs).
function M.act(task, req, action)
  if action == "allow" then
    if is_question(req) then
      return M.ask_questions(task, req)
    end
    local res, err = M.allow(task, { request_id = req.request_id })
    report(res, err)
  elseif action == "always" then
    M.ask_always(task, req)
  elseif action == "deny" then
    M.ask_deny(task, req)
  elseif action == "edit" then
    if is_question(req) then
      return M.ask_questions(task, req)
    end
    M.ask_edit(task, req)
  end
end

--- `:ClaudeTasks rules`: the rules in a picker; choosing one removes it (after a yes).
function M.rules_ui()
  local list, err = M.rules()
  if not list then
    return require("claude-tasks.notify").notify(err, levels.ERROR)
  end
  if #list == 0 then
    return require("claude-tasks.notify").notify(
      "claude-tasks: no 'always' rules here (A on a request in an output buffer adds one)",
      levels.INFO
    )
  end
  vim.ui.select(list, {
    prompt = "Rules (choose one to remove it)",
    kind = "claude-tasks.rules",
    format_item = function(r)
      local where = r.scope == "project" and "every task here" or ("task #" .. tostring(r.id))
      return string.format("%s  (%s)", M.clean(r.rule, 120), where)
    end,
  }, function(r)
    if not r then
      return
    end
    vim.ui.select({ "Remove", "Keep" }, { prompt = "Remove " .. r.rule .. "?" }, function(c)
      if c ~= "Remove" then
        return
      end
      local backend = require("claude-tasks.backend")
      local ok, res = pcall(backend.request, "remove_rule", {
        cwd = vim.fn.getcwd(),
        rule = r.rule,
        scope = r.scope,
        id = nn(r.id),
      })
      if not ok then
        return require("claude-tasks.notify").notify(backend.clean_error(res), levels.ERROR)
      end
      require("claude-tasks.notify").notify("claude-tasks: removed " .. r.rule, levels.INFO)
    end)
  end)
end

return M
