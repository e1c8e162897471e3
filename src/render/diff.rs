//! Line diffs for the requests a buffer shows: the shortest edit script (Myers' O(ND)
//! algorithm) between two texts, as unified-diff hunks with three lines of context.

/// A text longer than this many lines on either side is not diffed line by line: the request
/// shows it as replaced whole, which is still exact, only less helpful.
const MAX_LINES: usize = 4000;
/// Edit distance after which the search gives up the same way (it costs O(N·D) steps).
const MAX_D: usize = 2000;
const CONTEXT: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Same,
    Del,
    Add,
}

/// Unified-diff lines (`@@ -a,b +c,d @@`, then ` `, `-` and `+` lines, without a newline)
/// from `old` to `new`; empty when they are the same.
pub fn unified(old: &str, new: &str) -> Vec<String> {
    let a = split(old);
    let b = split(new);
    let ops = if a.len() > MAX_LINES || b.len() > MAX_LINES {
        None
    } else {
        script(&a, &b)
    };
    let ops = ops.unwrap_or_else(|| {
        let mut v = vec![Op::Del; a.len()];
        v.extend(std::iter::repeat_n(Op::Add, b.len()));
        v
    });
    hunks(&a, &b, &ops)
}

fn split(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let s = s.strip_suffix('\n').unwrap_or(s);
    s.split('\n').collect()
}

/// The edit script: one op per line of `a` (Same or Del) and of `b` (Same or Add), in order.
fn script(a: &[&str], b: &[&str]) -> Option<Vec<Op>> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let max = ((n + m) as usize).min(MAX_D) as isize;
    let offset = max + 1;
    let mut v = vec![0isize; (2 * max + 3) as usize];
    let mut trace: Vec<Vec<isize>> = Vec::new();
    let mut found = None;
    'outer: for d in 0..=max {
        trace.push(v.clone());
        let mut k = -d;
        while k <= d {
            let idx = (k + offset) as usize;
            let mut x = if k == -d || (k != d && v[idx - 1] < v[idx + 1]) {
                v[idx + 1]
            } else {
                v[idx - 1] + 1
            };
            let mut y = x - k;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            v[idx] = x;
            if x >= n && y >= m {
                found = Some(d);
                break 'outer;
            }
            k += 2;
        }
    }
    let d_end = found?;
    // Walk back through the saved frontiers.
    let mut ops = Vec::with_capacity((n + m) as usize);
    let (mut x, mut y) = (n, m);
    for d in (1..=d_end).rev() {
        let v = &trace[d as usize];
        let k = x - y;
        let idx = (k + offset) as usize;
        let down = k == -d || (k != d && v[idx - 1] < v[idx + 1]);
        let prev_k = if down { k + 1 } else { k - 1 };
        let prev_x = v[(prev_k + offset) as usize];
        let prev_y = prev_x - prev_k;
        while x > prev_x && y > prev_y {
            ops.push(Op::Same);
            x -= 1;
            y -= 1;
        }
        ops.push(if down { Op::Add } else { Op::Del });
        x = prev_x;
        y = prev_y;
    }
    while x > 0 && y > 0 {
        ops.push(Op::Same);
        x -= 1;
        y -= 1;
    }
    ops.reverse();
    Some(ops)
}

