-- demo.lua — run by scripts/demo.sh in a headless Neovim whose cwd is a scratch project.
local root = assert(os.getenv("CLAUDE_TASKS_ROOT"), "CLAUDE_TASKS_ROOT not set")
-- The backend and the demo agent: the release build (`make demo`), or another (the tests').
local bin_dir = os.getenv("CLAUDE_TASKS_BIN_DIR") or (root .. "/target/release")
local out = function(s)
  io.stdout:write(s, "\n")
end

vim.cmd("runtime plugin/claude-tasks.lua")
local ct = require("claude-tasks")
ct.setup({
  binary = bin_dir .. "/claude-tasks",
  -- The offline demo agent: replays a realistic session (text, a Bash tool call, its result).
  cmd = { bin_dir .. "/fake-claude", "--fake-delay-ms=40" },
  notify = true,
  open = "split",
})

local events = {}
local task_id
vim.api.nvim_create_autocmd("User", {
  pattern = {
    "ClaudeTaskStarted",
    "ClaudeTaskCompleted",
    "ClaudeTaskFailed",
    "ClaudeTaskCancelled",
    "ClaudeTaskDone",
  },
  callback = function(ev)
    local d = ev.data or {}
    task_id = task_id or d.id
    table.insert(
      events,
      string.format(
        "%-20s id=%s status=%s cost=%s turns=%s",
        ev.match,
        d.id,
        d.status,
        d.cost_usd,
        d.num_turns
      )
    )
  end,
})
local notes = {}
vim.notify = function(msg, level)
  table.insert(notes, string.format("[%s] %s", level or "", msg))
end

out("cwd:                 " .. vim.fn.getcwd())
out("statusline before:   " .. vim.inspect(ct.statusline()))
out(":ClaudeTask list the files of this project and summarise them")
vim.cmd("ClaudeTask list the files of this project and summarise them")
vim.wait(10000, function()
  return ct.statusline():find("✻") ~= nil
end, 10)
out("statusline running:  " .. vim.inspect(ct.statusline()))
local done = vim.wait(30000, function()
  for _, e in ipairs(events) do
    if e:match("^ClaudeTaskDone") then
      return true
    end
  end
  return false
end, 10)
-- The task's output buffer (what `open = "split"` shows); its last lines reach it on the next
-- frame.
local buf = task_id and require("claude-tasks.buffer").find(task_id, vim.fn.getcwd())
if not buf then
  out("demo: no output buffer for the task (events: " .. #events .. ")")
  vim.cmd("cq 1")
  return
end
vim.wait(2000, function()
  local last = vim.api.nvim_buf_get_lines(buf, -2, -1, false)[1] or ""
  return last:match("^[✓✗■]") ~= nil
end, 10)
out("statusline after:    " .. vim.inspect(ct.statusline()))
out("")
out("events:")
for _, e in ipairs(events) do
  out("  " .. e)
end
out("notifications:")
for _, n in ipairs(notes) do
  out("  " .. n)
end
out("")
out("buffer " .. vim.api.nvim_buf_get_name(buf) .. ":")
out(string.rep("─", 72))
for _, l in ipairs(vim.api.nvim_buf_get_lines(buf, 0, -1, false)) do
  out(l)
end
out(string.rep("─", 72))
vim.cmd(done and "qa!" or "cq 1")
