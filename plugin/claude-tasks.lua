-- claude-tasks.nvim: commands only. Nothing is required and no backend starts until first use.
if vim.g.loaded_claude_tasks then
  return
end
vim.g.loaded_claude_tasks = 1

if vim.fn.has("nvim-0.10") == 0 then
  vim.api.nvim_echo({ { "claude-tasks.nvim needs Neovim 0.10 or newer", "WarningMsg" } }, true, {})
  return
end

local function commands()
  -- A manual install has no doc/tags until something makes them (setup() does too).
  require("claude-tasks.helptags").ensure()
  return require("claude-tasks.commands")
end

vim.api.nvim_create_user_command("ClaudeTask", function(o)
  commands().task(o)
end, {
  nargs = "*",
  range = true,
  bang = true,
  -- File names, without -complete=file's expansion of % and # in the prompt.
  complete = function(arglead)
    return vim.fn.getcompletion(arglead, "file")
  end,
  desc = "claude-tasks: start a Claude Code task with this prompt (a range adds the lines; ! in a git worktree)",
})

vim.api.nvim_create_user_command("ClaudeTasks", function(o)
  commands().tasks(o)
end, {
  nargs = "*",
  bang = true,
  complete = function(arglead, cmdline, cursorpos)
    return commands().complete(arglead, cmdline, cursorpos)
  end,
  desc = "claude-tasks: pick, list, open, cancel, resume, say to, interrupt, dispose tasks; Claude's TUI on one; their changes, diff, revert; a transcript; apply, discard worktrees",
})

local group = vim.api.nvim_create_augroup("claude-tasks", { clear = true })

vim.api.nvim_create_autocmd("BufReadCmd", {
  group = group,
  pattern = "claude-tasks://*",
  callback = function(ev)
    require("claude-tasks.buffer").read_cmd(ev)
  end,
  desc = "claude-tasks: :edit claude-tasks://{id} shows that task's output",
})

vim.api.nvim_create_autocmd("BufWritePost", {
  group = group,
  callback = function(ev)
    -- Nothing to do (and nothing loaded) until a task has run in this editor.
    if package.loaded["claude-tasks.state"] then
      require("claude-tasks.changes").saved(ev)
    end
  end,
  desc = "claude-tasks: a file saved while a task runs in its directory is also edited by you",
})

vim.api.nvim_create_autocmd("ExitPre", {
  group = group,
  callback = function()
    -- Tasks run only in a backend: without one, nothing to say and nothing to load.
    local backend = package.loaded["claude-tasks.backend"]
    if backend and backend.running() then
      require("claude-tasks.exit").on_exit_pre()
    end
  end,
  desc = "claude-tasks: on_exit: say which tasks quitting cancels, or ask",
})
