//! Text edits and git-format diffs. Pure: text in, text out.
//!
//! A strategy describes a bug as edits (byte span → new text) on the original file. This module
//! applies them (rejecting overlaps with a message that names both), builds the structural edits
//! scripts need (remove statements, permute or swap sibling statements), and renders the minimal
//! `diff --git` patch that both `git apply` and libgit2 accept.

use crate::ast::{LineIndex, NodeId, SourceFile, Tree};
use sha2::{Digest, Sha256};

/// Replace the bytes `start..end` of the original file with `text`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    /// Byte offset of the first replaced byte.
    pub start: u32,
    /// Byte offset just past the replaced bytes (`start == end` inserts).
    pub end: u32,
    /// Replacement text.
    pub text: String,
}

/// Why edits could not be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EditError {
    /// Two edits touch the same bytes.
    #[error("overlapping edits: {first} and {second}")]
    Overlap {
        /// The earlier edit, described with lines.
        first: String,
        /// The later edit, described with lines.
        second: String,
    },
    /// An edit lies outside the allowed span or splits a character.
    #[error("edit {edit} is outside {bounds} or not on a character boundary")]
    OutOfBounds {
        /// The edit, described with lines.
        edit: String,
        /// The allowed span.
        bounds: String,
    },
}

fn describe(lines: &LineIndex, text: &str, start: u32, end: u32) -> String {
    let (l1, c1) = lines.line_column(text, start);
    let (l2, c2) = lines.line_column(text, end);
    format!("bytes {start}..{end} (line {l1}:{c1} to {l2}:{c2})")
}

/// Applies edits to `text`. Every edit must lie within `bounds` and on character boundaries,
/// and no two edits may overlap (two insertions at the same offset count as overlapping).
pub fn apply(text: &str, edits: &[Edit], bounds: (u32, u32)) -> Result<String, EditError> {
    let lines = || LineIndex::new(text);
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| (e.start, e.end));
    for e in &sorted {
        let inside = bounds.0 <= e.start && e.start <= e.end && e.end <= bounds.1;
        if !inside || !text.is_char_boundary(e.start as usize) || !text.is_char_boundary(e.end as usize) {
            return Err(EditError::OutOfBounds {
                edit: format!("bytes {}..{}", e.start, e.end),
                bounds: describe(&lines(), text, bounds.0, bounds.1),
            });
        }
    }
    for pair in sorted.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b.start < a.end || (a.start == b.start && (a.start == a.end || b.start == b.end)) {
            let lines = lines();
            return Err(EditError::Overlap {
                first: describe(&lines, text, a.start, a.end),
                second: describe(&lines, text, b.start, b.end),
            });
        }
    }
    let mut out = String::with_capacity(text.len() + 64);
    let mut cursor = 0usize;
    for e in sorted {
        out.push_str(&text[cursor..e.start as usize]);
        out.push_str(&e.text);
        cursor = e.end as usize;
    }
    out.push_str(&text[cursor..]);
    Ok(out)
}

/// The span from the start of `start`'s line to the end of `end`'s line (its line break
/// included): where edits for a statement at `start..end` may reach.
pub fn line_bounds(text: &str, lines: &LineIndex, start: u32, end: u32) -> (u32, u32) {
    let rest = &text[end as usize..];
    let line_end = match rest.find(['\n', '\r']) {
        Some(i) if rest[i..].starts_with("\r\n") => i + 2,
        Some(i) => i + 1,
        None => rest.len(),
    };
    (lines.line_start(lines.line(start)), end + line_end as u32)
}

/// The text of `start..end` with the edits that lie inside it applied (edits elsewhere ignored).
pub fn text_with(text: &str, start: u32, end: u32, edits: &[Edit]) -> Result<String, EditError> {
    if start > end
        || end as usize > text.len()
        || !text.is_char_boundary(start as usize)
        || !text.is_char_boundary(end as usize)
    {
        return Err(EditError::OutOfBounds {
            edit: format!("bytes {start}..{end}"),
            bounds: format!("bytes 0..{}", text.len()),
        });
    }
    let inside: Vec<Edit> = edits
        .iter()
        .filter(|e| start <= e.start && e.start <= e.end && e.end <= end)
        .map(|e| Edit { start: e.start - start, end: e.end - start, text: e.text.clone() })
        .collect();
    apply(&text[start as usize..end as usize], &inside, (0, end - start))
}

