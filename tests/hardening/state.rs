//! The state directory: corrupt records, no write access, a full disk, two backends at once,
//! private files whatever the umask.

use super::*;

// ==================================================================== 6. the state directory

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_records_are_skipped_and_the_rest_stays_usable() {
    let w = world("corrupt");
    let b = w.backend().await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let id = b.start(w.start_args(&format!("task {i}"), &[])).await;
        w.fake.wait_event("completed", id).await;
        ids.push(id);
    }
    let dir_of = |id: u64| {
        PathBuf::from(
            w.fake.find(&["completed"], id).unwrap().1["dir"]
                .as_str()
                .unwrap(),
        )
    };
    b.stop().await;

    let good = ids[5];
    let full = std::fs::read(dir_of(ids[0]).join("task.json")).unwrap();
    let corruptions: Vec<(u64, Vec<u8>, &str)> = vec![
        (
            ids[0],
            full[..full.len() / 2].to_vec(),
            "truncated JSON (half-written?)",
        ),
        (ids[1], b"\x00\x01garbage{".to_vec(), "not JSON"),
        (
            ids[2],
            b"{\"schema\":99,\"id\":3}".to_vec(),
            "schema 99, this version reads schema 1",
        ),
        (
            ids[3],
            b"{\"schema\":1,\"id\":\"four\"}".to_vec(),
            "invalid record",
        ),
        (ids[4], b"".to_vec(), "empty file (half-written?)"),
    ];
    for (id, bytes, _) in &corruptions {
        std::fs::write(dir_of(*id).join("task.json"), bytes).unwrap();
    }

    let b = w.backend().await;
    let list = b.req("list", w.list_args()).await;
    assert_eq!(ids_of(&list), vec![good]);
    let log = w.log();
    for (id, _, reason) in &corruptions {
        let want = format!(
            "skipping {}: {reason}",
            dir_of(*id).join("task.json").display()
        );
        assert!(
            log.lines()
                .any(|l| l.contains(" WARN ") && l.contains(&want)),
            "no warning {want:?} in the log:\n{log}"
        );
    }
    // A corrupt task gives clear errors; the good one works: get, attach, resume.
    let e = b.err("get", w.id_args(ids[1])).await;
    assert!(e.starts_with("get: corrupt task record "), "{e}");
    let e = b.err("attach", w.attach_args(ids[1], 9)).await;
    assert!(e.starts_with("corrupt task record "), "{e}");
    let got = b.req("get", w.id_args(good)).await;
    assert_eq!(got["status"], "completed");
    b.req("attach", w.attach_args(good, 1)).await;
    w.buffer_shows(1, &got).await;
    let r = b.req("resume", w.resume_args(good, "again")).await;
    assert_eq!(r["status"], "queued");
    w.fake
        .until("the follow-up's end", |n| n.count("completed", good) >= 2)
        .await;
    w.fake.footer(1, "✓ done").await;
    // New ids do not reuse the corrupt tasks' ids.
    assert_eq!(b.start(w.start_args("new", &[])).await, good + 1);
    let (kind, _) = w.fake.wait_end(good + 1).await;
    assert_eq!(kind, "completed");
    b.alive_and_answering().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_state_dir_gives_clear_errors_and_the_backend_keeps_running() {
    let mut w = world("readonly");
    // 1. A file where the state dir should be.
    let l = Launch {
        state: w.root.join("state-is-a-file"),
        ..w.launch()
    };
    std::fs::write(&l.state, "not a dir").unwrap();
    let b = w.backend_with(&l).await;
    let e = b.err("start", w.start_args("x", &[])).await;
    let key = claude_tasks::store::Store::project_key(&w.cwd());
    assert_eq!(
        e,
        format!(
            "start: cannot create directory {}: Not a directory (os error 20)",
            l.state.join(&key).display()
        )
    );
    b.alive_and_answering().await;
    assert_eq!(b.req("list", map(vec![])).await, json!([]));
    b.stop().await;

    // 2. A read-only file system (bind mount), with a finished task already in it.
    let b = w.backend().await;
    let old = b.start(w.start_args("before", &[])).await;
    w.fake.wait_event("completed", old).await;
    b.stop().await;
    let state = w.root.join("state");
    if w.mount_read_only(&state) {
        let b = w.backend().await;
        let e = b.err("start", w.start_args("x", &[])).await;
        println!("read-only state dir: start answers {e:?}");
        let project = state.join(&key);
        assert!(
            e.starts_with("start: cannot ")
                && e.contains(&*project.to_string_lossy())
                && e.ends_with("Read-only file system (os error 30)"),
            "{e}"
        );
        b.alive_and_answering().await;
        let list = b.req("list", w.list_args()).await;
        assert_eq!(list[0]["id"], old);
        b.req("attach", w.attach_args(old, 1)).await;
        w.fake.footer(1, "✓ done").await;
        b.stop().await;
    } else {
        eprintln!("cannot bind-mount read-only here: that case is skipped");
    }

    // 3. As an unprivileged user, a state dir owned by someone else.
    if nix::unistd::geteuid().is_root() {
        let home = w.root.join("nobody");
        std::fs::create_dir_all(home.join("state")).unwrap();
        give_to_nobody(&home);
        let project = w.root.join("nobody-project");
        std::fs::create_dir_all(&project).unwrap();
        give_to_nobody(&project);
        let l = Launch::nobody(&home, project.clone());
        let b = w.backend_with(&l).await;
        let e = b
            .err(
                "start",
                map(vec![
                    ("prompt", s("x")),
                    ("cwd", s(&project.to_string_lossy())),
                ]),
            )
            .await;
        let key = claude_tasks::store::Store::project_key(&project.to_string_lossy());
        assert_eq!(
            e,
            format!(
                "start: cannot create directory {}: Permission denied (os error 13)",
                l.state.join(key).display()
            )
        );
        b.alive_and_answering().await;
        b.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gives_a_clear_error_and_spares_other_tasks() {
    let mut w = world("full");
    let state = w.root.join("state");
    std::fs::create_dir_all(&state).unwrap();
    if !w.mount_tmpfs(&state, "256k") {
        eprintln!("cannot mount a tmpfs here: the full-disk case is skipped");
        return;
    }
    let b = w.backend().await;
    let old = b.start(w.start_args("before", &[])).await;
    w.fake.wait_event("completed", old).await;
    // Fill the file system.
    let filler = state.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![b'x'; 4096];
        loop {
            if let Err(e) = f.write_all(&block) {
                assert_eq!(e.raw_os_error(), Some(28), "{e}");
                break;
            }
        }
        let _ = f.sync_all();
    }
    let e = b.err("start", w.start_args("x", &[])).await;
    println!("full disk: start answers {e:?}");
    assert!(
        e.starts_with("start: cannot ") && e.ends_with("No space left on device (os error 28)"),
        "{e}"
    );
    b.alive_and_answering().await;
    // The finished task is still listed and shown whole; no half-made task is listed.
    let list = b.req("list", w.list_args()).await;
    assert_eq!(ids_of(&list), vec![old]);
    b.req("attach", w.attach_args(old, 1)).await;
    let got = b.req("get", w.id_args(old)).await;
    w.buffer_shows(1, &got).await;
    // The failed start left no task dir behind (its id stays taken).
    let project = state.join(claude_tasks::store::Store::project_key(&w.cwd()));
    assert!(!project.join((old + 1).to_string()).exists());
    // Space again: starting works again.
    std::fs::remove_file(&filler).unwrap();
    let id = b.start(w.start_args("after", &[])).await;
    assert_eq!(id, old + 2);
    let (kind, _) = w.fake.wait_end(id).await;
    assert_eq!(kind, "completed");
    b.stop().await;
}

// ==================================================================== 7. two backends at once

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_backends_start_a_hundred_tasks_each_at_the_same_instant() {
    let w = world("race");
    let a = w.backend().await;
    let b = w.backend().await;
    for x in [&a, &b] {
        x.configure(vec![
            ("concurrency", s("parallel")),
            ("max_running", Value::from(8)),
            ("keep", Value::from(1000)),
        ])
        .await;
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(200));
    let mut set = tokio::task::JoinSet::new();
    for (who, x) in [("a", &a), ("b", &b)] {
        for i in 0..100 {
            let nvim = x.nvim.clone();
            let barrier = barrier.clone();
            let args = w.start_args(&format!("{who} {i}"), &[]);
            set.spawn(async move {
                barrier.wait().await;
                match nvim.call("start", vec![args]).await {
                    Ok(Ok(v)) => Ok(v),
                    other => Err(format!("{other:?}")),
                }
            });
        }
    }
    let mut ids = Vec::new();
    while let Some(r) = set.join_next().await {
        ids.push(id_of(&to_json(&r.unwrap().expect("start"))));
    }
    ids.sort_unstable();
    let n = ids.len();
    ids.dedup();
    assert_eq!((n, ids.len()), (200, 200), "ids collided");
    assert_eq!(ids, (1..=200).collect::<Vec<u64>>());
    for &id in &ids {
        let (kind, end) = w.fake.wait_end(id).await;
        assert_eq!(kind, "completed", "{end:#}");
    }
    // Every record on disk is whole and valid.
    let project = w
        .root
        .join("state")
        .join(claude_tasks::store::Store::project_key(&w.cwd()));
    let mut seen = 0;
    for entry in std::fs::read_dir(&project).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(id) = name.parse::<u64>() else {
            continue;
        };
        let bytes = std::fs::read(entry.path().join("task.json")).unwrap();
        let rec: TaskRecord = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("task {id}: {e}: {}", String::from_utf8_lossy(&bytes)));
        assert_eq!(rec.id, id);
        assert_eq!(rec.status, claude_tasks::task::Status::Completed);
        assert_eq!(rec.runs.len(), 1);
        assert_eq!(rec.cwd, w.cwd());
        seen += 1;
    }
    assert_eq!(seen, 200);
    let list = a.req("list", w.list_args()).await;
    assert_eq!(list.as_array().unwrap().len(), 200);
    for x in [a, b] {
        x.stop().await;
    }
}

