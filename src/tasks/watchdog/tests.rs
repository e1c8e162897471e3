use super::decide::{decide, Facts, Watch, DEFAULT_KEEP_ALIVE_MS};
use super::mine;
use crate::store::Store;
use crate::task::{Live, ProcessInfo, Status, TaskRecord};
use crate::testutil::finished_record;

const OWNER: (i32, u64) = (4242, 99);

fn process(owner: (i32, u64)) -> ProcessInfo {
    ProcessInfo {
        pid: 777,
        start_time: 5,
        owner_pid: owner.0,
        owner_start_time: owner.1,
        marker: "CLAUDE_TASKS_TASK=ab".into(),
    }
}

/// A task whose CLI idles from 1000 to 1500.
fn idle() -> TaskRecord {
    let mut r = finished_record();
    r.process = Some(process(OWNER));
    r.live = Some(Live {
        since_ms: 1000,
        until_ms: 1500,
    });
    r
}

/// A task whose run goes on, with `keep` as its run's keep_alive_ms.
fn running(keep: Option<u64>) -> TaskRecord {
    let mut r = finished_record();
    r.status = Status::Running;
    r.runs[0].status = Status::Running;
    r.runs[0].keep_alive_ms = keep;
    r.process = Some(process(OWNER));
    r
}

fn facts(cli_alive: bool, ends_with_result: bool, modified_ms: u64) -> Facts {
    Facts {
        cli_alive,
        ends_with_result,
        asking: false,
        modified_ms,
    }
}

/// A CLI whose last line, written at `modified_ms`, is a request of its own.
fn asking(modified_ms: u64) -> Facts {
    Facts {
        asking: true,
        ..facts(true, false, modified_ms)
    }
}

#[test]
fn a_request_nobody_answers_is_interrupted_keep_alive_after_it() {
    // Its backend died mid-run while the CLI asked: the same time from the request.
    assert!(matches!(
        decide(&running(Some(300)), OWNER, &asking(2000)),
        Watch::InterruptAt(2300, _)
    ));
    // An idle CLI that took a follow-up and asked: at its deadline at the earliest, and the
    // keep-alive time after the request.
    assert!(matches!(
        decide(&idle(), OWNER, &asking(1200)),
        Watch::InterruptAt(1700, _)
    ));
    // keep_alive_ms = 0 keeps no idle CLI, but a request still waits the default time.
    assert!(matches!(
        decide(&running(Some(0)), OWNER, &asking(2000)),
        Watch::InterruptAt(t, _) if t == 2000 + DEFAULT_KEEP_ALIVE_MS
    ));
    // Not its own any more, or gone: left alone, asking or not.
    assert!(matches!(
        decide(&running(Some(300)), (1, 1), &asking(2000)),
        Watch::Leave(_)
    ));
    let gone = Facts {
        cli_alive: false,
        ..asking(2000)
    };
    assert!(matches!(
        decide(&running(Some(300)), OWNER, &gone),
        Watch::Leave(_)
    ));
}

#[test]
fn an_idle_cli_is_closed_at_its_deadline() {
    assert!(matches!(
        decide(&idle(), OWNER, &facts(true, true, 990)),
        Watch::CloseAt(1500, _)
    ));
    // Its transcript untouched since it became idle: the record is enough, whatever its
    // last line (an idle CLI may have written something that is not a result).
    assert!(matches!(
        decide(&idle(), OWNER, &facts(true, false, 1000)),
        Watch::CloseAt(1500, _)
    ));
}

#[test]
fn an_idle_cli_that_took_a_message_after_its_record_waits_for_its_result() {
    // A follow-up reached it just before its backend died: a turn goes on.
    assert_eq!(
        decide(&idle(), OWNER, &facts(true, false, 1200)),
        Watch::Wait
    );
    // Its result came at 1200: idle again, for as long as before (500 ms).
    assert!(matches!(
        decide(&idle(), OWNER, &facts(true, true, 1200)),
        Watch::CloseAt(1700, _)
    ));
}

#[test]
fn a_run_its_backend_did_not_see_end_is_closed_keep_alive_after_its_result() {
    assert_eq!(
        decide(&running(Some(300)), OWNER, &facts(true, false, 2000)),
        Watch::Wait
    );
    assert!(matches!(
        decide(&running(Some(300)), OWNER, &facts(true, true, 2000)),
        Watch::CloseAt(2300, _)
    ));
    // keep_alive_ms = 0: closed with its run, as its backend would have.
    assert!(matches!(
        decide(&running(Some(0)), OWNER, &facts(true, true, 2000)),
        Watch::CloseAt(2000, _)
    ));
    // A record from before `keep_alive_ms` was kept: the default.
    assert!(matches!(
        decide(&running(None), OWNER, &facts(true, true, 2000)),
        Watch::CloseAt(t, _) if t == 2000 + DEFAULT_KEEP_ALIVE_MS
    ));
}

