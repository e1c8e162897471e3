//! What goes in: prompts verbatim, bad cwds and bad commands refused or failed clearly.

use super::*;

// ==================================================================== 4. prompts

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_arrive_verbatim_and_never_run_anything() {
    let w = world("prompts");
    let b = w.backend().await;
    b.configure(vec![("concurrency", s("parallel"))]).await;
    let tag = format!("INJECTED-{}", std::process::id());
    let places: Vec<PathBuf> = [
        Some(w.project.clone()),
        std::env::var_os("HOME").map(PathBuf::from),
        Some(PathBuf::from("/tmp")),
        Some(w.root.clone()),
        Some(std::env::current_dir().unwrap()),
    ]
    .into_iter()
    .flatten()
    .map(|d| d.join(&tag))
    .collect();
    for p in &places {
        assert!(!p.exists(), "{} exists before the test", p.display());
    }
    let big: String = (0..)
        .map(|i| format!("{i} lorem ipsum dolor sit amet\n"))
        .take_while({
            let mut n = 0;
            move |l: &String| {
                n += l.len();
                n <= 1024 * 1024
            }
        })
        .collect();
    let prompts = vec![
        "--help".to_owned(),
        "-c".to_owned(),
        format!("$(touch {tag})"),
        format!("; touch {tag}"),
        format!("`touch {tag}` && touch {tag} | touch {tag}\n--dangerously-skip-permissions"),
        big,
    ];
    let mut started = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        let record = w.root.join(format!("rec{i}"));
        let flag = format!("--fake-record={}", record.display());
        let rec = b
            .req("start", w.start_args(p, &["--fake-echo-stdin", &flag]))
            .await;
        started.push((rec["id"].as_u64().unwrap(), record));
    }
    for ((id, record), p) in started.iter().zip(&prompts) {
        let (kind, end) = w.fake.wait_end(*id).await;
        assert_eq!(kind, "completed", "{}", &p[..p.len().min(40)]);
        let got = std::fs::read(record.with_extension("stdin")).unwrap();
        assert!(
            got == p.as_bytes(),
            "prompt {:?} arrived altered",
            &p[..p.len().min(40)]
        );
        let argv = std::fs::read_to_string(record.with_extension("argv")).unwrap();
        for a in argv.lines() {
            assert!(
                !p.lines().any(|pl| !pl.is_empty() && a == pl),
                "prompt in argv: {a}"
            );
        }
        assert!(argv.lines().any(|a| a == "-p"), "{argv}");
        // The prompt file holds the prompt byte for byte, private to the user.
        let pf = Path::new(end["dir"].as_str().unwrap()).join("prompt-1.txt");
        assert!(std::fs::read(&pf).unwrap() == p.as_bytes());
    }
    for p in &places {
        assert!(
            !p.exists(),
            "{} was created: a prompt ran as a command",
            p.display()
        );
    }
    // Empty and blank prompts are refused with one message, and create nothing.
    for blank in ["", " ", "\n\t  \r\n", "\u{a0}\u{2003}"] {
        let e = b
            .err(
                "start",
                map(vec![("prompt", s(blank)), ("cwd", s(&w.cwd()))]),
            )
            .await;
        assert_eq!(e, "start: the prompt is empty", "{blank:?}");
        let e = b.err("resume", w.resume_args(started[0].0, blank)).await;
        assert_eq!(e, "resume: the prompt is empty", "{blank:?}");
    }
    let list = b.req("list", w.list_args()).await;
    assert_eq!(list.as_array().unwrap().len(), prompts.len());
    b.alive_and_answering().await;
    b.stop().await;
}

// ==================================================================== 5. bad cwd, bad cmd

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cwd_is_refused_with_a_clear_error() {
    let w = world("cwd");
    let b = w.backend().await;
    println!("memory: idle backend VmHWM {} kB", b.vm_hwm_kb());
    let missing = w.root.join("no-such-dir");
    let file = w.root.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let cases = [
        (
            missing.clone(),
            format!("start: cwd '{}' does not exist", missing.display()),
        ),
        (
            file.clone(),
            format!("start: cwd '{}' is not a directory", file.display()),
        ),
        (
            file.join("below"),
            format!(
                "start: cwd '{}' does not exist (a parent is not a directory)",
                file.join("below").display()
            ),
        ),
    ];
    for (cwd, want) in &cases {
        assert_eq!(&start_error(&b, cwd).await, want);
    }
    assert_no_task_created(&b).await;
    b.alive_and_answering().await;
    b.stop().await;
}