// ==================================================================== 8. permissions

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_files_are_private_even_with_an_open_umask() {
    let w = world("perms");
    let l = Launch {
        state: w.root.join("deep/er/state"),
        open_umask: true,
        ..w.launch()
    };
    let b = w.backend_with(&l).await;
    let id = b.start(w.start_args("secret prompt", &[])).await;
    w.fake.wait_event("completed", id).await;
    b.req("resume", w.resume_args(id, "another secret")).await;
    w.fake
        .until("the follow-up's end", |n| n.count("completed", id) >= 2)
        .await;
    // A running task, so its lock and files exist while it runs, too.
    let run_id = b.start(w.start_args("running", &["--fake-hang"])).await;
    w.fake.wait_event("started", run_id).await;

    let check = |root: &Path| {
        let mut files = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            let mode = std::fs::metadata(&d).unwrap().mode() & 0o7777;
            assert_eq!(mode, 0o700, "dir {}", d.display());
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let m = std::fs::symlink_metadata(e.path()).unwrap();
                if m.is_dir() {
                    stack.push(e.path());
                } else if e.path().to_string_lossy().contains("/repo.git/objects/") {
                    // The object store of a run's changes outside git: git's objects are
                    // read-only, for the user alone (`init --shared=0600`).
                    assert_eq!(m.mode() & 0o7777, 0o400, "file {}", e.path().display());
                } else {
                    assert_eq!(m.mode() & 0o7777, 0o600, "file {}", e.path().display());
                    files.push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        files
    };
    let files = check(&l.state);
    for name in [
        "task.json",
        "prompt-1.txt",
        "prompt-2.txt",
        "transcript.jsonl",
        "stderr.log",
        "owner.lock",
        "project.json",
    ] {
        assert!(
            files.iter().any(|f| f == name),
            "{name} not found in {files:?}"
        );
    }
    // The parents the backend created for the state dir are the user's business, but the log
    // it creates holds task details: private too.
    let log_mode = std::fs::metadata(&l.log).unwrap().mode() & 0o777;
    assert_eq!(log_mode, 0o600, "log file mode");
    b.req("cancel", w.id_args(run_id)).await;
    w.fake.wait_event("cancelled", run_id).await;
    check(&l.state);
    b.stop().await;
}