#[test]
fn what_is_not_the_watchdog_s_is_left_alone() {
    // Adopted by another backend (its record names it now).
    let mut adopted = idle();
    adopted.process = Some(process((4243, 99)));
    assert!(matches!(
        decide(&adopted, OWNER, &facts(true, true, 0)),
        Watch::Leave(_)
    ));
    // The same pid, another start time: another backend.
    adopted.process = Some(process((4242, 100)));
    assert!(matches!(
        decide(&adopted, OWNER, &facts(true, true, 0)),
        Watch::Leave(_)
    ));
    // Its CLI is gone (or the pid is another process now).
    assert!(matches!(
        decide(&idle(), OWNER, &facts(false, true, 0)),
        Watch::Leave(_)
    ));
    assert!(matches!(
        decide(&running(Some(1)), OWNER, &facts(false, false, 0)),
        Watch::Leave(_)
    ));
    // No CLI in the record.
    let mut none = idle();
    none.process = None;
    assert!(matches!(
        decide(&none, OWNER, &facts(true, true, 0)),
        Watch::Leave(_)
    ));
    // Ended and not kept: its backend closed it (or is closing it).
    let mut ended = idle();
    ended.live = None;
    assert!(matches!(
        decide(&ended, OWNER, &facts(true, true, 0)),
        Watch::Leave(_)
    ));
}

#[test]
fn facts_check_the_cli_by_pid_start_time_and_marker_and_read_the_run_s_tail() {
    let root = crate::testutil::temp_path("watchdog-facts");
    let _ = std::fs::remove_dir_all(&root);
    let store = Store::open(&root).unwrap();
    let mut rec = running(Some(10));
    rec.cwd = "/tmp/project".into();
    let (id, dir) = store.allocate(&rec.cwd).unwrap();
    rec.id = id;
    let me = std::process::id() as i32;
    let start = crate::process::proctree::start_time(me).unwrap();
    // Ourselves, with no marker to check.
    rec.process = Some(ProcessInfo {
        pid: me,
        start_time: start,
        marker: String::new(),
        ..process(OWNER)
    });
    std::fs::write(
        dir.transcript(),
        "{\"type\":\"assistant\"}\n{\"type\":\"result\",\"subtype\":\"success\"}\n",
    )
    .unwrap();
    let f = Facts::read(&rec, &dir);
    assert!(f.cli_alive && f.ends_with_result && !f.asking, "{f:?}");
    assert!(f.modified_ms > 0);
    // A request of the CLI's after it (keys in any order), then the same half written.
    let ask = r#"{"request":{"tool_name":"Bash","subtype":"can_use_tool","input":{}},"request_id":"r1","type":"control_request"}"#;
    let mut text = std::fs::read_to_string(dir.transcript()).unwrap();
    text.push_str(ask);
    text.push('\n');
    std::fs::write(dir.transcript(), &text).unwrap();
    let f = Facts::read(&rec, &dir);
    assert!(f.asking && !f.ends_with_result, "{f:?}");
    text.push_str(&ask[..20]);
    std::fs::write(dir.transcript(), &text).unwrap();
    let f = Facts::read(&rec, &dir);
    assert!(
        !f.asking && !f.ends_with_result,
        "a partial line: the CLI writes: {f:?}"
    );
    // The result belongs to an earlier run when the current one starts after it.
    rec.runs[0].transcript_offset = std::fs::metadata(dir.transcript()).unwrap().len();
    assert!(!Facts::read(&rec, &dir).ends_with_result);
    // A marker we do not carry, another start time: not the CLI.
    let p = rec.process.as_mut().unwrap();
    p.marker = "CLAUDE_TASKS_TASK=not-ours".into();
    assert!(!Facts::read(&rec, &dir).cli_alive);
    let p = rec.process.as_mut().unwrap();
    p.marker.clear();
    p.start_time = start + 1;
    assert!(!Facts::read(&rec, &dir).cli_alive);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn the_watchdog_watches_the_tasks_whose_cli_its_backend_owns() {
    let root = crate::testutil::temp_path("watchdog-mine");
    let _ = std::fs::remove_dir_all(&root);
    let store = Store::open(&root).unwrap();
    let mut ids = Vec::new();
    for owner in [Some(OWNER), Some((4243, 99)), None, Some(OWNER)] {
        let mut rec = idle();
        rec.cwd = "/tmp/project".into();
        rec.id = store.allocate(&rec.cwd).unwrap().0;
        rec.process = owner.map(process);
        store.write_record(&rec).unwrap();
        ids.push(rec.id);
    }
    let mut got: Vec<u64> = mine(&store, OWNER).into_iter().map(|k| k.1).collect();
    got.sort();
    assert_eq!(got, vec![ids[0], ids[3]]);
    let _ = std::fs::remove_dir_all(&root);
}
