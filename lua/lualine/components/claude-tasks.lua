-- lualine component: `sections = { lualine_x = { "claude-tasks" } }`.
-- Shows require("claude-tasks").statusline() ("" when no task runs, e.g. "✻ 2" otherwise).
local ok, component = pcall(require, "lualine.component")
if not ok then
  -- Loaded without lualine: a harmless stand-in.
  return {
    update_status = function()
      return require("claude-tasks").statusline()
    end,
  }
end

local M = component:extend()

function M:init(options)
  M.super.init(self, options)
  self.statusline = require("claude-tasks").statusline
end

function M:update_status()
  return self.statusline()
end

return M
