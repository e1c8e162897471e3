-- Which files have unsaved changes in this editor, told to the backend whenever the list
-- changes (doc/protocol.md, "Unsaved work is never overwritten"): a task's edit of such a file
-- then becomes a request instead of overwriting the user's work.

local M = {}

local api = vim.api

--- The list last sent (sorted, joined), so that nothing is sent when nothing changed.
local last = nil
local scheduled = false

--- The absolute paths of the file buffers with unsaved changes, sorted.
function M.files()
  local out = {}
  for _, buf in ipairs(api.nvim_list_bufs()) do
    if
      api.nvim_buf_is_loaded(buf)
      and vim.bo[buf].modified
      and vim.bo[buf].buftype == ""
      and api.nvim_buf_get_name(buf) ~= ""
    then
      out[#out + 1] = vim.fn.fnamemodify(api.nvim_buf_get_name(buf), ":p")
    end
  end
  table.sort(out)
  return out
end

--- Sends the list now if it changed (`force`: in any case, e.g. to a new backend).
function M.send(force)
  local backend = package.loaded["claude-tasks.backend"]
  if not backend or not backend.running() then
    return
  end
  local files = M.files()
  local joined = table.concat(files, "\n")
  if joined == last and not force then
    return
  end
  local info = backend.info()
  if not info then
    return
  end
  -- A notification: nothing waits for the answer in the middle of an edit.
  local ok = pcall(vim.rpcnotify, info.job, "unsaved", { files = files })
  if ok then
    last = joined
  end
end

local function soon()
  if scheduled then
    return
  end
  scheduled = true
  vim.schedule(function()
    scheduled = false
    M.send(false)
  end)
end

--- Starts following the buffers (idempotent); the backend gets the list at once unless it is
--- empty.
function M.setup()
  local group = api.nvim_create_augroup("claude-tasks.unsaved", { clear = true })
  api.nvim_create_autocmd(
    { "BufModifiedSet", "BufWritePost", "BufDelete", "BufWipeout", "BufFilePost", "BufUnload" },
    { group = group, callback = soon, desc = "claude-tasks: tell the backend about unsaved files" }
  )
  -- A new backend knows of no unsaved file: only a non-empty list is news to it.
  last = ""
  M.send(false)
end

return M