/// Replaces the span with `text`, dropping the edits inside it (the caller folded them into
/// `text`, for example with [`text_with`]).
pub fn fold(edits: &[Edit], start: u32, end: u32, text: String) -> Vec<Edit> {
    let mut out: Vec<Edit> = edits.iter().filter(|e| !(start <= e.start && e.end <= end)).cloned().collect();
    out.push(Edit { start, end, text });
    out
}

/// End of a statement extended over a comment that follows it on its last line.
fn end_with_trailing_comment(text: &str, end: u32) -> u32 {
    let rest = &text[end as usize..];
    let line = &rest[..rest.find(['\n', '\r']).unwrap_or(rest.len())];
    let trimmed = line.trim_start_matches([' ', '\t']);
    if trimmed.starts_with('#') { end + line.len() as u32 } else { end }
}

/// Edits that delete statements. A statement on lines of its own loses those whole lines
/// (with a trailing comment); one that shares a line loses itself and its `;`. A block whose
/// statements are all removed keeps a `pass` in place of the first. Statements inside another
/// removed statement are ignored.
pub fn remove_statements(file: &SourceFile, nodes: &[NodeId]) -> Vec<Edit> {
    let tree = file.tree();
    let text = file.text();
    let mut chosen: Vec<NodeId> = nodes.to_vec();
    chosen.sort_unstable();
    chosen.dedup();
    let outer: Vec<NodeId> =
        chosen.iter().copied().filter(|&n| !chosen.iter().any(|&o| o != n && tree.contains(o, n))).collect();
    let mut edits = Vec::new();
    for &id in &outer {
        let node = tree.node(id);
        let siblings: Vec<NodeId> = match node.parent {
            Some(p) => tree.children_with_role(p, node.role).collect(),
            None => vec![id],
        };
        let all_removed = siblings.iter().all(|s| outer.contains(s));
        if all_removed && siblings.first() == Some(&id) {
            edits.push(Edit { start: node.start, end: node.end, text: "pass".into() });
            continue;
        }
        edits.push(statement_deletion(text, file.lines(), tree, id));
    }
    let merged = merge_deletions(edits);
    // A line emptied by several deletions (`a = 1; b = 2`) goes as a whole.
    let widened = merged
        .into_iter()
        .map(|e| {
            if !e.text.is_empty() {
                return e;
            }
            let line_start = file.lines().line_start(file.lines().line(e.start));
            let rest = &text[e.end as usize..];
            let line_len = rest.find('\n').map_or(rest.len(), |i| i + 1);
            let blank = |s: &str| s.chars().all(char::is_whitespace);
            if e.start > line_start && blank(&text[line_start as usize..e.start as usize]) && blank(&rest[..line_len]) {
                Edit { start: line_start, end: e.end + line_len as u32, text: String::new() }
            } else {
                e
            }
        })
        .collect();
    merge_deletions(widened)
}

/// Joins deletions that overlap or touch (`a = 1; b = 2` losing both statements).
fn merge_deletions(mut edits: Vec<Edit>) -> Vec<Edit> {
    edits.sort_by_key(|e| (e.start, e.end));
    let mut merged: Vec<Edit> = Vec::with_capacity(edits.len());
    for edit in edits {
        match merged.last_mut() {
            Some(last) if last.text.is_empty() && edit.text.is_empty() && edit.start <= last.end => {
                last.end = last.end.max(edit.end);
            }
            _ => merged.push(edit),
        }
    }
    merged
}

fn statement_deletion(text: &str, lines: &LineIndex, tree: &Tree, id: NodeId) -> Edit {
    let node = tree.node(id);
    let line_start = lines.line_start(lines.line(node.start));
    let before = &text[line_start as usize..node.start as usize];
    let rest = &text[node.end as usize..];
    let after_len = rest.find(['\n', '\r']).unwrap_or(rest.len());
    let after = &rest[..after_len];
    let after_trimmed = after.trim_start_matches([' ', '\t']);
    let owns_start = before.chars().all(|c| c == ' ' || c == '\t');
    let owns_end = after_trimmed.is_empty() || after_trimmed.starts_with('#');
    if owns_start && owns_end {
        let newline = if rest[after_len..].starts_with("\r\n") { 2 } else { usize::from(after_len < rest.len()) };
        let end = node.end as usize + after_len + newline;
        // Blank lines just above go too, as LibCST's leading lines do, so no gap doubles up.
        let floor = node.parent.map_or(0, |p| tree.node(p).start as usize);
        let mut start = line_start as usize;
        while let Some(previous) =
            text[..start.saturating_sub(1)].rfind('\n').map(|i| i + 1).or((start > 0).then_some(0))
        {
            if start == 0 || previous < floor || !text[previous..start].trim().is_empty() {
                break;
            }
            start = previous;
        }
        return Edit { start: start as u32, end: end as u32, text: String::new() };
    }
    if let Some(stripped) = after_trimmed.strip_prefix(';') {
        let spaces = stripped.len() - stripped.trim_start_matches([' ', '\t']).len();
        let end = node.end as usize + (after.len() - stripped.len()) + spaces;
        return Edit { start: node.start, end: end as u32, text: String::new() };
    }
    let trimmed_before = before.trim_end_matches([' ', '\t']);
    if trimmed_before.ends_with(';') {
        let start = line_start as usize + trimmed_before.len() - 1;
        return Edit { start: start as u32, end: node.end, text: String::new() };
    }
    Edit { start: node.start, end: node.end, text: "pass".into() }
}

