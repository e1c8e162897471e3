use super::*;
use crate::task::{Run, Status, TaskOptions};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;

struct TempDir(PathBuf);
impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "ct-store-{}-{}-{name}",
            std::process::id(),
            next_unique()
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().mode() & 0o777
}

fn record(cwd: &str, id: u64, created: u64) -> TaskRecord {
    TaskRecord {
        schema: RECORD_SCHEMA,
        id,
        name: format!("task {id}"),
        cwd: cwd.to_string(),
        status: Status::Completed,
        session_id: "0b6c2a3e-5d4f-4b1a-9c8e-7f6a5b4c3d2e".to_string(),
        created_at_ms: created,
        started_at_ms: Some(created + 1),
        ended_at_ms: Some(created + 2),
        duration_ms: Some(1),
        exit_code: Some(0),
        cost_usd: 0.01,
        num_turns: 2,
        result: Some("done".to_string()),
        error: None,
        options: TaskOptions {
            cmd: vec!["claude".to_string()],
            model: None,
            permission_mode: "acceptEdits".to_string(),
            allowed_tools: vec![],
            args: vec![],
            permissions: Default::default(),
        },
        runs: vec![Run {
            n: 1,
            prompt_title: "do it".to_string(),
            transcript_offset: 0,
            stderr_offset: 0,
            started_at_ms: Some(created + 1),
            ended_at_ms: Some(created + 2),
            status: Status::Completed,
            exit_code: Some(0),
            signal: None,
            duration_ms: Some(1),
            cost_usd: 0.01,
            num_turns: 2,
            error: None,
            marker: None,
            stderr: vec![],
            denied: vec![],
            files_changed: None,
            changes: None,
            prompt_len: None,
            prompt_hash: None,
            ..Run::starting(1, "do it", 0, 0)
        }],
        process: None,
        cancel_requested: false,
        context: vec![],
        worktree: None,
        pending: vec![],
        rules: vec![],
        live: None,
        tui_at_ms: None,
    }
}

fn new_task(store: &Store, cwd: &str, created: u64) -> TaskRecord {
    let (id, _) = store.allocate(cwd).unwrap();
    let rec = record(cwd, id, created);
    store.write_record(&rec).unwrap();
    rec
}

fn names_in(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn open_creates_private_root_and_parents() {
    let tmp = TempDir::new("open");
    let root = tmp.0.join("a/b/state");
    let store = Store::open(&root).unwrap();
    assert_eq!(store.root(), root);
    assert_eq!(mode(&root), 0o700);
    // Opening again is fine.
    Store::open(&root).unwrap();
    // A file where the root should be is an error naming it.
    let file = tmp.0.join("file");
    fs::write(&file, b"").unwrap();
    let err = Store::open(&file).unwrap_err().to_string();
    assert!(err.contains(&*file.to_string_lossy()), "{err}");
}

#[test]
fn project_key_is_sanitized_and_distinct() {
    let key = Store::project_key("/home/me/proj");
    let (readable, hash) = key.rsplit_once('-').unwrap();
    assert_eq!(readable, "home-me-proj");
    assert_eq!(hash.len(), 8);
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));

    let weird = Store::project_key("/tmp/a b/ü:x/.hidden");
    assert!(weird.starts_with("tmp-a-b---x-.hidden-"), "{weird}");
    assert!(weird
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')));

    let long = format!("/{}/the-project", "x".repeat(300));
    let long_key = Store::project_key(&long);
    assert!(long_key.len() <= KEY_PREFIX_MAX + 9, "{long_key}");
    assert!(long_key.contains("the-project-"), "{long_key}");

    // Sanitize alike, differ in the hash.
    let pairs = [
        ("/a/b", "/a-b"),
        ("/a/b c", "/a/b_c"),
        ("/p/ü", "/p/é"),
        (
            &format!("/{}/x", "y".repeat(100)),
            &format!("/{}/x", "z".repeat(100)),
        ),
    ];
    for (a, b) in pairs {
        assert_ne!(Store::project_key(a), Store::project_key(b), "{a} vs {b}");
    }
    assert_eq!(Store::project_key("/a/b/"), Store::project_key("/a/b"));
    assert!(Store::project_key("/").starts_with("root-"));
    for odd in ["/..", "/.", "/-x", "/.git"] {
        let k = Store::project_key(odd);
        assert!(!k.starts_with('.') && !k.starts_with('-'), "{odd} -> {k}");
    }
    // Stable across runs and versions: the key is where existing tasks live.
    assert_eq!(Store::project_key("/home/me/proj"), key);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
}

