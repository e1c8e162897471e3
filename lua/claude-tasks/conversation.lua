-- A conversation with a live task from the command line: :ClaudeTasks say, interrupt and tui
-- (commands.lua adds them to its subcommands), and what the keys and the actions table call to
-- interrupt a task or open Claude's TUI on it.

local M = {}

local levels = vim.log.levels

local function err(msg)
  require("claude-tasks.notify").notify(
    require("claude-tasks.backend").clean_error(msg),
    levels.ERROR
  )
end

local function live(t)
  return t.status == "running" or t.status == "queued"
end

--- Interrupts `task`'s current turn, reporting errors (nothing to confirm: nothing is lost).
function M.interrupt_task(task)
  if not task then
    return
  end
  local _, e = require("claude-tasks").interrupt(task)
  if e then
    err(e)
  end
end

--- Opens Claude's TUI on `task`'s session, reporting errors.
function M.tui_task(task)
  local _, e = require("claude-tasks").tui(task)
  if e then
    err(e)
  end
end

--- The subcommands, given commands.lua's `with_task(query, opts, fn)` (the task an id, a name
--- or the picker designates).
function M.subcommands(with_task)
  local S
  --- `fn` on the task `rest` names, else the current output buffer's, else one picked among
  --- those subcommand `name`'s filter allows.
  local function on_one(rest, name, prompt, none, fn)
    local here = vim.b.claude_task
    if rest == "" and type(here) == "table" then
      return fn(here)
    end
    with_task(rest, {
      filter = S[name].filter,
      prompt = prompt,
      none = "claude-tasks: " .. none .. " in this project",
    }, fn)
  end
  S = {
    say = {
      usage = "say [id] {text}",
      -- A queued task has no Claude to say it to yet.
      filter = function(t)
        return t.status ~= "queued"
      end,
      run = function(rest)
        -- The first word is the task only when it is an id (any other text is the message);
        -- without one, the task of the current output buffer, or the picker.
        local id, text = rest:match("^(#?%d+)%s+(.+)$")
        if id then
          -- Completion puts the task's name after its id: not part of the message.
          local ok, tasks = pcall(require("claude-tasks.resolve").list)
          if ok then
            text = select(2, require("claude-tasks.resolve").split_ref(rest, tasks))
          end
        else
          id, text = "", rest
        end
        if vim.trim(text) == "" or rest:match("^#?%d+$") then
          return err("claude-tasks: usage: :ClaudeTasks say [id] {text}")
        end
        local here = vim.b.claude_task or vim.b.claude_task_prompt
        local function go(task)
          local _, e = require("claude-tasks").say(task, text)
          if e then
            err(e)
          end
        end
        if id == "" and type(here) == "table" then
          return go(here)
        end
        with_task(id, {
          prompt = "Say to",
          filter = S.say.filter,
          none = "claude-tasks: no task to say it to in this project",
        }, go)
      end,
    },
    interrupt = {
      usage = "interrupt [id]",
      filter = function(t)
        return t.status == "running"
      end,
      run = function(rest)
        on_one(rest, "interrupt", "Interrupt task", "no running task", M.interrupt_task)
      end,
    },
    tui = {
      usage = "tui [id]",
      filter = function(t)
        return not live(t)
      end,
      run = function(rest)
        on_one(rest, "tui", "Claude's TUI on", "no finished task", M.tui_task)
      end,
    },
  }
  return S
end

return M
