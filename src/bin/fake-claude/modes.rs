//! The turns that do not ask anything: a recorded transcript replayed, the prompt echoed, a
//! flood of lines, one huge line, raw bytes, and the demo session (a Bash `ls`, a summary).

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use crate::json::{chunks, hex, js, now_iso, push_js, push_js_body, uuid};
use crate::opts::{Cli, Opts};
use crate::out::{lock, Ctx, Emitter, Out};

/// One turn of a mode that asks nothing, as the fake always wrote it; with stream-json input the
/// prompt's echo (`--replay-user-messages`) follows the init line, and costs add up over the
/// process's turns as the real CLI's `total_cost_usd` does.
pub fn legacy_turn(em: &mut Emitter, ctx: &Ctx, o: &Opts, prompt: &[u8]) -> Result<(), String> {
    let with_result = !o.no_result && !o.hang;
    let result_error = |turns: u32| {
        ctx.error_result(
            turns,
            r#""end_turn""#,
            "completed",
            &[format!("fake-claude: --fake-exit={}", o.exit)],
        )
    };

    if let Some(path) = &o.transcript {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let text = String::from_utf8_lossy(&data);
        em.replay(ctx);
        for raw in text.lines() {
            if raw.is_empty() {
                continue;
            }
            let is_result = serde_json::from_str::<serde_json::Value>(raw)
                .ok()
                .is_some_and(|v| v.get("type").and_then(|t| t.as_str()) == Some("result"));
            if is_result && !with_result {
                continue;
            }
            em.line(&replace_session_id(raw, &ctx.sid));
        }
    } else if o.echo_stdin {
        let text = String::from_utf8_lossy(prompt).into_owned();
        em.init(ctx);
        em.lines(ctx.status_before_request());
        em.line(&ctx.message_start("msg_fake_echo"));
        em.text_block(ctx, "msg_fake_echo", 0, &text, 4096);
        em.lines(ctx.message_end("msg_fake_echo", "end_turn", text.len() / 4 + 1));
        em.with(|out| out.turns = 1);
        if with_result {
            em.line(&if o.exit == 0 {
                ctx.success_result(1, &text, em.cost(0.0012))
            } else {
                result_error(1)
            });
        }
    } else if let Some(n) = o.lines {
        let b = o.line_bytes.unwrap_or(80).max(1);
        const MSG: &str = "msg_fake_lines";
        em.init(ctx);
        em.lines(ctx.status_before_request());
        em.line(&ctx.message_start(MSG));
        em.line(&ctx.stream_event(
            MSG,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ));
        // One buffer for every line, and lines handed over in batches: a flood is what this
        // mode is for, and the benchmarks' live runs should measure the backend rather than
        // this producer.
        // With a delay, a line at a time as before (the delay is per line).
        let limit = if em.delay.is_zero() { 256 * 1024 } else { 0 };
        let mut batch = String::with_capacity(limit + 2 * b + 256);
        let mut piece = String::with_capacity(b + 16);
        for i in 0..n {
            piece.clear();
            push_numbered_line(&mut piece, i + 1, b);
            ctx.push_stream_event(&mut batch, MSG, "", |s| {
                s.push_str(
                    r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"#,
                );
                push_js(s, &piece);
                s.push_str("}}");
            });
            if batch.len() >= limit || i + 1 == n {
                em.line(&batch);
                batch.clear();
            } else {
                batch.push('\n');
            }
        }
        drop((batch, piece));
        // The same text again, generated a second time as it is written: holding a flood's
        // whole text and its escaped copy (twice the output) cost the producer more in page
        // faults than generating it.
        with_numbered_lines(em, &ctx.assistant_text(MSG, ""), "text", n, b);
        em.line(&ctx.stream_event(MSG, r#"{"type":"content_block_stop","index":0}"#));
        em.lines(ctx.message_end(MSG, "end_turn", n.saturating_mul(b) / 4 + 1));
        em.with(|out| out.turns = 1);
        if with_result {
            if o.exit != 0 {
                em.line(&result_error(1));
            } else if ctx.cli == Cli::V2_1_332 {
                // The whole answer again, before `type`, as 2.1.332 writes it.
                with_numbered_lines(
                    em,
                    &ctx.success_result(1, "", em.cost(0.0042)),
                    "result",
                    n,
                    b,
                );
            } else {
                em.line(&ctx.success_result(1, &format!("Streamed {n} lines."), em.cost(0.0042)));
            }
        }
    } else if let Some(bytes) = o.huge_line {
        em.init(ctx);
        em.lines(ctx.status_before_request());
        let (line, text) = huge_assistant_line(ctx, bytes);
        em.line(&line);
        drop(line);
        em.with(|out| out.turns = 1);
        if with_result {
            em.line(&match (o.exit, ctx.cli) {
                (0, Cli::V2_1_197) => {
                    ctx.success_result(1, "Wrote one huge line.", em.cost(0.0042))
                }
                // The whole answer again, before `type`, as 2.1.332 writes it.
                (0, Cli::V2_1_332) => ctx.success_result(1, &text, em.cost(0.0042)),
                _ => result_error(1),
            });
        }
    } else {
        builtin_script(em, ctx, o, with_result, &result_error);
    }

    Ok(())
}

/// `--fake-raw`: the file's bytes, unchanged, one write per chunk.
pub fn copy_raw(out: &Mutex<Out>, path: &Path, chunk: usize, delay_ms: u64) -> Result<(), String> {
    let mut f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = vec![0u8; chunk];
    let mut first = true;
    loop {
        let n = read_full(&mut f, &mut buf).map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            return Ok(());
        }
        if !first && delay_ms > 0 {
            // Not holding the lock while sleeping: the signal thread must be able to run.
            std::thread::sleep(Duration::from_millis(delay_ms));
        }
        first = false;
        let mut o = lock(out);
        o.started = true;
        // Straight to the file (the buffer is empty: nothing else is written in raw mode).
        o.w.flush().map_err(|e| format!("stdout: {e}"))?;
        o.w.get_mut()
            .write_all(&buf[..n])
            .map_err(|e| format!("stdout: {e}"))?;
    }
}

/// Reads until `buf` is full or the file ends, so chunks have the requested size.
pub fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The demo session: look at the project with a Bash `ls`, then summarise.
pub fn builtin_script(
    em: &mut Emitter,
    ctx: &Ctx,
    o: &Opts,
    with_result: bool,
    result_error: &dyn Fn(u32) -> String,
) {
    let msg1 = format!("msg_fake_{}", hex(12));
    let tool_id = format!("toolu_fake_{}", hex(12));
    em.init(ctx);
    em.line(&ctx.status_requesting());
    em.line(&ctx.message_start(&msg1));
    em.text_block(ctx, &msg1, 0, "I'll look at the project first.", 6);
    em.line(&ctx.stream_event(
        &msg1,
        &format!(
            r#"{{"type":"content_block_start","index":1,"content_block":{{"type":"tool_use","id":{},"name":"Bash","input":{{}}}}}}"#,
            js(&tool_id)
        ),
    ));
    for piece in chunks(r#"{"command": "ls", "description": "List files"}"#, 16) {
        em.line(&ctx.stream_event(
            &msg1,
            &format!(
                r#"{{"type":"content_block_delta","index":1,"delta":{{"type":"input_json_delta","partial_json":{}}}}}"#,
                js(piece)
            ),
        ));
    }
    em.line(&ctx.assistant(
        &msg1,
        &format!(
            r#"{{"type":"tool_use","id":{},"name":"Bash","input":{{"command":"ls","description":"List files"}}}}"#,
            js(&tool_id)
        ),
    ));
    em.line(&ctx.stream_event(&msg1, r#"{"type":"content_block_stop","index":1}"#));
    em.lines(ctx.message_end(&msg1, "tool_use", 23));
    em.with(|out| {
        out.turns = 1;
        out.pending_tool = Some(tool_id.clone());
    });
    if o.hang {
        // The tool "runs" forever; SIGINT produces the rejected tool_result.
        return;
    }

    let entries = list_dir(Path::new(&ctx.cwd));
    let listing = entries.join("\n");
    em.line(&format!(
        r#"{{"type":"user","message":{{"role":"user","content":[{{"tool_use_id":{},"type":"tool_result","content":{},"is_error":false}}]}},"parent_tool_use_id":null,"session_id":{},"uuid":{},"timestamp":{},"tool_use_result":{{"stdout":{},"stderr":"","interrupted":false,"isImage":false,"noOutputExpected":false}}}}"#,
        js(&tool_id),
        js(&listing),
        js(&ctx.sid),
        js(&uuid()),
        js(&now_iso()),
        js(&listing)
    ));
    em.with(|out| out.pending_tool = None);
    em.line(&ctx.status_requesting());
    let msg2 = format!("msg_fake_{}", hex(12));
    let summary = format!(
        "The project has {} {}. Done.",
        entries.len(),
        if entries.len() == 1 {
            "entry"
        } else {
            "entries"
        }
    );
    em.line(&ctx.message_start(&msg2));
    em.text_block(ctx, &msg2, 0, &summary, 6);
    em.lines(ctx.message_end(&msg2, "end_turn", 14));
    em.with(|out| out.turns = 2);
    if with_result {
        em.line(&if o.exit == 0 {
            ctx.success_result(2, &summary, em.cost(0.0123))
        } else {
            result_error(2)
        });
    }
}

/// What `ls` prints: visible names, sorted bytewise (as `ls` does in the C locale).
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Appends `line 000042 abc…\n`, exactly `bytes` bytes long with its newline (the number is cut
/// when `bytes` is too small for it).
pub fn push_numbered_line(out: &mut String, i: usize, bytes: usize) {
    let start = out.len();
    out.push_str("line ");
    // Digits by hand, at least six: `write!` was a seventh of a flood's time.
    let mut digits = [b'0'; 20];
    let (mut n, mut at) = (i, digits.len());
    while n > 0 || digits.len() - at < 6 {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
    out.push(' ');
    if out.len() - start + 1 > bytes {
        out.truncate(start + bytes.saturating_sub(1));
    }
    const FILL: &str = "abcdefghijklmnopqrstuvwxyz";
    while out.len() - start + 1 < bytes {
        let n = (bytes - 1 - (out.len() - start)).min(FILL.len());
        out.push_str(&FILL[..n]);
    }
    out.push('\n');
}

/// Writes `frame`, a line with the empty string `"key":""`, with the `n` numbered lines of `b`
/// bytes in that string, generated as they are written. Under the output lock, so the line stays
/// whole.
pub fn with_numbered_lines(em: &Emitter, frame: &str, key: &str, n: usize, b: usize) {
    let empty = format!(r#""{key}":"""#);
    let open = frame
        .find(&empty)
        .expect("the frame holds an empty string for the text");
    // Between the empty string's quotes.
    let (head, tail) = frame.split_at(open + empty.len() - 1);
    let (mut batch, mut piece) = (String::new(), String::new());
    em.with(|out| {
        // A turn an interrupt stopped writes nothing more (a line begun here would be left
        // without its end, and the next turn's first line glued to it).
        if out.stopped {
            return;
        }
        out.part(head);
        for i in 0..n {
            batch.clear();
            piece.clear();
            push_numbered_line(&mut piece, i + 1, b);
            push_js_body(&mut batch, &piece);
            out.part(&batch);
        }
        out.line(tail);
    });
}

/// An `assistant` text line of exactly `bytes` bytes when `bytes` exceeds the JSON framing
/// (ASCII filler without characters that need escaping, so the length is exact), and its text.
pub fn huge_assistant_line(ctx: &Ctx, bytes: usize) -> (String, String) {
    let frame = ctx.assistant_text("msg_fake_huge", "");
    let fill_len = bytes.saturating_sub(frame.len());
    let pattern = "lorem ipsum dolor sit amet ";
    let mut text = String::with_capacity(fill_len);
    while text.len() < fill_len {
        let take = (fill_len - text.len()).min(pattern.len());
        text.push_str(&pattern[..take]);
    }
    // The frame has the same length whatever the ids (fixed-size hex), so this is exact.
    (ctx.assistant_text("msg_fake_huge", &text), text)
}

/// Replaces every `"session_id":"…"` value with `sid` (the compact form the CLI writes).
pub fn replace_session_id(line: &str, sid: &str) -> String {
    const KEY: &str = r#""session_id":""#;
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(pos) = rest.find(KEY) {
        let start = pos + KEY.len();
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        // Ids are uuids, so the value has no escaped quotes: it ends at the next '"'.
        match tail.find('"') {
            Some(end) => {
                out.push_str(sid);
                rest = &tail[end..];
            }
            None => {
                rest = tail;
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_lines_have_the_asked_length() {
        for bytes in [1, 2, 5, 12, 13, 14, 80, 200] {
            let mut s = String::from("x");
            push_numbered_line(&mut s, 42, bytes);
            assert_eq!(s.len() - 1, bytes, "{bytes}: {s:?}");
            assert!(s.ends_with('\n'));
        }
        for (i, head) in [
            (7, "line 000007 "),
            (123_456, "line 123456 "),
            (1_234_567, "line 1234567 "),
        ] {
            let mut s = String::new();
            push_numbered_line(&mut s, i, 40);
            assert!(s.starts_with(head), "{i}: {s:?}");
        }
    }
}