#[test]
fn allocate_counts_from_one_with_private_dirs() {
    let tmp = TempDir::new("alloc");
    let store = Store::open(&tmp.0).unwrap();
    let cwd = "/home/me/proj";
    for want in 1..=3 {
        let (id, dir) = store.allocate(cwd).unwrap();
        assert_eq!(id, want);
        assert_eq!(dir, store.task_dir(cwd, id));
        assert_eq!(mode(&dir), 0o700);
    }
    let project = store.project_dir(cwd);
    assert_eq!(mode(&project), 0o700);
    let info: ProjectInfo =
        serde_json::from_slice(&fs::read(project.join(PROJECT_FILE)).unwrap()).unwrap();
    assert_eq!(info.cwd, cwd);
    assert_eq!(mode(&project.join(PROJECT_FILE)), 0o600);
    // Another project counts on its own.
    assert_eq!(store.allocate("/other").unwrap().0, 1);
    assert_eq!(
        store.projects(),
        (
            vec!["/home/me/proj".to_string(), "/other".to_string()],
            vec![]
        )
    );
}

#[test]
fn ids_are_never_reused_after_remove() {
    let tmp = TempDir::new("reuse");
    let store = Store::open(&tmp.0).unwrap();
    let cwd = "/p";
    for _ in 0..3 {
        new_task(&store, cwd, 1);
    }
    store.remove(cwd, 3).unwrap();
    assert!(!store.task_dir(cwd, 3).exists());
    assert_eq!(store.allocate(cwd).unwrap().0, 4);
    for id in [4, 2, 1] {
        store.remove(cwd, id).unwrap();
    }
    assert_eq!(store.allocate(cwd).unwrap().0, 5);
    store.remove(cwd, 5).unwrap();
    // A new backend (a new Store) agrees.
    let again = Store::open(&tmp.0).unwrap();
    assert_eq!(again.allocate(cwd).unwrap().0, 6);
    // Only one mark is left, and nothing being deleted.
    let names = names_in(&store.project_dir(cwd));
    assert_eq!(
        names,
        ["6", "last-id-6", PROJECT_FILE]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    // Removing what is not there.
    assert!(matches!(
        store.remove(cwd, 5),
        Err(StoreError::NotFound { id: 5, .. })
    ));
    assert!(matches!(
        store.remove("/nowhere", 1),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn high_water_mark_survives_a_lost_mark() {
    // allocate's mark is best effort; remove must still raise it before deleting.
    let tmp = TempDir::new("mark");
    let store = Store::open(&tmp.0).unwrap();
    new_task(&store, "/p", 1);
    new_task(&store, "/p", 1);
    let project = store.project_dir("/p");
    fs::remove_file(project.join("last-id-2")).unwrap();
    store.remove("/p", 2).unwrap();
    assert_eq!(store.allocate("/p").unwrap().0, 3);
}

#[test]
fn record_round_trip_private_and_no_temp_left() {
    let tmp = TempDir::new("roundtrip");
    let store = Store::open(&tmp.0).unwrap();
    let mut rec = new_task(&store, "/p", 10);
    assert_eq!(store.read_record("/p", rec.id).unwrap(), rec);
    let path = store.task_dir("/p", rec.id).join(RECORD_FILE);
    assert_eq!(mode(&path), 0o600);
    let ino = fs::metadata(&path).unwrap().ino();
    rec.status = Status::Failed;
    rec.error = Some("boom".to_string());
    store.write_record(&rec).unwrap();
    assert_eq!(store.read_record("/p", rec.id).unwrap(), rec);
    // Replaced by rename, not rewritten in place.
    assert_ne!(fs::metadata(&path).unwrap().ino(), ino);
    assert_eq!(
        names_in(&store.task_dir("/p", rec.id)),
        BTreeSet::from([RECORD_FILE.to_string()])
    );
}

#[test]
fn readers_never_see_a_partial_record() {
    let tmp = TempDir::new("atomic");
    let store = Store::open(&tmp.0).unwrap();
    let rec = new_task(&store, "/p", 1);
    let dir = store.task_dir("/p", rec.id);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let root = tmp.0.clone();
        std::thread::spawn(move || {
            let store = Store::open(&root).unwrap();
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let got = store.read_record("/p", 1).unwrap();
                assert_eq!(got.id, 1);
                reads += 1;
            }
            reads
        })
    };
    for i in 0..300 {
        let mut r = rec.clone();
        // Sizes vary so a torn read would show as truncated or trailing garbage.
        r.result = Some("r".repeat((i * 37) % 5000));
        store.write_record(&r).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(names_in(&dir), BTreeSet::from([RECORD_FILE.to_string()]));
}

#[test]
fn write_record_does_not_resurrect_a_removed_task() {
    let tmp = TempDir::new("resurrect");
    let store = Store::open(&tmp.0).unwrap();
    let rec = new_task(&store, "/p", 1);
    store.remove("/p", rec.id).unwrap();
    assert!(matches!(
        store.write_record(&rec),
        Err(StoreError::NotFound { id: 1, .. })
    ));
    assert!(!store.task_dir("/p", 1).exists());
    assert!(matches!(
        store.read_record("/p", 1),
        Err(StoreError::NotFound { id: 1, .. })
    ));
}

#[test]
fn corrupt_records_are_skipped_with_warnings() {
    let tmp = TempDir::new("corrupt");
    let store = Store::open(&tmp.0).unwrap();
    let cwd = "/p";
    let good = new_task(&store, cwd, 5);
    let valid = serde_json::to_string(&record(cwd, 0, 0)).unwrap();
    let mut wrong_schema = serde_json::to_value(record(cwd, 0, 0)).unwrap();
    wrong_schema["schema"] = serde_json::json!(RECORD_SCHEMA + 1);
    let mut no_schema = serde_json::to_value(record(cwd, 0, 0)).unwrap();
    no_schema.as_object_mut().unwrap().remove("schema");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty file", vec![]),
        (
            "truncated JSON",
            valid.as_bytes()[..valid.len() / 2].to_vec(),
        ),
        ("not JSON", b"hello, world".to_vec()),
        ("schema 2", wrong_schema.to_string().into_bytes()),
        ("no \"schema\"", no_schema.to_string().into_bytes()),
        ("invalid record", br#"{"schema": 1, "id": 3}"#.to_vec()),
    ];
    let mut bad_ids = Vec::new();
    for (_, content) in &cases {
        let (id, dir) = store.allocate(cwd).unwrap();
        fs::write(dir.join(RECORD_FILE), content).unwrap();
        bad_ids.push(id);
    }
    // A record in the wrong dir (copied by hand) must not be taken for another task.
    let (misplaced, dir) = store.allocate(cwd).unwrap();
    fs::write(
        dir.join(RECORD_FILE),
        serde_json::to_vec(&record(cwd, 1, 0)).unwrap(),
    )
    .unwrap();
    // Unreadable: a directory where task.json should be (chmod 000 means nothing to root).
    let (unreadable, dir) = store.allocate(cwd).unwrap();
    fs::create_dir(dir.join(RECORD_FILE)).unwrap();
    // Allocated a moment ago, record not yet written: silently skipped.
    let (_young, _) = store.allocate(cwd).unwrap();
    // Allocated long ago and never written: a gentle warning.
    let (old, dir) = store.allocate(cwd).unwrap();
    File::open(&dir)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    let later = new_task(&store, cwd, 6);

    let (records, warnings) = store.list(Some(cwd));
    assert_eq!(records, vec![later, good]);
    assert_eq!(warnings.len(), cases.len() + 3, "{warnings:#?}");
    for ((what, _), id) in cases.iter().zip(&bad_ids) {
        let path = store.task_dir(cwd, *id).join(RECORD_FILE);
        let w = warnings
            .iter()
            .find(|w| w.contains(&*path.to_string_lossy()))
            .unwrap_or_else(|| panic!("no warning for {what}: {warnings:#?}"));
        assert!(w.contains(what), "{what}: {w}");
        assert!(!w.contains('\n'), "{w}");
        let err = store.read_record(cwd, *id).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }
    for id in [misplaced, unreadable, old] {
        let dir = store.task_dir(cwd, id).to_string_lossy().into_owned();
        assert!(
            warnings.iter().any(|w| w.contains(&dir)),
            "no warning for {id}: {warnings:#?}"
        );
    }
    // Every project at once sees the same.
    let (all, all_warnings) = store.list(None);
    assert_eq!(all.len(), 2);
    assert_eq!(all_warnings.len(), warnings.len());
}

#[test]
fn list_is_newest_first_and_per_project() {
    let tmp = TempDir::new("order");
    let store = Store::open(&tmp.0).unwrap();
    let a1 = new_task(&store, "/a", 300);
    let a2 = new_task(&store, "/a", 100);
    let a3 = new_task(&store, "/a", 300);
    let b1 = new_task(&store, "/b", 200);
    let b2 = new_task(&store, "/b", 400);
    let ids = |v: &[TaskRecord]| v.iter().map(|r| (r.cwd.clone(), r.id)).collect::<Vec<_>>();
    let (a, w) = store.list(Some("/a"));
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(ids(&a), ids(&[a3.clone(), a1.clone(), a2.clone()]));
    let (all, w) = store.list(None);
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(ids(&all), ids(&[b2, a3, a1, b1, a2]));
    let (none, w) = store.list(Some("/never-used"));
    assert!(none.is_empty() && w.is_empty());
    // Stray entries in the root or a project dir are not tasks and not worth a warning.
    fs::write(tmp.0.join("backend.log"), b"").unwrap();
    fs::create_dir(store.project_dir("/a").join("notes")).unwrap();
    fs::create_dir(store.project_dir("/a").join("007")).unwrap();
    assert_eq!(store.list(None).0.len(), 5);
    assert!(store.list(None).1.is_empty());
}

#[test]
fn private_files_are_0600_and_truncated() {
    let tmp = TempDir::new("private");
    let store = Store::open(&tmp.0).unwrap();
    let (_, dir) = store.allocate("/p").unwrap();
    let prompt = dir.join("prompt-1.txt");
    Store::write_file_private(&prompt, b"a long first prompt").unwrap();
    assert_eq!(mode(&prompt), 0o600);
    fs::set_permissions(&prompt, Permissions::from_mode(0o644)).unwrap();
    Store::write_file_private(&prompt, b"short").unwrap();
    assert_eq!(fs::read(&prompt).unwrap(), b"short");
    assert_eq!(mode(&prompt), 0o600);

    let log = dir.join("stderr.log");
    Store::open_append_private(&log)
        .unwrap()
        .write_all(b"one\n")
        .unwrap();
    Store::open_append_private(&log)
        .unwrap()
        .write_all(b"two\n")
        .unwrap();
    assert_eq!(fs::read(&log).unwrap(), b"one\ntwo\n");
    assert_eq!(mode(&log), 0o600);

    let err = Store::write_file_private(&tmp.0.join("no/such/dir/f"), b"")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("cannot create ") && err.contains("no/such/dir/f"),
        "{err}"
    );
}

#[test]
fn errors_are_one_clear_line() {
    let e = StoreError::NotFound {
        cwd: "/p".to_string(),
        id: 3,
    };
    assert_eq!(e.to_string(), "no task #3 in /p");
    let e = StoreError::Corrupt {
        path: PathBuf::from("/s/k/3/task.json"),
        reason: "not JSON: x".to_string(),
    };
    assert_eq!(
        e.to_string(),
        "corrupt task record /s/k/3/task.json: not JSON: x"
    );
}

const CHILD_ROOT: &str = "CLAUDE_TASKS_TEST_ALLOC_ROOT";
const CHILD_OUT: &str = "CLAUDE_TASKS_TEST_ALLOC_OUT";
const CHILD_GO: &str = "CLAUDE_TASKS_TEST_ALLOC_GO";
const CHILD_UMASK: &str = "CLAUDE_TASKS_TEST_ALLOC_UMASK";
const CHILD_COUNT: &str = "CLAUDE_TASKS_TEST_ALLOC_COUNT";
const CHILD_CWD: &str = "/work/two-editors";

/// Not a test by itself: the body of the child processes started by the tests below;
/// does nothing unless one of them started it.
#[test]
fn alloc_child() {
    let Some(root) = std::env::var_os(CHILD_ROOT) else {
        return;
    };
    let var = |name| std::env::var(name).unwrap();
    let umask: u32 = var(CHILD_UMASK).parse().unwrap();
    let count: usize = var(CHILD_COUNT).parse().unwrap();
    let go = PathBuf::from(var(CHILD_GO));
    // The process-wide umask is safe to change here: this process runs only this test.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
    let store = Store::open(Path::new(&root)).unwrap();
    // Start together, to maximize the overlap; polling is fine, the overlap only makes
    // the test stronger and is not needed for it to pass.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !go.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut ids = Vec::new();
    for _ in 0..count {
        let (id, dir) = store.allocate(CHILD_CWD).unwrap();
        Store::write_file_private(&dir.join("prompt-1.txt"), b"p").unwrap();
        Store::open_append_private(&dir.join("transcript.jsonl")).unwrap();
        store.write_record(&record(CHILD_CWD, id, id)).unwrap();
        ids.push(id.to_string());
    }
    fs::write(var(CHILD_OUT), ids.join("\n")).unwrap();
}

/// Runs `alloc_child` in one child process per umask, all at once; returns each one's ids.
fn run_children(tmp: &TempDir, root: &Path, umasks: &[u32], count: usize) -> Vec<Vec<u64>> {
    let go = tmp.0.join("go");
    let exe = std::env::current_exe().unwrap();
    // The harness names tests without the crate name.
    let module = module_path!();
    let module = module.split_once("::").map_or(module, |(_, rest)| rest);
    let name = format!("{module}::alloc_child");
    let children: Vec<_> = umasks
        .iter()
        .enumerate()
        .map(|(i, umask)| {
            let out = tmp.0.join(format!("ids-{i}"));
            let child = Command::new(&exe)
                .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD_ROOT, root)
                .env(CHILD_OUT, &out)
                .env(CHILD_GO, &go)
                .env(CHILD_UMASK, umask.to_string())
                .env(CHILD_COUNT, count.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect();
    fs::write(&go, b"").unwrap();
    children
        .into_iter()
        .map(|(child, out)| {
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "child failed: {}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            let ids = fs::read_to_string(&out).unwrap();
            let ids: Vec<u64> = ids.lines().map(|l| l.parse().unwrap()).collect();
            assert_eq!(ids.len(), count);
            ids
        })
        .collect()
}

#[test]
fn two_processes_allocate_distinct_ids() {
    const PER_CHILD: usize = 100;
    let tmp = TempDir::new("twoproc");
    let root = tmp.0.join("state");
    let mut all = BTreeSet::new();
    for ids in run_children(&tmp, &root, &[0o022, 0o077], PER_CHILD) {
        // Each child sees its own ids increase.
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        all.extend(ids);
    }
    let n = 2 * PER_CHILD as u64;
    assert_eq!(all, (1..=n).collect());

    let store = Store::open(&root).unwrap();
    let (records, warnings) = store.list(Some(CHILD_CWD));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(records.len(), 2 * PER_CHILD);
    assert_eq!(store.allocate(CHILD_CWD).unwrap().0, n + 1);
    // Concurrent mark updates leave the mark at the top.
    let scan = scan_project(&store.project_dir(CHILD_CWD)).unwrap();
    assert_eq!(scan.high_water, n + 1);
}

#[test]
fn modes_do_not_depend_on_the_umask() {
    // A umask that strips the owner's own bits: only explicit chmods give 0700/0600. It
    // runs alone (one child), since a dir is briefly 0500 between mkdir and chmod.
    let tmp = TempDir::new("umask");
    let root = tmp.0.join("state");
    let ids = run_children(&tmp, &root, &[0o277], 3).remove(0);
    assert_eq!(ids, vec![1, 2, 3]);
    let store = Store::open(&root).unwrap();
    assert_eq!(mode(&root), 0o700);
    let project = store.project_dir(CHILD_CWD);
    assert_eq!(mode(&project), 0o700);
    assert_eq!(mode(&project.join(PROJECT_FILE)), 0o600);
    for id in ids {
        let dir = store.task_dir(CHILD_CWD, id);
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        for file in [RECORD_FILE, "prompt-1.txt", "transcript.jsonl"] {
            assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
        }
    }
}
