//! Running git (`claude_tasks::git`): the environment a command gets whatever the user's
//! carries, errors that name the command and say what git said, pipes that cannot deadlock, and
//! discovery of work trees, bare repositories and git directories.

mod gitrepo;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use claude_tasks::git::{Error, Git, Repo, KEPT_ENV, SET_ENV};
use gitrepo::{TempDir, World};

/// A stand-in for git that prints its environment (it ignores the arguments).
fn env_printer(dir: &Path) -> PathBuf {
    let path = dir.join("print-env");
    fs::write(&path, "#!/bin/sh\nexec env\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn the_user_s_git_variables_never_reach_a_command() {
    // What a `git rebase -i` editor or a hook would carry into Neovim and so into the backend.
    // Other tests of this binary run git meanwhile: they must not mind these either.
    for (k, v) in [
        ("GIT_DIR", "/nonexistent/.git"),
        ("GIT_INDEX_FILE", "/nonexistent/index"),
        ("GIT_WORK_TREE", "/nonexistent"),
        ("GIT_CONFIG_PARAMETERS", "'color.ui'='always'"),
        ("GIT_OBJECT_DIRECTORY", "/nonexistent/objects"),
        ("GIT_AUTHOR_DATE", "@0 +0000"),
        ("GIT_CEILING_DIRECTORIES", "/nonexistent-ceiling"),
    ] {
        std::env::set_var(k, v);
    }
    let tmp = TempDir::new("env");
    let git = Git::new().program(env_printer(&tmp.0)).env("EXTRA", "1");
    let out = git
        .cmd(&tmp.0)
        .env("GIT_INDEX_FILE", "/private")
        .run()
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let vars: Vec<&str> = text.lines().collect();
    for want in [
        "LC_ALL=C",
        "GIT_OPTIONAL_LOCKS=0",
        "GIT_TERMINAL_PROMPT=0",
        "EXTRA=1",
    ] {
        assert!(vars.contains(&want), "{want} missing: {vars:?}");
    }
    assert!(
        vars.contains(&"GIT_INDEX_FILE=/private"),
        "an explicit index is passed"
    );
    assert!(
        vars.contains(&"GIT_CEILING_DIRECTORIES=/nonexistent-ceiling"),
        "a kept variable"
    );
    for v in &vars {
        let name = v.split('=').next().unwrap_or("");
        assert!(
            !name.starts_with("GIT_")
                || KEPT_ENV.contains(&name)
                || SET_ENV.iter().any(|(k, _)| *k == name)
                || name == "GIT_INDEX_FILE",
            "{v} leaked"
        );
    }
    // And a real command works in a repository despite them.
    let w = World::repo("env-real");
    assert_eq!(w.repo_handle().top, w.root);
}

#[test]
fn a_missing_git_says_so() {
    let git = Git::new().program("/nonexistent/git-for-claude-tasks");
    let err = git.cmd(Path::new("/")).arg("status").run().unwrap_err();
    assert!(err.to_string().contains("not found on PATH"), "{err}");
}

#[test]
fn a_failure_names_the_command_and_carries_git_s_words() {
    let w = World::repo("fail");
    let err = w
        .git
        .cmd(&w.root)
        .args(["rev-parse", "--verify", "no-such-thing here"])
        .run()
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "git rev-parse --verify 'no-such-thing here' (in {}) failed with exit code 128: fatal:",
            w.root.display()
        )),
        "{msg}"
    );
}

#[test]
fn input_and_output_larger_than_a_pipe_flow_together() {
    // `stripspace` echoes while it reads: both pipes fill unless they are served at once.
    let git = Git::new();
    let input = b"some text\n".repeat(200_000);
    let out = git
        .cmd(Path::new("/"))
        .arg("stripspace")
        .stdin(input.clone())
        .run()
        .unwrap();
    assert_eq!(out, input);
    let out = git
        .cmd(Path::new("/"))
        .arg("stripspace")
        .stdin(input)
        .max_stdout(1000)
        .output()
        .unwrap();
    assert!(out.success() && out.truncated && out.stdout.len() == 1000);
}

#[test]
fn discovery_tells_work_trees_bare_repositories_and_git_directories_apart() {
    let w = World::repo("discover");
    let repo = Repo::discover(&w.git, &w.path("src")).unwrap();
    assert_eq!(repo.top, w.root);
    assert_eq!(repo.git_dir, w.root.join(".git"));
    assert_eq!(repo.common_dir, w.root.join(".git"));
    assert!(!repo.is_linked_worktree());
    assert!(repo.superproject.is_none());
    let head = repo.head().unwrap();
    assert_eq!(head.branch.as_deref(), Some("refs/heads/main"));
    assert_eq!(head.commit.as_deref(), Some(w.head().as_str()));

    let err = Repo::discover(&w.git, &w.root.join(".git")).unwrap_err();
    assert!(matches!(err, Error::Bare { .. }), "{err}");

    let plain = World::plain("discover-plain");
    let err = Repo::discover(&plain.git, &plain.root).unwrap_err();
    assert!(matches!(err, Error::NotAWorkTree { .. }), "{err}");
    assert!(err.to_string().contains("not in a git work tree"), "{err}");
    plain.git(&["init", "-q", "--bare"]);
    let err = Repo::discover(&plain.git, &plain.root).unwrap_err();
    assert!(matches!(err, Error::Bare { .. }), "{err}");
    let err = Repo::discover(&plain.git, &plain.root.join("missing")).unwrap_err();
    assert!(err.to_string().contains("cannot open directory"), "{err}");

    let e = World::empty_repo("discover-empty");
    let head = e.repo_handle().head().unwrap();
    assert_eq!(head.commit, None);
    assert_eq!(head.branch.as_deref(), Some("refs/heads/main"));
    w.git(&["checkout", "-q", "--detach"]);
    assert_eq!(w.repo_handle().head().unwrap().branch, None);
}