/// As root, permissions do not stop reads, so the unreadable cases run the backend as `nobody`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_cwd_is_refused_for_an_unprivileged_user() {
    let w = world("cwd-nobody");
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: cannot switch to nobody; the unreadable cwd case is skipped");
        return;
    }
    let home = w.root.join("nobody");
    std::fs::create_dir_all(home.join("work")).unwrap();
    give_to_nobody(&home);
    give_to_nobody(&home.join("work"));
    // A project nobody may not list, one it may list but not enter, and one inside a
    // directory it may not search.
    let closed = w.root.join("closed");
    let no_x = w.root.join("no-x");
    let locked = w.root.join("locked");
    for (d, mode) in [(&closed, 0o700), (&no_x, 0o744), (&locked, 0o700)] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let inner = locked.join("inner");
    std::fs::create_dir_all(&inner).unwrap();
    let b = w
        .backend_with(&Launch::nobody(&home, home.join("work")))
        .await;
    let cases = [
        (
            &closed,
            format!(
                "start: cwd '{}' is not readable: Permission denied (os error 13)",
                closed.display()
            ),
        ),
        (
            &no_x,
            format!(
                "start: cwd '{}' is not accessible (permission denied)",
                no_x.display()
            ),
        ),
        (
            &inner,
            format!(
                "start: cwd '{}' is not accessible (permission denied)",
                inner.display()
            ),
        ),
    ];
    for (cwd, want) in &cases {
        assert_eq!(&start_error(&b, cwd).await, want);
        b.alive_and_answering().await;
    }
    assert_no_task_created(&b).await;
    // The same backend runs a task where it may, with a CLI it can reach: a copy in its home,
    // as the build's own may sit under a directory only root may search (a `mktemp -d` clone).
    let work = home.join("work");
    let fake = home.join("fake-claude");
    std::fs::copy(FAKE, &fake).unwrap();
    give_to_nobody(&fake);
    let id = b
        .start(start_in("hi", &work.to_string_lossy(), cmd_of(&fake)))
        .await;
    let (kind, end) = w.fake.wait_end(id).await;
    assert_eq!(kind, "completed", "{end:#}");
    // A CLI behind a directory it may not search: failed, and the error says why.
    let hidden = closed.join("fake-claude");
    std::fs::copy(FAKE, &hidden).unwrap();
    let id = b
        .start(start_in("hi", &work.to_string_lossy(), cmd_of(&hidden)))
        .await;
    let (kind, end) = w.fake.wait_end(id).await;
    assert_eq!(kind, "failed", "{end:#}");
    assert_eq!(
        end["error"],
        format!(
            "cannot run '{}': permission denied (a directory on its path is not accessible)",
            hidden.display()
        )
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cmd_fails_the_task_with_a_clear_error() {
    let w = world("cmd");
    let b = w.backend().await;
    b.configure(vec![("concurrency", s("parallel"))]).await;
    let not_exec = w.root.join("claude-not-executable");
    std::fs::write(&not_exec, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&not_exec, std::fs::Permissions::from_mode(0o644)).unwrap();
    let dir = w.root.join("claude-dir");
    std::fs::create_dir_all(&dir).unwrap();
    let missing = w.root.join("bin/claude");
    let no_interp = w.root.join("claude-bad-interpreter");
    std::fs::write(&no_interp, "#!/no/such/interpreter\n").unwrap();
    std::fs::set_permissions(&no_interp, std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = |x: &Path| x.to_string_lossy().into_owned();
    let cases: Vec<(Value, String)> = vec![
        (
            s(&p(&missing)),
            format!("claude not found: '{}' does not exist (set the `cmd` option)", p(&missing)),
        ),
        (
            s("no-such-claude-xyz"),
            "no-such-claude-xyz not found: 'no-such-claude-xyz' is not on PATH (set the `cmd` option)"
                .to_owned(),
        ),
        (
            Value::Array(vec![s(&p(&not_exec)), s("--flag")]),
            format!("cannot run '{}': permission denied (not executable)", p(&not_exec)),
        ),
        (s(&p(&dir)), format!("'{}' is a directory, not a program", p(&dir))),
        (
            s(&p(&no_interp)),
            format!(
                "cannot run '{}' (missing file or script interpreter): No such file or directory (os error 2)",
                p(&no_interp)
            ),
        ),
    ];
    for (i, (c, want)) in cases.iter().enumerate() {
        let id = b.start(start_in("hi", &w.cwd(), c.clone())).await;
        b.req("attach", w.attach_args(id, i as i64 + 1)).await;
        let (kind, end) = w.fake.wait_end(id).await;
        assert_eq!(kind, "failed", "{c:?}");
        assert_eq!(end["error"].as_str(), Some(want.as_str()), "{c:?}");
        assert_eq!(end["process"], Json::Null);
        let footer = w.fake.footer(i as i64 + 1, "✗ failed").await;
        assert!(
            footer
                .last()
                .unwrap()
                .starts_with(&format!("✗ failed: {want}")),
            "{footer:#?}"
        );
        // The reason is in the task's stderr.log too.
        let stderr = std::fs::read_to_string(end["stderr"].as_str().unwrap()).unwrap();
        assert!(stderr.contains(want.as_str()), "{stderr}");
    }
    let list = b.req("list", w.list_args()).await;
    let statuses: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["failed"; cases.len()]);
    b.alive_and_answering().await;
    b.stop().await;
}