fn hunks(a: &[&str], b: &[&str], ops: &[Op]) -> Vec<String> {
    // Positions (in a and b) of each op.
    let mut pos = Vec::with_capacity(ops.len());
    let (mut i, mut j) = (0usize, 0usize);
    for op in ops {
        pos.push((i, j));
        match op {
            Op::Same => {
                i += 1;
                j += 1;
            }
            Op::Del => i += 1,
            Op::Add => j += 1,
        }
    }
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k] != Op::Same).collect();
    let mut out = Vec::new();
    let mut c = 0;
    while c < changed.len() {
        let start = changed[c].saturating_sub(CONTEXT);
        let mut end = changed[c];
        // Changes closer than twice the context share a hunk.
        while c + 1 < changed.len() && changed[c + 1] <= end + 2 * CONTEXT + 1 {
            c += 1;
            end = changed[c];
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let (a0, b0) = pos[start];
        let (mut na, mut nb) = (0, 0);
        let mut body = Vec::new();
        for k in start..end {
            let (x, y) = pos[k];
            match ops[k] {
                Op::Same => {
                    body.push(format!(" {}", a[x]));
                    na += 1;
                    nb += 1;
                }
                Op::Del => {
                    body.push(format!("-{}", a[x]));
                    na += 1;
                }
                Op::Add => {
                    body.push(format!("+{}", b[y]));
                    nb += 1;
                }
            }
        }
        let range = |s: usize, n: usize| {
            if n == 0 {
                format!("{s},0")
            } else if n == 1 {
                format!("{}", s + 1)
            } else {
                format!("{},{n}", s + 1)
            }
        };
        out.push(format!("@@ -{} +{} @@", range(a0, na), range(b0, nb)));
        out.extend(body);
        c += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies unified-diff hunks to `old` (the check that a diff is right).
    fn apply(old: &str, diff: &[String]) -> String {
        let a = split(old);
        let mut out: Vec<String> = Vec::new();
        let mut at = 0usize;
        let mut lines = diff.iter().peekable();
        while let Some(h) = lines.next() {
            let minus = h
                .trim_start_matches("@@ -")
                .split(' ')
                .next()
                .unwrap()
                .to_string();
            let (start, n): (usize, usize) = match minus.split_once(',') {
                Some((s, n)) => (s.parse().unwrap(), n.parse().unwrap()),
                None => (minus.parse().unwrap(), 1),
            };
            let start = if n == 0 { start } else { start - 1 };
            while at < start {
                out.push(a[at].to_string());
                at += 1;
            }
            while let Some(l) = lines.peek() {
                if l.starts_with("@@") {
                    break;
                }
                let l = lines.next().unwrap();
                match &l[..1] {
                    " " => {
                        out.push(l[1..].to_string());
                        at += 1;
                    }
                    "-" => at += 1,
                    "+" => out.push(l[1..].to_string()),
                    _ => unreachable!(),
                }
            }
        }
        while at < a.len() {
            out.push(a[at].to_string());
            at += 1;
        }
        out.join("\n")
    }

    #[test]
    fn a_small_change_is_one_hunk_with_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let new = "a\nb\nc\nd\nE\nf\ng\nh\n";
        assert_eq!(
            unified(old, new),
            [
                "@@ -2,7 +2,7 @@",
                " b",
                " c",
                " d",
                "-e",
                "+E",
                " f",
                " g",
                " h"
            ]
        );
    }

    #[test]
    fn a_new_file_and_an_emptied_one() {
        assert_eq!(unified("", "x\ny\n"), ["@@ -0,0 +1,2 @@", "+x", "+y"]);
        assert_eq!(unified("x\n", ""), ["@@ -1 +0,0 @@", "-x"]);
        assert!(unified("same\n", "same\n").is_empty());
    }

    #[test]
    fn diffs_apply_back_to_the_new_text() {
        let texts = [
            "",
            "one\n",
            "a\nb\nc\n",
            "a\nx\nc\nd\ne\nf\ng\nh\ni\nj\nk\n",
            "k\nj\ni\nh\ng\nf\ne\nd\nc\nb\na\n",
            "a\na\na\nb\nb\na\n",
            "fn main() {\n    println!(\"hi\");\n}\n",
        ];
        for old in texts {
            for new in texts {
                let d = unified(old, new);
                assert_eq!(
                    apply(old, &d),
                    split(new).join("\n"),
                    "{old:?} -> {new:?}: {d:?}"
                );
            }
        }
    }

    #[test]
    fn far_apart_changes_get_their_own_hunks() {
        let old: String = (0..40).map(|i| format!("{i}\n")).collect();
        let new: String = (0..40)
            .map(|i| match i {
                5 => "five\n".to_string(),
                30 => "thirty\n".to_string(),
                i => format!("{i}\n"),
            })
            .collect();
        let d = unified(&old, &new);
        assert_eq!(d.iter().filter(|l| l.starts_with("@@")).count(), 2);
        assert_eq!(apply(&old, &d), split(&new).join("\n"));
    }

    #[test]
    fn huge_texts_are_shown_replaced_whole() {
        let old: String = (0..MAX_LINES + 1).map(|i| format!("{i}\n")).collect();
        let new = format!("{old}more\n");
        let d = unified(&old, &new);
        assert_eq!(
            d[0],
            format!("@@ -1,{} +1,{} @@", MAX_LINES + 1, MAX_LINES + 2)
        );
        assert_eq!(apply(&old, &d), split(&new).join("\n"));
    }
}