/// The span a statement occupies when moved: itself plus a comment after it on its last line.
fn movable_span(text: &str, tree: &Tree, id: NodeId) -> (u32, u32) {
    let node = tree.node(id);
    (node.start, with_comment_if_alone(text, node.start, node.end))
}

/// `end` extended over a trailing comment, but only when the text from `start` to there is on
/// lines of its own (`a = 1; b = 2  # c` must not carry `# c` along with `b = 2`).
fn with_comment_if_alone(text: &str, start: u32, end: u32) -> u32 {
    let line_start = text[..start as usize].rfind(['\n', '\r']).map_or(0, |i| i + 1);
    if text[line_start..start as usize].chars().all(|c| c == ' ' || c == '\t') {
        end_with_trailing_comment(text, end)
    } else {
        end
    }
}

/// One edit that rearranges sibling nodes: slot `i` receives `nodes[order[i]]`. The text
/// between the nodes (blank lines, comments, separators) stays where it is.
pub fn permute(file: &SourceFile, nodes: &[NodeId], order: &[usize]) -> Option<Edit> {
    let text = file.text();
    let tree = file.tree();
    if nodes.is_empty() || order.len() != nodes.len() {
        return None;
    }
    let spans: Vec<(u32, u32)> = nodes.iter().map(|&n| movable_span(text, tree, n)).collect();
    // Siblings in source order, none inside another: otherwise the gaps are meaningless.
    if spans.windows(2).any(|w| w[1].0 < w[0].1) {
        return None;
    }
    let mut out = String::new();
    for (slot, &source) in order.iter().enumerate() {
        let (s, e) = *spans.get(source)?;
        out.push_str(&text[s as usize..e as usize]);
        if let Some(next) = spans.get(slot + 1) {
            out.push_str(&text[spans[slot].1 as usize..next.0 as usize]);
        }
    }
    Some(Edit { start: spans[0].0, end: spans[spans.len() - 1].1, text: out })
}

/// Two edits that exchange the text of two runs of sibling nodes (each run given by its first
/// and last node), such as the body of an `if` and its `else`.
pub fn swap(file: &SourceFile, a: (NodeId, NodeId), b: (NodeId, NodeId)) -> Vec<Edit> {
    let text = file.text();
    let tree = file.tree();
    let span = |(first, last): (NodeId, NodeId)| {
        let start = tree.node(first).start;
        (start, with_comment_if_alone(text, start, tree.node(last).end.max(start)))
    };
    let (a, b) = (span(a), span(b));
    let (a, b) = if a.0 <= b.0 { (a, b) } else { (b, a) };
    if b.0 < a.1 {
        return Vec::new();
    }
    let slice = |(s, e): (u32, u32)| text[s as usize..e as usize].to_string();
    vec![Edit { start: a.0, end: a.1, text: slice(b) }, Edit { start: b.0, end: b.1, text: slice(a) }]
}

