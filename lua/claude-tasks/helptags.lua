-- `:help claude-tasks` for a manual install: plugin managers run `:helptags` on the plugin's
-- doc/, a git clone on the runtimepath does not (and doc/tags is not in the repository), so
-- the help gave E149. The tags are generated once, when missing and doc/ is writable.

local M = {}

local done = false

--- The plugin's doc directory.
function M.doc_dir()
  return require("claude-tasks.backend").plugin_root() .. "/doc"
end

--- Generates doc/tags when it is missing and doc/ is writable; at most once per session, never
--- raising (a read-only install, e.g. a system package, simply keeps its own tags or none).
function M.ensure()
  if done then
    return
  end
  done = true
  local dir = M.doc_dir()
  local uv = vim.uv or vim.loop
  if uv.fs_stat(dir .. "/tags") or not uv.fs_stat(dir .. "/claude-tasks.txt") then
    return
  end
  if vim.fn.filewritable(dir) ~= 2 then
    return
  end
  pcall(vim.cmd.helptags, vim.fn.fnameescape(dir))
end

return M
