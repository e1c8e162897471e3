//! Follows a file that another process appends to (the CLI's `transcript.jsonl` / `stderr.log`).
//!
//! The CLI writes its output to regular files (pipes lose the tail, see DESIGN §3), so "new
//! output" is "the file grew": inotify tells us when to read again, reads never block.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::Path;
use std::time::Duration;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Once the watch is gone (file deleted or moved away), nothing will ever wake us again: fall
/// back to polling so a caller waiting on `changed` is never stuck forever.
const POLL_WITHOUT_WATCH: Duration = Duration::from_millis(100);

/// `AsyncFd` wants `AsRawFd`; nix's `Inotify` only offers `AsFd`.
struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

pub struct Follower {
    file: File,
    position: u64,
    /// Until the first `changed`: registering with the reactor needs a runtime, and `open`
    /// should work outside one (e.g. in `spawn_blocking`).
    pending: Option<InotifyFd>,
    async_fd: Option<AsyncFd<InotifyFd>>,
    watch_gone: bool,
}

impl Follower {
    /// Watches `path`, then opens it and seeks to `offset`. Watching first means a write that
    /// lands between the open and the first `changed` still leaves an event queued.
    pub fn open(path: &Path, offset: u64) -> io::Result<Follower> {
        let with_path = |op: &str, e: io::Error| {
            io::Error::new(e.kind(), format!("{op} {}: {e}", path.display()))
        };
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| with_path("cannot create inotify instance for", e.into()))?;
        inotify
            .add_watch(
                path,
                AddWatchFlags::IN_MODIFY
                    | AddWatchFlags::IN_CLOSE_WRITE
                    | AddWatchFlags::IN_ATTRIB
                    | AddWatchFlags::IN_DELETE_SELF
                    | AddWatchFlags::IN_MOVE_SELF,
            )
            .map_err(|e| with_path("cannot watch", e.into()))?;
        let mut file = File::open(path).map_err(|e| with_path("cannot open", e))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| with_path("cannot seek in", e))?;
        Ok(Follower {
            file,
            position: offset,
            pending: Some(InotifyFd(inotify)),
            async_fd: None,
            watch_gone: false,
        })
    }

    /// Reads what is in the file now; `Ok(0)` at end of file, without waiting.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.file.read(buf) {
                Ok(n) => {
                    self.position += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits until the file may have grown since the last `read`. Every queued event is
    /// consumed, so one wakeup stands for any number of writes; a wakeup can be spurious (an
    /// event for data already read) but never lost, since the watch predates the open.
    pub async fn changed(&mut self) -> io::Result<()> {
        if self.watch_gone {
            tokio::time::sleep(POLL_WITHOUT_WATCH).await;
            return Ok(());
        }
        if let Some(fd) = self.pending.take() {
            // SAFETY: `InotifyFd` owns its fd (an `OwnedFd` inside nix's `Inotify`), so the fd
            // stays open, and always the same, for as long as the `AsyncFd` holds it.
            let afd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                .map_err(io::Error::from)?;
            self.async_fd = Some(afd);
        }
        let Some(afd) = self.async_fd.as_ref() else {
            return Err(io::Error::other("inotify watch unavailable"));
        };
        let mut woke = false;
        let mut gone = false;
        loop {
            let mut guard = afd.readable().await?;
            match guard.try_io(|fd| fd.get_ref().0.read_events().map_err(io::Error::from)) {
                Ok(Ok(events)) => {
                    woke = true;
                    gone |= events
                        .iter()
                        .any(|ev| ev.mask.contains(AddWatchFlags::IN_IGNORED));
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                // Queue drained (readiness is now cleared): done if we consumed anything,
                // otherwise the readiness was stale and we wait for the next event.
                Err(_would_block) => {
                    if woke {
                        break;
                    }
                }
            }
        }
        self.watch_gone = gone;
        Ok(())
    }

    /// File offset of the next byte `read` will return.
    pub fn position(&self) -> u64 {
        self.position
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;
    use tokio::time::timeout;

    /// A failure guard only: every wait below is woken by an event, this just bounds a hang.
    const GUARD: Duration = Duration::from_secs(10);

    /// A fresh empty file in its own temp dir, removed on drop.
    struct TempFile(PathBuf);
    impl TempFile {
        fn new(name: &str) -> TempFile {
            let dir = std::env::temp_dir().join(format!(
                "ct-follow-{}-{}-{name}",
                std::process::id(),
                crate::task::now_ms()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("out.log");
            File::create(&path).unwrap();
            TempFile(path)
        }
    }
    impl Drop for TempFile {
        fn drop(&mut self) {
            if let Some(dir) = self.0.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
    impl AsRef<Path> for TempFile {
        fn as_ref(&self) -> &Path {
            &self.0
        }
    }
    impl std::ops::Deref for TempFile {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    fn append(path: &Path, data: &[u8]) {
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(data).unwrap();
    }

    fn read_now(f: &mut Follower) -> Vec<u8> {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                return all;
            }
            all.extend_from_slice(&buf[..n]);
        }
    }

    #[tokio::test]
    async fn changed_wakes_on_append_made_before_waiting() {
        let path = TempFile::new("wake");
        let mut f = Follower::open(&path, 0).unwrap();
        assert!(read_now(&mut f).is_empty());
        // The write lands between the empty read and `changed`: the queued event must wake it.
        append(&path, b"hello\n");
        timeout(GUARD, f.changed()).await.unwrap().unwrap();
        assert_eq!(read_now(&mut f), b"hello\n");
        assert_eq!(f.position(), 6);

        // Several writes coalesce into (at least) one wakeup and nothing is lost.
        append(&path, b"a");
        append(&path, b"b");
        append(&path, b"c");
        timeout(GUARD, f.changed()).await.unwrap().unwrap();
        assert_eq!(read_now(&mut f), b"abc");
    }

    #[tokio::test]
    async fn changed_wakes_on_append_made_while_waiting() {
        let path = TempFile::new("waiting");
        let mut f = Follower::open(&path, 0).unwrap();
        let writer_path = path.to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let writer = std::thread::spawn(move || {
            // Wait for the test to be about to wait; order does not matter for correctness.
            rx.recv().unwrap();
            append(&writer_path, b"late\n");
        });
        tx.send(()).unwrap();
        timeout(GUARD, f.changed()).await.unwrap().unwrap();
        writer.join().unwrap();
        assert_eq!(read_now(&mut f), b"late\n");
    }

    #[tokio::test]
    async fn quiet_file_does_not_wake() {
        // Spurious wakeups are allowed by the contract, but a quiet file waking at once would
        // make the caller spin; check the drained queue really waits.
        let path = TempFile::new("quiet");
        append(&path, b"x");
        let mut f = Follower::open(&path, 0).unwrap();
        assert_eq!(read_now(&mut f), b"x");
        assert!(timeout(Duration::from_millis(100), f.changed())
            .await
            .is_err());
    }

    #[tokio::test]
    async fn starts_at_offset() {
        let path = TempFile::new("offset");
        append(&path, b"0123456789");
        let mut f = Follower::open(&path, 4).unwrap();
        assert_eq!(f.position(), 4);
        assert_eq!(read_now(&mut f), b"456789");
        append(&path, b"ab");
        timeout(GUARD, f.changed()).await.unwrap().unwrap();
        assert_eq!(read_now(&mut f), b"ab");
        assert_eq!(f.position(), 12);
    }

    #[tokio::test]
    async fn missing_file_is_an_error_naming_it() {
        let tmp = TempFile::new("missing");
        let path = tmp.with_file_name("nope.log");
        let err = Follower::open(&path, 0).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("nope.log"), "{err}");
    }

    #[tokio::test]
    async fn receives_every_byte_of_a_concurrent_writer_in_order() {
        let path = TempFile::new("stream");
        let mut f = Follower::open(&path, 0).unwrap();
        let writer_path = path.to_path_buf();
        let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
        const WRITES: usize = 5000;
        let expected: Vec<u8> = (0..WRITES)
            .flat_map(|i| format!("line {i} {}\n", "x".repeat(i % 97)).into_bytes())
            .collect();
        let to_write = expected.clone();
        let writer = std::thread::spawn(move || {
            let mut out = std::fs::OpenOptions::new()
                .append(true)
                .open(&writer_path)
                .unwrap();
            // Irregular write sizes so writes split lines anywhere.
            let mut pos = 0;
            let mut step = 1;
            while pos < to_write.len() {
                let end = (pos + step).min(to_write.len());
                out.write_all(&to_write[pos..end]).unwrap();
                pos = end;
                step = step * 7 % 1013 + 1;
            }
            let _ = done_tx.send(());
        });

        // The caller pattern from the supervisor: read until EOF, wait for a change or the
        // end, and read once more after the end.
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1000];
        let mut finished = false;
        loop {
            let n = f.read(&mut buf).unwrap();
            if n > 0 {
                got.extend_from_slice(&buf[..n]);
                continue;
            }
            if finished {
                break;
            }
            tokio::select! {
                r = f.changed() => r.unwrap(),
                _ = &mut done_rx => finished = true,
            }
        }
        writer.join().unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "bytes differ");
        assert_eq!(f.position(), expected.len() as u64);
    }

    #[tokio::test]
    async fn unlinked_file_is_still_followed() {
        // A dispose can unlink the transcript while the CLI still writes to its fd; our open
        // fd keeps the inode, and so the watch, alive.
        let path = TempFile::new("unlinked");
        let mut f = Follower::open(&path, 0).unwrap();
        let mut w = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        timeout(GUARD, f.changed()).await.unwrap().unwrap();
        w.write_all(b"after").unwrap();
        timeout(GUARD, f.changed()).await.unwrap().unwrap();
        assert_eq!(read_now(&mut f), b"after");
    }
}