/// A minimal git-format patch turning `old` into `new` at `path` (three lines of context), or
/// `None` when they are equal. Only the window around the change (the common prefix and suffix
/// cut off, three lines of context kept) goes through the line diff, so the cost follows the
/// size of the change rather than of the file.
pub fn render_diff(path: &str, old: &str, new: &str) -> Option<String> {
    if old == new {
        return None;
    }
    let (o, n) = (old.as_bytes(), new.as_bytes());
    let common_prefix = o.iter().zip(n).take_while(|(a, b)| a == b).count();
    let prefix = o[..common_prefix].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let max_suffix = (o.len() - prefix).min(n.len() - prefix);
    let common_suffix = o.iter().rev().zip(n.iter().rev()).take(max_suffix).take_while(|(a, b)| a == b).count();
    // The unchanged tail starts at a line start.
    let mut old_tail = o.len() - common_suffix;
    while old_tail < o.len() && old_tail > prefix && o[old_tail - 1] != b'\n' {
        old_tail += 1;
    }
    let mut start = prefix;
    for _ in 0..3 {
        if start == 0 {
            break;
        }
        start = old[..start - 1].rfind('\n').map_or(0, |i| i + 1);
    }
    let mut old_end = old_tail;
    for _ in 0..3 {
        match old[old_end..].find('\n') {
            Some(i) => old_end += i + 1,
            None => old_end = old.len(),
        }
    }
    let new_end = new.len() - (old.len() - old_end);
    let offset = o[..start].iter().filter(|&&b| b == b'\n').count();
    let window = similar::TextDiff::from_lines(&old[start..old_end], &new[start..new_end]);
    let body = window.unified_diff().context_radius(3).to_string();
    let mut out = format!("diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n");
    for line in body.split_inclusive('\n') {
        match line.strip_prefix("@@ -").and_then(|rest| rest.split_once(" @@")) {
            Some((ranges, tail)) => {
                let (old_range, new_range) = ranges.split_once(" +").unwrap_or((ranges, ""));
                let _ = std::fmt::Write::write_fmt(
                    &mut out,
                    format_args!("@@ -{} +{} @@{tail}", shift(old_range, offset), shift(new_range, offset)),
                );
            }
            None => out.push_str(line),
        }
    }
    Some(out)
}

/// Adds `offset` to the start of a hunk range (`5` or `5,3`).
fn shift(range: &str, offset: usize) -> String {
    let (start, rest) = range.split_once(',').map_or((range, None), |(a, b)| (a, Some(b)));
    let start = start.parse::<usize>().unwrap_or(0) + offset;
    match rest {
        Some(len) => format!("{start},{len}"),
        None => start.to_string(),
    }
}

