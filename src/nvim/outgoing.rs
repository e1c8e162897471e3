//! The backend's stdout, the RPC channel to Neovim: nvim-rs's messages, with pre-encoded
//! payloads spliced in, written by a thread of their own.
//!
//! nvim-rs only encodes `rmpv::Value`s, so a buffer write of 1,600 lines used to cost 1,600
//! `String` copies into `Value`s, their encoding into a buffer that grew by doubling, one more
//! copy into `tokio::fs::File`'s buffer, a blocking-pool hand-off, and 1,600 frees: about a
//! sixth of the backend's CPU in a flood. Instead, `editor` encodes the lines once, straight
//! from the rendered strings (`encode_lines`), and passes nvim-rs a small placeholder value
//! (`Payloads::add`). When nvim-rs flushes the message, this writer puts the encoded lines where
//! the placeholder is. The strings stay with the caller, which needs them if the write has to be
//! retried through Lua.
//!
//! A payload can also tell its caller when its message has been handed to the writer thread
//! (`Sent`): every message after that goes out after it, so a view may send its next write
//! without waiting for the answer to this one (Neovim runs one channel's requests in order).

use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use rmpv::Value;

/// The msgpack ext type of a placeholder. Neovim never sees one: each is replaced before the
/// message is written.
const PLACEHOLDER: i8 = 0x5c;

/// Fired once a payload's message is on its way, ahead of every later message.
pub type Sent = tokio::sync::oneshot::Sender<()>;

struct Waiting {
    token: u64,
    payload: Vec<u8>,
    sent: Option<Sent>,
}

/// Pre-encoded msgpack values waiting for the message that carries their placeholders.
pub struct Payloads {
    next: AtomicU64,
    waiting: Mutex<Vec<Waiting>>,
}

impl Default for Payloads {
    fn default() -> Self {
        // A per-process start, so that a token is unlikely to occur by chance in other bytes.
        let seed = u64::from(std::process::id()) << 40 ^ crate::task::now_ms() << 8;
        Payloads {
            next: AtomicU64::new(seed | 1),
            waiting: Mutex::new(Vec::new()),
        }
    }
}

/// A payload's place in a message; give it back to `Payloads::discard` after the call.
pub struct Token(u64);

impl Payloads {
    fn lock(&self) -> MutexGuard<'_, Vec<Waiting>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `encoded` (one complete msgpack value) and returns the value to send in its
    /// place. `sent` is fired when the message that carries it is handed to the writer thread.
    pub fn add(&self, encoded: Vec<u8>, sent: Option<Sent>) -> (Value, Token) {
        let token = self.next.fetch_add(2, Ordering::Relaxed);
        self.lock().push(Waiting {
            token,
            payload: encoded,
            sent,
        });
        let placeholder = Value::Ext(PLACEHOLDER, token.to_le_bytes().to_vec());
        (placeholder, Token(token))
    }

    /// Forgets a payload whose message was never written (the call failed before): a no-op
    /// once it was spliced in.
    pub fn discard(&self, token: Token) {
        self.lock().retain(|w| w.token != token.0);
    }

    /// `msg` cut at its placeholders, with their payloads in between (moved, not copied), and
    /// the payloads' `sent` signals, to fire once the parts are handed on.
    fn splice(&self, msg: Vec<u8>) -> (Vec<Vec<u8>>, Vec<Sent>) {
        let mut waiting = self.lock();
        let mut sent = Vec::new();
        if waiting.is_empty() {
            return (vec![msg], sent);
        }
        let mut out = Vec::new();
        let mut from = 0;
        let mut i = 0;
        // A placeholder is `fixext 8`: 0xd7, the type, the token's 8 bytes.
        while let Some(pos) = find_marker(&msg[i..]).map(|p| p + i) {
            let token = msg
                .get(pos + 2..pos + 10)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes);
            let found = token.and_then(|t| waiting.iter().position(|w| w.token == t));
            match found {
                Some(k) => {
                    let w = waiting.swap_remove(k);
                    out.push(msg[from..pos].to_vec());
                    out.push(w.payload);
                    sent.extend(w.sent);
                    from = pos + 10;
                    i = from;
                }
                None => i = pos + 1,
            }
        }
        if from == 0 {
            return (vec![msg], sent);
        }
        out.push(msg[from..].to_vec());
        (out, sent)
    }
}

fn find_marker(b: &[u8]) -> Option<usize> {
    memchr::memmem::find(b, &[0xd7, PLACEHOLDER as u8])
}

