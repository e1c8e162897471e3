-- Benchmark helpers run inside the Neovim under test (loaded with dofile by bench/bench.py).
-- Everything is timed here with vim.uv.hrtime() (CLOCK_MONOTONIC, nanoseconds); the Python
-- driver only starts things, polls `B.state` now and then, and collects the numbers.

local api = vim.api
local uv = vim.uv or vim.loop
local hrtime = uv.hrtime

local B = {}
_G.B = B

--- The plugin on the runtimepath and its plugin/ file sourced, as a plugin manager would.
function B.init(root)
  vim.opt.runtimepath:prepend(root)
  vim.cmd("runtime plugin/claude-tasks.lua")
  vim.notify = function() end
end

-- ---------------------------------------------------------------------------------------------
-- Probes: lateness of a 5 ms timer.

local probe

--- A one-shot 5 ms timer, re-armed after each run. For each tick we record how late the libuv
--- callback ran (`raw`) and how late a `vim.schedule`d callback from it ran (`sched`, the main
--- loop's latency: what vim.defer_fn, keys and RPC requests see).
function B.probe_start(interval_ms)
  interval_ms = interval_ms or 5
  local p = { raw = {}, sched = {}, timer = uv.new_timer(), on = true, skip_before = 0 }
  probe = p
  local function arm()
    if not p.on then
      return
    end
    local due = hrtime() + interval_ms * 1e6
    p.timer:start(interval_ms, 0, function()
      p.raw[#p.raw + 1] = { due, hrtime() - due }
      vim.schedule(function()
        p.sched[#p.sched + 1] = { due, hrtime() - due }
        arm()
      end)
    end)
  end
  arm()
end

--- Ticks due before now are not counted: the driver's own call that starts the tasks (which
--- blocks the editor, reported apart) is not part of the streaming.
function B.probe_skip_until_now()
  if probe then
    probe.skip_before = hrtime()
  end
  return hrtime()
end

function B.probe_stop()
  local p = probe
  probe = nil
  local out = { raw = {}, sched = {} }
  if not p then
    return out
  end
  p.on = false
  p.timer:stop()
  p.timer:close()
  for _, s in ipairs(p.sched) do
    if s[1] >= p.skip_before then
      out.sched[#out.sched + 1] = s[2]
    end
  end
  for _, s in ipairs(p.raw) do
    if s[1] >= p.skip_before then
      out.raw[#out.raw + 1] = s[2]
    end
  end
  return out
end

-- ---------------------------------------------------------------------------------------------
-- The plugin's data path.

B.state = nil

local function backend_pid()
  local info = require("claude-tasks.backend").info()
  return info and vim.fn.jobpid(info.job) or nil
end

function B.backend_pid()
  return backend_pid()
end

--- VmHWM / VmRSS (kB) of a process from /proc/<pid>/status.
function B.proc_mem(pid)
  local f = io.open("/proc/" .. pid .. "/status", "r")
  if not f then
    return nil
  end
  local s = f:read("*a")
  f:close()
  return {
    hwm_kb = tonumber(s:match("VmHWM:%s*(%d+)")),
    rss_kb = tonumber(s:match("VmRSS:%s*(%d+)")),
  }
end

--- setup() and a running backend (its start-up is not part of the streaming time).
function B.setup(opts)
  require("claude-tasks").setup(opts)
  local t0 = hrtime()
  require("claude-tasks.backend").ensure()
  return { pid = backend_pid(), ensure_ms = (hrtime() - t0) / 1e6 }
end

--- The task record of task `id` (cwd: the current directory).
function B.get(id)
  return require("claude-tasks").get(id)
end

--- Starts `count` tasks (each runs `setup`'s cmd, with `prompt` and its number as the prompt),
--- then opens a buffer for each (not shown).
--- A task is done when its buffer's last line is its footer; `B.state.done` once all are.
--- Starting (rpcrequest `start`) and opening (`attach`) block the editor for a moment each; that
--- time is reported apart (`started_ms`, `opened_ms`) and probes skip it.
function B.stream_plugin(count, prompt)
  local ct = require("claude-tasks")
  local S = { t0 = hrtime(), left = count, bufs = {}, ids = {}, times = {}, failed = nil }
  B.state = S
  for i = 1, count do
    local id, err = ct.start((prompt or "bench stream") .. " " .. i, {})
    if not id then
      S.failed, S.done = err, true
      return false
    end
    S.ids[i] = id
  end
  S.started_ms = (hrtime() - S.t0) / 1e6
  for i = 1, count do
    local buf, oerr = ct.open(S.ids[i], { open = false })
    if not buf then
      S.failed, S.done = oerr, true
      return false
    end
    S.bufs[i] = buf
    local finished = false
    --- Whether the buffer ends with its footer now (counted once).
    local function check(b)
      local last = api.nvim_buf_get_lines(b, -2, -1, false)[1] or ""
      if last:find("^✓ done") or last:find("^✗ failed") or last:find("^■ cancelled") then
        finished = true
        S.times[i] = (hrtime() - S.t0) / 1e6
        if not last:find("^✓ done") then
          S.failed = last
        end
        S.left = S.left - 1
        if S.left == 0 then
          S.t1 = hrtime()
          S.ms = (S.t1 - S.t0) / 1e6
          S.done = true
        end
        return true
      end
    end
    api.nvim_buf_attach(buf, false, {
      on_lines = function(_, b, _, _, _, new_last)
        if finished then
          return true
        end
        if new_last ~= api.nvim_buf_line_count(b) then
          return
        end
        return check(b)
      end,
    })
    -- The backend may have written the whole output while `open` waited for its answer (Neovim
    -- serves the backend's writes meanwhile): then no change is left to see.
    if not finished then
      check(buf)
    end
  end
  S.opened_ms = (hrtime() - S.t0) / 1e6
  B.probe_skip_until_now()
  return true
end

--- Shows the run's buffers as a user watching them would, each window following its tail
--- (cursor on the last line): one buffer in the plugin's default `open = "split"` window; more
--- in a tab of their own, split into a grid of `cols` columns. Called right after
--- `stream_plugin` in the same request, so that the windows exist before the first write
--- lands. Showing them (the filetype, the first redraw) counts in the stream's time and is
--- left out of the probes, like `start()` and `open()`.
function B.show(cols)
  local S = B.state
  local window = require("claude-tasks.window")
  if #S.bufs == 1 then
    window.show(S.bufs[1], "split")
  else
    vim.cmd("tabnew")
    local scratch = api.nvim_get_current_buf()
    cols = math.min(cols or 4, #S.bufs)
    local rows = math.ceil(#S.bufs / cols)
    local col_wins = { api.nvim_get_current_win() }
    for c = 2, cols do
      vim.cmd("rightbelow vsplit")
      col_wins[c] = api.nvim_get_current_win()
    end
    local i = 0
    for c = 1, cols do
      api.nvim_set_current_win(col_wins[c])
      for r = 1, rows do
        i = i + 1
        if i > #S.bufs then
          break
        end
        if r > 1 then
          vim.cmd("rightbelow split")
        end
        local win = api.nvim_get_current_win()
        api.nvim_win_set_buf(win, S.bufs[i])
        api.nvim_win_set_cursor(win, { api.nvim_buf_line_count(S.bufs[i]), 0 })
      end
    end
    vim.cmd("wincmd =")
    pcall(api.nvim_buf_delete, scratch, { force = true })
  end
  S.shown_ms = (hrtime() - S.t0) / 1e6
  B.probe_skip_until_now()
  return #api.nvim_tabpage_list_wins(0)
end

--- Counts the redraws that draw something (a decoration provider's on_start) from now on.
function B.count_frames()
  B.frames = 0
  api.nvim_set_decoration_provider(api.nvim_create_namespace("bench.frames"), {
    on_start = function()
      B.frames = B.frames + 1
      return false
    end,
  })
end

--- Polled by the driver: { done, ms, failed, lines }.
function B.poll()
  local S = B.state
  if not S then
    return { done = false }
  end
  return {
    done = S.done or false,
    ms = S.ms,
    failed = S.failed,
    times = S.times,
    started_ms = S.started_ms,
    opened_ms = S.opened_ms,
    shown_ms = S.shown_ms,
  }
end

--- The floor: one nvim_buf_set_lines of exactly the lines of the finished buffer, into a fresh
--- buffer with the same options as a task buffer. Returns ms and the line count.
function B.floor(buf)
  buf = buf or B.state.bufs[1]
  local lines = api.nvim_buf_get_lines(buf, 0, -1, false)
  local bytes = 0
  for i = 1, #lines do
    bytes = bytes + #lines[i] + 1
  end
  local fresh = api.nvim_create_buf(false, true)
  local bo = vim.bo[fresh]
  bo.buftype, bo.bufhidden, bo.swapfile, bo.undolevels = "nofile", "hide", false, -1
  bo.filetype = vim.bo[buf].filetype
  collectgarbage()
  local t0 = hrtime()
  api.nvim_buf_set_lines(fresh, 0, -1, false, lines)
  local ms = (hrtime() - t0) / 1e6
  api.nvim_buf_delete(fresh, { force = true })
  return { ms = ms, lines = #lines, bytes = bytes, last = lines[#lines] }
end

--- Lines of a task buffer (for checks by the driver): count, first and last few.
function B.buf_summary(buf)
  buf = buf or B.state.bufs[1]
  local n = api.nvim_buf_line_count(buf)
  return {
    n = n,
    head = api.nvim_buf_get_lines(buf, 0, math.min(n, 8), false),
    tail = api.nvim_buf_get_lines(buf, math.max(0, n - 4), n, false),
  }
end

-- ---------------------------------------------------------------------------------------------
-- The pure-Lua peer: jobstart + on_stdout + vim.json.decode + the same rendering in Lua.

--- Streams `cmd` (a list) into a new buffer the usual Lua way, as well as it can be done:
--- partial lines kept as a list of pieces (no quadratic concatenation), one nvim_buf_set_lines
--- per on_stdout callback, the growing text line shown and replaced in place. Rendering as
--- the plugin's: header, model line, text deltas appended, the assistant text replaces the
--- streamed text when they differ, footer.
function B.stream_peer(cmd)
  local S = { t0 = hrtime() }
  B.state = S
  local buf = api.nvim_create_buf(false, true)
  local bo = vim.bo[buf]
  bo.buftype, bo.bufhidden, bo.swapfile, bo.undolevels = "nofile", "hide", false, -1
  bo.filetype = "markdown"
  S.bufs = { buf }

  local decode = vim.json.decode
  local set_lines = api.nvim_buf_set_lines
  local find, sub = string.find, string.sub
  local concat = table.concat

  local committed = 0 -- complete lines in the buffer
  local tail = "" -- the text line still growing (shown after the complete lines)
  local tail_shown = false
  local pending, np = {}, 0 -- complete lines not yet written
  local last_blank = true
  local block_start -- 0-based first line of the open text block
  local pieces, npieces = {}, 0 -- streamed text of the open block
  local partial, npartial = {}, 0 -- an incomplete JSON line, as pieces
  local result

  local function push(l)
    np = np + 1
    pending[np] = l
    last_blank = l == ""
  end
  local function blank()
    if not last_blank then
      push("")
    end
  end
  local function flush()
    if np == 0 and not tail_shown and tail == "" then
      return
    end
    local start = committed
    local lines = pending
    if tail ~= "" then
      lines[np + 1] = tail
    end
    set_lines(buf, start, -1, false, lines)
    committed = committed + np
    tail_shown = tail ~= ""
    pending, np = {}, 0
  end
  local function close_text()
    if block_start and tail ~= "" then
      push(tail)
    end
    tail = ""
    block_start, pieces, npieces = nil, {}, 0
  end
  local function text_delta(t)
    if not block_start then
      blank()
      block_start = committed + np
    end
    npieces = npieces + 1
    pieces[npieces] = t
    local s = tail ~= "" and (tail .. t) or t
    local pos = 1
    while true do
      local nl = find(s, "\n", pos, true)
      if not nl then
        break
      end
      push(sub(s, pos, nl - 1))
      pos = nl + 1
    end
    tail = sub(s, pos)
  end
  local function assistant_text(text)
    if block_start then
      local streamed = concat(pieces, "", 1, npieces)
      if streamed ~= text then
        text = text:gsub("^[\r\n]+", ""):gsub("%s+$", "")
        -- Replace the streamed block with the authoritative text.
        flush()
        committed = block_start
        tail, tail_shown = "", true
        for l in vim.gsplit(text, "\n", { plain = true }) do
          push(l)
        end
      else
        tail = ""
      end
      block_start, pieces, npieces = nil, {}, 0
    elseif text:find("%S") then
      text = text:gsub("^[\r\n]+", ""):gsub("%s+$", "")
      blank()
      for l in vim.gsplit(text, "\n", { plain = true }) do
        push(l)
      end
    end
  end
  local function handle(line)
    if line == "" then
      return
    end
    local ok, m = pcall(decode, line)
    if not ok or type(m) ~= "table" then
      close_text()
      blank()
      push(line)
      return
    end
    local ty = m.type
    if ty == "stream_event" then
      local ev = m.event
      local et = ev and ev.type
      if et == "content_block_delta" then
        local d = ev.delta
        if d and d.type == "text_delta" and type(d.text) == "string" then
          text_delta(d.text)
        end
      elseif et == "message_start" and block_start then
        -- unconfirmed text of a previous attempt goes
        flush()
        committed = block_start
        tail, tail_shown = "", true
        block_start, pieces, npieces = nil, {}, 0
      end
    elseif ty == "assistant" then
      for _, c in ipairs((m.message or {}).content or {}) do
        if c.type == "text" and type(c.text) == "string" then
          assistant_text(c.text)
        end
      end
    elseif ty == "system" and m.subtype == "init" then
      close_text()
      push(string.format("model: %s · permission: %s", m.model, m.permissionMode))
    elseif ty == "result" then
      result = m
    end
  end

  local cwd = vim.fn.getcwd()
  push("# #1 bench peer")
  push("cwd: " .. cwd .. " · started " .. os.date("!%Y-%m-%d %H:%M:%S UTC"))
  push("")
  flush()

  local function on_stdout(_, data)
    local n = #data
    if n == 1 then
      if data[1] ~= "" then
        npartial = npartial + 1
        partial[npartial] = data[1]
      end
      return
    end
    -- data[1] completes the partial line; data[2..n-1] are whole lines; data[n] begins one.
    local first = data[1]
    if npartial > 0 then
      npartial = npartial + 1
      partial[npartial] = first
      first = concat(partial, "", 1, npartial)
      partial, npartial = {}, 0
    end
    handle(first)
    for i = 2, n - 1 do
      handle(data[i])
    end
    if data[n] ~= "" then
      partial[1], npartial = data[n], 1
    end
    flush()
  end

  local job = vim.fn.jobstart(cmd, {
    on_stdout = on_stdout,
    on_exit = function(_, code)
      if npartial > 0 then
        handle(concat(partial, "", 1, npartial))
        partial, npartial = {}, 0
      end
      close_text()
      blank()
      local secs = (hrtime() - S.t0) / 1e9
      if code == 0 and result and not result.is_error then
        push(
          string.format(
            "✓ done in %.1fs · %d turn · $%.4f",
            secs,
            result.num_turns or 0,
            result.total_cost_usd or 0
          )
        )
      else
        push(string.format("✗ failed: exit code %d", code))
        S.failed = "exit " .. code
      end
      flush()
      S.t1 = hrtime()
      S.ms = (S.t1 - S.t0) / 1e6
      S.done = true
    end,
  })
  S.job = job
  if job <= 0 then
    S.failed, S.done = "jobstart failed", true
    return false
  end
  vim.fn.chanclose(job, "stdin")
  B.probe_skip_until_now()
  return true
end

--- Stops the peer's job (timeout).
function B.stop_peer()
  if B.state and B.state.job then
    pcall(vim.fn.jobstop, B.state.job)
  end
end

-- ---------------------------------------------------------------------------------------------
-- Latency at a low rate: lines "seq=<n> t=<CLOCK_MONOTONIC ns>" written by bench/lowrate.py.

function B.latency_attach(buf)
  local L = { seen = {}, lat = {} }
  B.lat = L
  api.nvim_buf_attach(buf, false, {
    on_lines = function(_, b, _, first, _, new_last)
      local now = hrtime()
      local lines = api.nvim_buf_get_lines(b, first, new_last, false)
      for _, l in ipairs(lines) do
        local seq, t = l:match("^seq=(%d+) t=(%d+)$")
        if seq and not L.seen[seq] then
          L.seen[seq] = true
          L.lat[#L.lat + 1] = { tonumber(seq), now - tonumber(t) }
        end
      end
    end,
  })
end

--- The same stamps taken when a `seq=` line is drawn in a window (a decoration provider's
--- on_line, during the redraw), instead of when it lands in the buffer.
function B.latency_drawn(buf)
  local L = { seen = {}, lat = {} }
  B.lat_drawn = L
  api.nvim_set_decoration_provider(api.nvim_create_namespace("bench.latency"), {
    on_win = function(_, _, b)
      return b == buf
    end,
    on_line = function(_, _, b, row)
      local now = hrtime()
      local l = api.nvim_buf_get_lines(b, row, row + 1, false)[1]
      local seq, t = (l or ""):match("^seq=(%d+) t=(%d+)$")
      if seq and not L.seen[seq] then
        L.seen[seq] = true
        L.lat[#L.lat + 1] = { tonumber(seq), now - tonumber(t) }
      end
    end,
  })
end

function B.latency_drawn_result()
  return B.lat_drawn and B.lat_drawn.lat or {}
end

function B.latency_result()
  return B.lat and B.lat.lat or {}
end

-- ---------------------------------------------------------------------------------------------
-- The cost of drawing the output: one redraw of a window, by what highlights it.

--- A Claude-like answer: prose with inline markup, headings, lists, a quote, code blocks, tool
--- calls and their results, repeated.
local RICH = {
  "I'll start by reading the parser and its tests, then fix the `parse_line` edge case.",
  "",
  "## What changed",
  "",
  "- `src/parser.rs`: **the tail** of a line is checked once, see [the spec](https://x.io/s).",
  "- *Tests* cover snake_case_names and a_b_c keys.",
  "  1. nested step with `code`",
  "",
  "```rust",
  "fn parse_line(line: &str) -> Option<Msg> {",
  "    let v: Value = serde_json::from_str(line).ok()?;",
  "    Some(Msg::from(v)) // **not bold** here",
  "}",
  "```",
  "",
  "> Note: the old behaviour is kept behind a flag.",
  "",
  "● Bash(cargo test --lib parser)",
  "  ⎿ running 42 tests",
  "    test parser::tests::tail ... ok",
  "  … 40 more lines",
  "",
  "All 42 tests pass; the fix is in place.",
  "",
}

--- The current window shows a fresh buffer of `rows` rich lines, highlighted by `how`:
--- "claude-tasks" (the plugin's provider), "markdown" (the regex syntax), "treesitter"
--- (vim.treesitter.start, markdown; its parse counted in the frame) or "none". Returns the
--- buffer.
function B.frame_buffer(how, rows)
  local buf = api.nvim_create_buf(false, true)
  local lines = { "# #1 bench frames", "cwd: /tmp · started now", "" }
  for i = 1, rows do
    lines[#lines + 1] = RICH[(i - 1) % #RICH + 1]
  end
  api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  api.nvim_win_set_buf(0, buf)
  vim.wo.wrap = false
  if how == "claude-tasks" then
    require("claude-tasks.highlights").attach(buf)
    vim.bo[buf].filetype = "claude-tasks"
  elseif how == "markdown" then
    vim.cmd("syntax on")
    vim.bo[buf].filetype = "markdown"
  elseif how == "treesitter" then
    -- Neovim 0.11 parses in slices after the redraw by default: counted in the frame here.
    vim.g._ts_force_sync_parsing = true
    vim.bo[buf].syntax = "OFF"
    vim.treesitter.start(buf, "markdown")
  end
  api.nvim_win_set_cursor(0, { api.nvim_buf_line_count(buf), 0 })
  vim.cmd("redraw")
  return buf
end

--- ms per redraw of the current window over `frames` redraws: "follow" appends 3 lines before
--- each (a stream the window follows), "page" shows the next page (every row new, as in a
--- flood; the plugin's provider is told to decorate it anyway, FLYING_MS = 0).
function B.frame_cost(buf, mode, frames)
  local hl = require("claude-tasks.highlights")
  local flying = hl.FLYING_MS
  local height = api.nvim_win_get_height(0)
  local total, next_rich = 0, 1
  if mode == "page" then
    hl.FLYING_MS = 0
    api.nvim_win_set_cursor(0, { 1, 0 })
    vim.cmd("normal! zt")
    vim.cmd("redraw")
  end
  for _ = 1, frames do
    if mode == "follow" then
      local add = {}
      for j = 1, 3 do
        add[j] = RICH[next_rich]
        next_rich = next_rich % #RICH + 1
      end
      api.nvim_buf_set_lines(buf, -1, -1, false, add)
      api.nvim_win_set_cursor(0, { api.nvim_buf_line_count(buf), 0 })
    else
      local top = vim.fn.line("w0") + height
      if top + height > api.nvim_buf_line_count(buf) then
        top = 1
      end
      vim.fn.winrestview({ topline = top, lnum = top })
    end
    local t0 = hrtime()
    vim.cmd("redraw")
    total = total + hrtime() - t0
  end
  hl.FLYING_MS = flying
  return total / frames / 1e6
end

-- ---------------------------------------------------------------------------------------------
-- Statusline cost.

--- ns per call of require("claude-tasks").statusline() (and of a cached reference to the
--- function, and of an empty loop), over n calls.
function B.statusline_cost(n)
  local ct = require("claude-tasks")
  local value = ct.statusline()
  local sl = ct.statusline
  local sink
  collectgarbage()
  collectgarbage("stop")
  local t0 = hrtime()
  for _ = 1, n do
    sink = require("claude-tasks").statusline()
  end
  local t1 = hrtime()
  for _ = 1, n do
    sink = sl()
  end
  local t2 = hrtime()
  for _ = 1, n do
    sink = value
  end
  local t3 = hrtime()
  -- As a statusline would call it: through 'statusline' evaluation (%{%v:lua...%}).
  local m = math.floor(n / 10)
  local t4 = hrtime()
  for _ = 1, m do
    api.nvim_eval_statusline("%{%v:lua.require'claude-tasks'.statusline()%}", {})
  end
  local t5 = hrtime()
  for _ = 1, m do
    api.nvim_eval_statusline("x", {})
  end
  local t6 = hrtime()
  collectgarbage("restart")
  local _ = sink
  return {
    value = value,
    require_call_ns = (t1 - t0) / n,
    ref_call_ns = (t2 - t1) / n,
    empty_loop_ns = (t3 - t2) / n,
    eval_statusline_ns = (t5 - t4) / m,
    eval_statusline_empty_ns = (t6 - t5) / m,
  }
end

-- ---------------------------------------------------------------------------------------------
-- Backend spawn to first answered request.

function B.spawn_version(bin, runs)
  local out = {}
  local dir = vim.fn.tempname()
  vim.fn.mkdir(dir, "p")
  for i = 1, runs do
    local t0 = hrtime()
    local job = vim.fn.jobstart({ bin, "--state-dir", dir, "--log-file", dir .. "/log" }, {
      rpc = true,
    })
    local v = vim.fn.rpcrequest(job, "version")
    out[i] = (hrtime() - t0) / 1e6
    assert(type(v) == "string")
    vim.fn.jobstop(job)
    vim.fn.jobwait({ job }, 2000)
  end
  return out
end

--- The plugin's own first use: backend.ensure() (find the binary, spawn, `version`,
--- `configure`), after which a request is answered.
function B.ensure_cold()
  local t0 = hrtime()
  require("claude-tasks.backend").ensure()
  return (hrtime() - t0) / 1e6
end

return B