/// The patch that undoes `patch`: old and new sides swapped.
pub fn reverse(patch: &str) -> String {
    let mut out = String::with_capacity(patch.len());
    let mut pending_old: Option<&str> = None;
    // Within a run of changed lines, removals come first, as diff tools write them.
    let (mut removed, mut added) = (String::new(), String::new());
    let flush = |out: &mut String, removed: &mut String, added: &mut String| {
        out.push_str(removed);
        out.push_str(added);
        removed.clear();
        added.clear();
    };
    // Which buffer got the last changed line: a "\ No newline" marker stays with its line.
    let mut last_was_added = false;
    for line in patch.split_inclusive('\n') {
        match line.as_bytes().first() {
            Some(b'+') if !line.starts_with("+++ ") => {
                removed.push_str(&format!("-{}", &line[1..]));
                last_was_added = false;
                continue;
            }
            Some(b'-') if !line.starts_with("--- ") => {
                added.push_str(&format!("+{}", &line[1..]));
                last_was_added = true;
                continue;
            }
            Some(b'\\') if !removed.is_empty() || !added.is_empty() => {
                if last_was_added { &mut added } else { &mut removed }.push_str(line);
                continue;
            }
            _ => flush(&mut out, &mut removed, &mut added),
        }
        if let Some(rest) = line.strip_prefix("--- ") {
            pending_old = Some(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("+++ ") {
            let old = pending_old.take().unwrap_or("/dev/null\n");
            let swap = |side: &str, from: &str, to: &str| {
                side.strip_prefix(from).map_or(side.to_string(), |p| format!("{to}{p}"))
            };
            out.push_str(&format!("--- {}", swap(rest, "b/", "a/")));
            out.push_str(&format!("+++ {}", swap(old, "a/", "b/")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("@@ -")
            && let Some((ranges, tail)) = rest.split_once(" @@")
            && let Some((old, new)) = ranges.split_once(" +")
        {
            out.push_str(&format!("@@ -{new} +{old} @@{tail}"));
            continue;
        }
        if line.starts_with("new file mode") {
            out.push_str(&line.replacen("new", "deleted", 1));
        } else if line.starts_with("deleted file mode") {
            out.push_str(&line.replacen("deleted", "new", 1));
        } else if !line.starts_with("index ") {
            out.push_str(line);
        }
    }
    flush(&mut out, &mut removed, &mut added);
    out
}

/// Files a git-format patch touches (its `+++ b/` paths), in order, each once.
pub fn files_of(patch: &str) -> Vec<String> {
    let mut files: Vec<String> = Vec::new();
    for line in patch.lines() {
        if let Some(path) = line.strip_prefix("+++ b/")
            && !files.iter().any(|f| f == path)
        {
            files.push(path.to_string());
        }
    }
    files
}

/// The docstring statement opening a function's or class's body, if it has one.
pub fn docstring(file: &SourceFile, node: NodeId) -> Option<NodeId> {
    let tree = file.tree();
    let first = tree.children_with_role(node, "body").next()?;
    let is_string = tree.node(first).kind == "Expr"
        && tree.children_with_role(first, "value").next().is_some_and(|v| tree.node(v).kind == "String");
    is_string.then_some(first)
}

/// The edit that empties a function's body (its docstring stays): `pass` and a TODO comment.
pub fn stub(file: &SourceFile, node: NodeId) -> Option<Edit> {
    let tree = file.tree();
    let text = file.text();
    let body: Vec<NodeId> = tree.children_with_role(node, "body").collect();
    let docstring = docstring(file, node);
    let first = body.iter().copied().find(|&s| Some(s) != docstring)?;
    let last = *body.last()?;
    let start = tree.node(first).start;
    let line_start = text[..start as usize].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[line_start..start as usize];
    let replacement = if before.chars().all(|c| c == ' ' || c == '\t') {
        format!("# TODO: Implement this function\n{before}pass")
    } else {
        "pass  # TODO: Implement this function".to_string()
    };
    Some(Edit { start, end: tree.node(last).end, text: replacement })
}

/// What a git-format patch changes, per file (`--- a/` path, else `+++ b/`): hunks, added and
/// removed lines, and the pre-image lines it touches (removed lines; for a pure insertion,
/// the line it follows).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileChange {
    /// The file.
    pub path: String,
    /// Hunks.
    pub hunks: usize,
    /// Lines added.
    pub added: usize,
    /// Lines removed.
    pub removed: usize,
    /// 1-based pre-image lines touched, ascending.
    pub old_lines: Vec<usize>,
}

/// The changes of a git-format patch, file by file in order.
pub fn changes_of(patch: &str) -> Vec<FileChange> {
    let mut files: Vec<FileChange> = Vec::new();
    let mut old_line = 0;
    let mut pending_old: Option<String> = None;
    for line in patch.lines() {
        if let Some(path) = line.strip_prefix("--- ") {
            pending_old = path.strip_prefix("a/").map(str::to_string);
            continue;
        }
        if let Some(path) = line.strip_prefix("+++ ") {
            let new = path.strip_prefix("b/").map(str::to_string);
            files.push(FileChange { path: pending_old.take().or(new).unwrap_or_default(), ..FileChange::default() });
            continue;
        }
        let Some(file) = files.last_mut() else { continue };
        if let Some(rest) = line.strip_prefix("@@ -") {
            file.hunks += 1;
            let start = rest.split([',', ' ']).next().and_then(|n| n.parse::<usize>().ok()).unwrap_or(1);
            old_line = start;
            continue;
        }
        match line.as_bytes().first() {
            Some(b'-') => {
                file.removed += 1;
                file.old_lines.push(old_line);
                old_line += 1;
            }
            Some(b'+') => {
                file.added += 1;
                let at = old_line.saturating_sub(1).max(1);
                if file.old_lines.last() != Some(&at) {
                    file.old_lines.push(at);
                }
            }
            Some(b' ') => old_line += 1,
            _ => {}
        }
    }
    for file in &mut files {
        file.old_lines.sort_unstable();
        file.old_lines.dedup();
    }
    files
}

/// Eight characters of `[a-z0-9]` derived from the SHA-256 of `data` (a stable content id).
pub fn hash8(data: &str) -> String {
    let digest = Sha256::digest(data.as_bytes());
    let mut value = u128::from_be_bytes(digest[..16].try_into().unwrap_or([0; 16]));
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..8)
        .map(|_| {
            let c = ALPHABET[(value % 36) as usize] as char;
            value /= 36;
            c
        })
        .collect()
}

/// First eight hex digits of the SHA-256 of `data` (SWE-smith's signature hash).
pub fn sha256_hex8(data: &str) -> String {
    let digest = Sha256::digest(data.as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(start: u32, end: u32, text: &str) -> Edit {
        Edit { start, end, text: text.into() }
    }

    #[test]
    fn patch_changes_count_hunks_lines_and_pre_image_lines() {
        let patch = "diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -3,3 +3,3 @@ def f():\n     a = 1\n-    b = 2\n+    b = 3\n     c = 4\n@@ -10,2 +10,3 @@\n     x = 1\n+    y = 2\n     z = 3\n";
        let changes = changes_of(patch);
        assert_eq!(changes.len(), 1);
        let file = &changes[0];
        assert_eq!((file.path.as_str(), file.hunks, file.added, file.removed), ("m.py", 2, 2, 1));
        assert_eq!(file.old_lines, [4, 10]);
    }

    #[test]
    fn edits_apply_in_offset_order_whatever_their_input_order() {
        let out = apply("a + b", &[edit(4, 5, "c"), edit(2, 3, "-")], (0, 5)).unwrap();
        assert_eq!(out, "a - c");
    }

    #[test]
    fn overlapping_edits_are_rejected_with_both_spans_named() {
        let err = apply("a + b\n", &[edit(0, 3, "x"), edit(2, 5, "y")], (0, 6)).unwrap_err();
        assert_eq!(err.to_string(), "overlapping edits: bytes 0..3 (line 1:1 to 1:4) and bytes 2..5 (line 1:3 to 1:6)");
    }

    #[test]
    fn edits_outside_the_entity_are_rejected() {
        assert!(matches!(apply("abc", &[edit(0, 1, "x")], (1, 3)), Err(EditError::OutOfBounds { .. })));
    }

    #[test]
    fn edits_that_split_a_character_are_rejected() {
        assert!(apply("é", &[edit(1, 2, "x")], (0, 2)).is_err());
    }

    #[test]
    fn diffs_have_git_headers_and_no_newline_markers() {
        let diff = render_diff("m.py", "a = 1\nb = 2", "a = 1\nb = 3").unwrap();
        assert_eq!(
            diff,
            "diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -1,2 +1,2 @@\n a = 1\n-b = 2\n\\ No newline at end of file\n+b = 3\n\\ No newline at end of file\n"
        );
    }

    #[test]
    fn diffs_of_a_change_deep_in_a_file_match_a_whole_file_diff() {
        let old: String = (1..=40).map(|i| format!("line {i}\n")).collect();
        let new = old.replace("line 20\n", "line twenty\nline 20b\n").replace("line 23\n", "");
        let whole = similar::TextDiff::from_lines(old.as_str(), new.as_str())
            .unified_diff()
            .context_radius(3)
            .header("a/f.py", "b/f.py")
            .to_string();
        assert_eq!(render_diff("f.py", &old, &new).unwrap(), format!("diff --git a/f.py b/f.py\n{whole}"));
        let at_end = format!("{old}tail");
        let changed_end = format!("{old}tale");
        assert!(
            render_diff("f.py", &at_end, &changed_end)
                .unwrap()
                .ends_with("-tail\n\\ No newline at end of file\n+tale\n\\ No newline at end of file\n")
        );
        assert!(render_diff("f.py", &at_end, &changed_end).unwrap().contains("@@ -38,4 +38,4 @@"));
    }

    #[test]
    fn patch_files_are_listed_once_in_order() {
        let patch = "--- a/x.py\n+++ b/x.py\n@@\n--- a/y.py\n+++ b/y.py\n--- a/x.py\n+++ b/x.py\n";
        assert_eq!(files_of(patch), ["x.py", "y.py"]);
    }

    #[test]
    fn a_reversed_patch_undoes_the_patch() {
        let old = "a\nb\nc\n";
        let new = "a\nB\nc\nd\n";
        let forward = render_diff("f.py", old, new).unwrap();
        assert_eq!(reverse(&forward), render_diff("f.py", new, old).unwrap());
    }

    #[test]
    fn a_reversed_patch_keeps_no_newline_markers_with_their_lines() {
        for (old, new) in [("a\ntail", "a\ntale"), ("a\ntail", "a\ntale\n"), ("a\ntail\n", "a\ntale")] {
            let forward = render_diff("f.py", old, new).unwrap();
            assert_eq!(reverse(&forward), render_diff("f.py", new, old).unwrap(), "{old:?} -> {new:?}");
        }
    }

    #[test]
    fn hash8_is_stable_lowercase_alphanumeric() {
        assert_eq!(hash8("hello"), hash8("hello"));
        assert_ne!(hash8("hello"), hash8("hello!"));
        assert!(hash8("x").chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert_eq!(sha256_hex8("hello"), "2cf24dba");
    }
}