/// `lines` as a msgpack array of strings, as `rmpv` would encode it.
pub fn encode_lines(lines: &[String]) -> Vec<u8> {
    let size: usize = 5 + lines.iter().map(|l| l.len() + 5).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    let n = lines.len();
    if n < 16 {
        out.push(0x90 | n as u8);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(0xdc);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    for l in lines {
        let len = l.len();
        if len < 32 {
            out.push(0xa0 | len as u8);
        } else if let Ok(len) = u8::try_from(len) {
            out.extend_from_slice(&[0xd9, len]);
        } else if let Ok(len) = u16::try_from(len) {
            out.push(0xda);
            out.extend_from_slice(&len.to_be_bytes());
        } else {
            out.push(0xdb);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
        out.extend_from_slice(l.as_bytes());
    }
    out
}

/// The writer nvim-rs writes its messages to. A message (everything up to a flush; nvim-rs
/// flushes each one under its own lock, so messages never interleave) goes to the writer thread
/// whole, in order. Blocking writes on a thread of our own: `tokio::fs::File` would copy each
/// message once more and hand every write to the blocking pool.
pub struct Outgoing {
    pending: Vec<u8>,
    payloads: Arc<Payloads>,
    tx: mpsc::Sender<Vec<Vec<u8>>>,
}

impl Outgoing {
    /// Writes to `out` (the backend's stdout) from a new thread, which ends once the writer is
    /// dropped and everything is written, or at the first write error.
    pub fn spawn(
        out: std::fs::File,
        payloads: Arc<Payloads>,
    ) -> std::io::Result<(Outgoing, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel::<Vec<Vec<u8>>>();
        let thread = std::thread::Builder::new()
            .name("rpc-out".into())
            .spawn(move || write_loop(out, rx))?;
        let w = Outgoing {
            pending: Vec::new(),
            payloads,
            tx,
        };
        Ok((w, thread))
    }
}

fn write_loop(mut out: std::fs::File, rx: mpsc::Receiver<Vec<Vec<u8>>>) {
    while let Ok(parts) = rx.recv() {
        for part in parts {
            if let Err(e) = out.write_all(&part) {
                // Neovim is gone. Dropping the receiver fails every later write, and the reader
                // sees the end of the channel.
                crate::log_info!("writing to Neovim: {e}");
                return;
            }
        }
    }
}

impl futures_io::AsyncWrite for Outgoing {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.pending.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.pending.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let msg = std::mem::take(&mut self.pending);
        let (parts, sent) = self.payloads.splice(msg);
        if self.tx.send(parts).is_err() {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the channel to Neovim is closed",
            )));
        }
        for s in sent {
            // The caller may have stopped waiting; nothing to do then.
            let _ = s.send(());
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(b: &[u8]) -> Value {
        let mut r = b;
        let v = rmpv::decode::read_value(&mut r).unwrap();
        assert!(r.is_empty(), "bytes left over");
        v
    }

    fn lines_of(lens: &[usize]) -> Vec<String> {
        lens.iter()
            .enumerate()
            .map(|(i, &n)| {
                let c = char::from(b'a' + (i % 26) as u8);
                std::iter::repeat_n(c, n).collect()
            })
            .collect()
    }

    #[test]
    fn encoded_lines_are_what_rmpv_encodes() {
        // Every length class of strings and of arrays.
        for lens in [
            vec![],
            vec![0],
            vec![31, 32, 255, 256, 65_535, 65_536],
            vec![3; 15],
            vec![3; 16],
            vec![1; 65_535],
            vec![1; 65_536],
        ] {
            let lines = lines_of(&lens);
            let ours = encode_lines(&lines);
            let value = Value::Array(lines.iter().map(|l| Value::from(l.as_str())).collect());
            let mut theirs = Vec::new();
            rmpv::encode::write_value(&mut theirs, &value).unwrap();
            assert_eq!(ours, theirs, "lengths {:?}", &lens[..lens.len().min(8)]);
        }
        let multibyte = vec!["é€😀".to_owned()];
        assert_eq!(
            decode(&encode_lines(&multibyte)),
            Value::Array(vec![Value::from("é€😀")])
        );
    }

    #[test]
    fn a_placeholder_is_replaced_by_its_payload() {
        let p = Payloads::default();
        let lines = lines_of(&[5, 40, 300]);
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let (ph, _token) = p.add(encode_lines(&lines), Some(tx));
        let msg = Value::Array(vec![
            Value::from(0),
            Value::from(7),
            Value::from("nvim_call_atomic"),
            Value::Array(vec![Value::from(1), ph, Value::from(true)]),
        ]);
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &msg).unwrap();
        let (parts, sent) = p.splice(bytes);
        assert_eq!(parts.len(), 3);
        // The signal comes out with the parts, for the writer to fire once they are handed on.
        assert_eq!(sent.len(), 1);
        assert!(rx.try_recv().is_err());
        sent.into_iter().for_each(|s| s.send(()).unwrap());
        assert!(rx.try_recv().is_ok());
        let whole: Vec<u8> = parts.concat();
        let expect = Value::Array(vec![
            Value::from(0),
            Value::from(7),
            Value::from("nvim_call_atomic"),
            Value::Array(vec![
                Value::from(1),
                Value::Array(lines.iter().map(|l| Value::from(l.as_str())).collect()),
                Value::from(true),
            ]),
        ]);
        assert_eq!(decode(&whole), expect);
        // Used up: the same bytes again are left alone.
        assert!(p.lock().is_empty());
    }

    #[test]
    fn messages_without_a_waiting_token_pass_unchanged() {
        let p = Payloads::default();
        // The marker bytes inside an ordinary string, with no payload waiting...
        let mut fake = vec![0xd7, PLACEHOLDER as u8];
        fake.extend_from_slice(&42u64.to_le_bytes());
        let msg = Value::Array(vec![Value::Binary(fake.clone())]);
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &msg).unwrap();
        assert_eq!(p.splice(bytes.clone()).0, vec![bytes.clone()]);
        // ... and with one waiting under another token.
        let (_ph, token) = p.add(vec![0xc0], None);
        assert_eq!(p.splice(bytes.clone()).0, vec![bytes]);
        p.discard(token);
        assert!(p.lock().is_empty());
    }

    #[test]
    fn once_neovim_is_gone_a_flush_fails() {
        use futures_io::AsyncWrite;
        let (read, write) = nix::unistd::pipe().unwrap();
        drop(read);
        let (mut w, thread) = Outgoing::spawn(std::fs::File::from(write), Arc::default()).unwrap();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut flush = |w: &mut Outgoing| {
            assert!(matches!(
                Pin::new(&mut *w).poll_write(&mut cx, b"x"),
                Poll::Ready(Ok(1))
            ));
            Pin::new(w).poll_flush(&mut cx)
        };
        // Taken: the thread has not tried to write yet...
        assert!(matches!(flush(&mut w), Poll::Ready(Ok(()))));
        // ... then meets the closed pipe (EPIPE: Rust ignores SIGPIPE) and ends.
        thread.join().unwrap();
        match flush(&mut w) {
            Poll::Ready(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe),
            _ => panic!("a write after the end of the channel must fail"),
        }
    }

    #[test]
    fn messages_reach_the_file_whole_and_in_order() {
        use futures_io::AsyncWrite;
        let dir = std::env::temp_dir().join(format!("ct-outgoing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out");
        let file = std::fs::File::create(&path).unwrap();
        let payloads = Arc::new(Payloads::default());
        let (mut w, thread) = Outgoing::spawn(file, payloads.clone()).unwrap();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut expect = Vec::new();
        for i in 0..50u32 {
            let lines = lines_of(&[i as usize, 7]);
            let (tx, mut sent) = tokio::sync::oneshot::channel();
            let (ph, _t) = payloads.add(encode_lines(&lines), Some(tx));
            let mut bytes = Vec::new();
            rmpv::encode::write_value(&mut bytes, &Value::Array(vec![Value::from(i), ph])).unwrap();
            // Written in two pieces, as a writer may.
            let (a, b) = bytes.split_at(bytes.len() / 2);
            for piece in [a, b] {
                assert!(matches!(
                    Pin::new(&mut w).poll_write(&mut cx, piece),
                    Poll::Ready(Ok(_))
                ));
            }
            // Sent means handed on whole: not before the flush, and at once after it.
            assert!(sent.try_recv().is_err());
            assert!(matches!(
                Pin::new(&mut w).poll_flush(&mut cx),
                Poll::Ready(Ok(()))
            ));
            assert!(sent.try_recv().is_ok());
            let v = Value::Array(vec![
                Value::from(i),
                Value::Array(lines.iter().map(|l| Value::from(l.as_str())).collect()),
            ]);
            rmpv::encode::write_value(&mut expect, &v).unwrap();
        }
        // Dropping the writer ends the thread once it has written everything.
        drop(w);
        thread.join().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expect);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
