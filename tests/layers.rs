//! The house's layers, checked over the sources under `src/` (DESIGN.md,
//! "Inside src/"), so that they stay the way the plan draws them.
//!
//! - **Pure floors** (1–4: `media`, `account`, `recording`, `sdp`, `call`,
//!   `callback`, `desk`) never reach the runtime, sockets, threads, files,
//!   the environment or the clock, and draw no randomness of their own:
//!   no `tokio`, `std::thread`, `std::fs`, `std::process`, `std::env`,
//!   `Instant::now`, `SystemTime::now`, `Timestamp::now`, no socket types.
//!   Two deliberate readings of that list:
//!   - `std::net` is allowed for its plain address values only
//!     (`SocketAddr`, `IpAddr`, ...): a peer's RTP address is data that
//!     offer/answer and the stream carry; sockets and name lookup are not.
//!   - `rand` is allowed for a generator seeded by a value passed in
//!     (RTCP's randomized interval); what is refused is drawing entropy
//!     (`rand::random`, `rand::rng`, `thread_rng`, `OsRng`, `from_entropy`,
//!     `from_os_rng`, `getrandom`), which is input the shell must supply.
//!
//!   A file inside a pure module that must do IO is listed in [`IO_FILES`]
//!   with its reason; it belongs to the shell floor (5) for both rules.
//! - **Floor order**: a module names (`crate::X`, or `super::` up to the
//!   crate root) only modules on its own floor or below. Plain data the
//!   shell reads, such as `config`, sits on the shell floor, so a pure core
//!   never takes a config struct.
//! - **No circles between modules**: no top-level module names another
//!   that names it back, directly or around a longer loop (same-floor
//!   modules are the case the floor order alone does not catch).
//!
//! Test code is not the product: `#[cfg(test)]` items and the files of
//! `#[cfg(test)] mod x;` are skipped. Tests drive a pure core with real
//! time, seeded noise, capture files and tone generators from higher floors;
//! none of that is compiled into the daemon. Comments and string literals
//! are skipped too, so a doc comment may name what it does not use.
//!
//! Violations in modules the desk rewrite is still moving ([`NOT_YET_ENFORCED`])
//! are printed (run with `--nocapture`) and do not fail yet.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The floors of DESIGN.md, from the ground up.
const FLOORS: &[(&str, u8)] = &[
    ("media", 1),
    ("account", 1),
    ("recording", 1),
    ("sdp", 2),
    ("call", 3),
    ("callback", 3),
    ("desk", 4),
    ("sip", 5),
    ("audio", 5),
    ("recorder", 5),
    ("store", 5),
    ("control", 5),
    ("config", 5),
    ("timing", 5),
    ("daemon", 6),
];

/// Floors 1 to this one are pure.
const HIGHEST_PURE_FLOOR: u8 = 4;

/// The shell floor, where the files of [`IO_FILES`] belong.
const SHELL_FLOOR: u8 = 5;

/// Files inside a pure module that must do IO, and why. They count as
/// part of the recorder (floor 5), which DESIGN.md puts beside the store.
const IO_FILES: &[(&str, &str)] = &[
    ("recording/file.rs", "the recorder's WAV file: written, synced and repaired on disk"),
    ("recording/ogg_opus.rs", "the recorder's Ogg/Opus file on disk, each with a random stream serial"),
    ("recording/writer.rs", "the recorder thread: its own OS thread, fed by a tokio channel, writing files"),
];

/// Modules whose violations are listed but do not fail yet: the lead
/// engineer is moving `daemon` into the pure `desk` and a thin shell.
const NOT_YET_ENFORCED: &[&str] = &["daemon", "desk", "control"];

/// `std::net` items that are plain values, not sockets or lookups.
const ADDRESS_VALUES: &[&str] =
    &["SocketAddr", "SocketAddrV4", "SocketAddrV6", "IpAddr", "Ipv4Addr", "Ipv6Addr", "AddrParseError"];

/// Names that draw entropy, wherever they come from.
const ENTROPY: &[&str] = &["thread_rng", "OsRng", "from_entropy", "from_os_rng", "getrandom"];

/// Socket and lookup types, however they were imported.
const SOCKETS: &[&str] =
    &["UdpSocket", "TcpStream", "TcpListener", "UnixStream", "UnixListener", "UnixDatagram", "ToSocketAddrs"];

#[test]
fn every_module_stands_on_a_floor() {
    let unplaced: Vec<String> = sources()
        .iter()
        .filter(|s| floor_of(&s.module).is_none())
        .map(|s| format!("src/{}: module `{}` is on no floor of tests/layers.rs", s.rel, s.module))
        .collect();
    assert!(unplaced.is_empty(), "place every module on a floor (DESIGN.md):\n{}", unplaced.join("\n"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let stale: Vec<&str> = IO_FILES.iter().map(|(rel, _)| *rel).filter(|rel| !root.join(rel).exists()).collect();
    assert!(stale.is_empty(), "IO_FILES names files that are gone: {stale:?}");
}

#[test]
fn pure_floors_reach_no_runtime_socket_thread_file_or_clock() {
    let mut found = Vec::new();
    for source in sources().iter().filter(|s| s.floor().is_some_and(|f| f <= HIGHEST_PURE_FLOOR)) {
        for path in &source.paths {
            if let Some(why) = impure(&path.segments) {
                found.push(Finding {
                    module: source.module.clone(),
                    text: format!(
                        "src/{}:{}: `{}` in pure code (floor {}): {why}",
                        source.rel,
                        path.line,
                        path.segments.join("::"),
                        source.floor().unwrap_or_default()
                    ),
                });
            }
        }
    }
    report("pure floors (1-4) must stay sans-IO", found);
}

#[test]
fn modules_use_only_their_floor_or_below() {
    let mut found = Vec::new();
    for source in &sources() {
        let Some(floor) = source.floor() else { continue };
        for path in &source.paths {
            let Some(target) = source.crate_module(&path.segments) else { continue };
            let Some(target_floor) = floor_of(&target) else { continue };
            if target_floor > floor {
                found.push(Finding {
                    module: source.module.clone(),
                    text: format!(
                        "src/{}:{}: `{}`: {} (floor {floor}) may not use {target} (floor {target_floor})",
                        source.rel,
                        path.line,
                        path.segments.join("::"),
                        source.module
                    ),
                });
            }
        }
    }
    report("a module uses only modules on its floor or below", found);
}

#[test]
fn modules_form_no_import_circle() {
    let mut uses: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for source in &sources() {
        for path in &source.paths {
            let Some(target) = source.crate_module(&path.segments) else { continue };
            if target != source.module {
                let at = format!("src/{}:{}", source.rel, path.line);
                uses.entry(source.module.clone()).or_default().entry(target).or_insert(at);
            }
        }
    }
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    for start in uses.keys() {
        if let Some(circle) = circle_from(start, &uses) {
            let mut key = circle.clone();
            key.sort();
            if seen.insert(key) {
                let steps: Vec<String> = circle
                    .iter()
                    .zip(circle.iter().cycle().skip(1))
                    .map(|(from, to)| format!("{from} -> {to} ({})", uses[from][to]))
                    .collect();
                let module = circle.iter().find(|m| enforced(m)).unwrap_or(&circle[0]).clone();
                found.push(Finding { module, text: format!("circle: {}", steps.join(", ")) });
            }
        }
    }
    report("modules form no import circle", found);
}

/// One rule's violations: those in enforced modules fail the test, the
/// rest are printed for the desk rewrite to clear.
fn report(rule: &str, found: Vec<Finding>) {
    let (pending, failing): (Vec<Finding>, Vec<Finding>) = found.into_iter().partition(|f| !enforced(&f.module));
    for finding in &pending {
        eprintln!("not yet enforced ({rule}): {}", finding.text);
    }
    let lines: Vec<&str> = failing.iter().map(|f| f.text.as_str()).collect();
    assert!(lines.is_empty(), "{rule}:\n{}", lines.join("\n"));
}

fn enforced(module: &str) -> bool {
    !NOT_YET_ENFORCED.contains(&module)
}

struct Finding {
    module: String,
    text: String,
}

fn floor_of(module: &str) -> Option<u8> {
    FLOORS.iter().find(|(name, _)| *name == module).map(|(_, floor)| *floor)
}

/// Why a path may not appear in pure code, if it may not.
fn impure(segments: &[String]) -> Option<&'static str> {
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let last_two = |a: &str, b: &str| s.windows(2).any(|w| w == [a, b]);
    match s.as_slice() {
        ["tokio", ..] => Some("the runtime is the shell's"),
        ["std", "thread", ..] => Some("threads are the shell's"),
        ["std", "fs", ..] => Some("files are the shell's"),
        ["std", "process", ..] => Some("processes are the shell's"),
        ["std", "env", ..] => Some("the environment is read by the shell"),
        ["std" | "core", "net"] => Some("sockets are the shell's (name the address types instead)"),
        ["std" | "core", "net", item, ..] if !ADDRESS_VALUES.contains(item) => Some("sockets are the shell's"),
        ["rand", "random" | "rng", ..] => Some("randomness is passed in"),
        _ if s.iter().any(|x| ENTROPY.contains(x)) => Some("randomness is passed in"),
        _ if s.iter().any(|x| SOCKETS.contains(x)) => Some("sockets are the shell's"),
        _ if last_two("Instant", "now") || last_two("SystemTime", "now") || last_two("Timestamp", "now") => {
            Some("time is passed in (`now`)")
        }
        _ => None,
    }
}

/// A circle through `start` in the module graph, if there is one.
fn circle_from(start: &str, uses: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Vec<String>> {
    fn walk(
        node: &str,
        start: &str,
        uses: &BTreeMap<String, BTreeMap<String, String>>,
        trail: &mut Vec<String>,
        visited: &mut BTreeSet<String>,
    ) -> bool {
        for next in uses.get(node).into_iter().flat_map(BTreeMap::keys) {
            if next == start {
                return true;
            }
            if visited.insert(next.clone()) {
                trail.push(next.clone());
                if walk(next, start, uses, trail, visited) {
                    return true;
                }
                trail.pop();
            }
        }
        false
    }
    let mut trail = vec![start.to_string()];
    walk(start, start, uses, &mut trail, &mut BTreeSet::new()).then_some(trail)
}

/// One product source file, read down to the paths it names.
struct Source {
    /// Relative to `src/`.
    rel: String,
    /// The top-level module it belongs to (`recorder` for [`IO_FILES`]).
    module: String,
    /// Its module path, e.g. `call::phone::across_calls`, for `super`.
    module_path: Vec<String>,
    paths: Vec<PathUse>,
}

impl Source {
    fn floor(&self) -> Option<u8> {
        if IO_FILES.iter().any(|(rel, _)| *rel == self.rel) {
            return Some(SHELL_FLOOR);
        }
        floor_of(&self.module)
    }

    /// The top-level module a path names, when it leaves through the crate root.
    fn crate_module(&self, segments: &[String]) -> Option<String> {
        if segments.first().map(String::as_str) == Some("crate") {
            return segments.get(1).cloned();
        }
        let supers = segments.iter().take_while(|s| *s == "super").count();
        (supers > 0 && supers >= self.module_path.len()).then(|| segments.get(supers).cloned()).flatten()
    }
}

/// A path in code (`a::b::c`, a lone name, or one leaf of a `use` tree) and its line.
struct PathUse {
    segments: Vec<String>,
    line: usize,
}

/// Every product source of the library (not `bin/`, `main.rs`, `lib.rs`,
/// nor test files), each read down to the paths it names.
fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&root, &mut files);
    let mut tokens = BTreeMap::new();
    let mut test_files = BTreeSet::new();
    for file in &files {
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let (kept, declared_tests) = without_test_code(&tokenize(&text), file);
        test_files.extend(declared_tests);
        tokens.insert(file.clone(), kept);
    }
    let mut sources = Vec::new();
    for (file, tokens) in tokens {
        let rel = file.strip_prefix(&root).expect("under src").to_string_lossy().replace('\\', "/");
        if test_files.contains(&file) || rel.starts_with("bin/") || rel == "main.rs" || rel == "lib.rs" {
            continue;
        }
        let module_path = module_path_of(&rel);
        let module = if IO_FILES.iter().any(|(io, _)| *io == rel) { "recorder".into() } else { module_path[0].clone() };
        sources.push(Source { rel, module, module_path, paths: paths_in(&tokens) });
    }
    sources
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

fn module_path_of(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel.trim_end_matches(".rs").split('/').map(String::from).collect();
    if parts.len() > 1 && parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
}

/// Tokens with their line numbers; comments, string and char literals dropped.
fn tokenize(text: &str) -> Vec<(Token, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            loop {
                match (at(i), at(i + 1)) {
                    ('/', '*') => (depth, i) = (depth + 1, i + 2),
                    ('*', '/') => (depth, i) = (depth - 1, i + 2),
                    ('\0', _) => break,
                    (ch, _) => (line, i) = (line + usize::from(ch == '\n'), i + 1),
                }
                if depth == 0 {
                    break;
                }
            }
        } else if let Some(end) = raw_string_end(&chars, i) {
            line += chars[i..end].iter().filter(|ch| **ch == '\n').count();
            i = end;
        } else if c == '"' || (c == 'b' && at(i + 1) == '"') {
            i += if c == 'b' { 2 } else { 1 };
            while i < chars.len() && chars[i] != '"' {
                line += usize::from(chars[i] == '\n');
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '\'' && (at(i + 1) == '\\' || at(i + 2) == '\'') {
            // A char literal; a lifetime (`'a`) has no closing quote.
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push((Token::Ident(chars[start..i].iter().collect()), line));
        } else if c == ':' && at(i + 1) == ':' {
            tokens.push((Token::PathSep, line));
            i += 2;
        } else {
            tokens.push((Token::Punct(c), line));
            i += 1;
        }
    }
    tokens
}

/// Where a raw string (`r"..."`, `r#"..."#`, `br"..."`) starting at `i` ends.
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i + usize::from(chars.get(i) == Some(&'b'));
    if chars.get(j) != Some(&'r') || (i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')) {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|c| **c == '#').count();
    j += hashes;
    if chars.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < chars.len() {
        if chars[j] == '"' && chars[j + 1..].iter().take(hashes).filter(|c| **c == '#').count() == hashes {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(chars.len())
}

/// The tokens without `#[cfg(test)]` items, and the files that
/// `#[cfg(test)] mod x;` declarations in `file` bring in.
fn without_test_code(tokens: &[(Token, usize)], file: &Path) -> (Vec<(Token, usize)>, Vec<PathBuf>) {
    let ident = |i: usize, name: &str| matches!(tokens.get(i), Some((Token::Ident(s), _)) if s == name);
    let punct = |i: usize, c: char| matches!(tokens.get(i), Some((Token::Punct(p), _)) if *p == c);
    let mut kept = Vec::new();
    let mut test_files = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let cfg_test = punct(i, '#')
            && punct(i + 1, '[')
            && ident(i + 2, "cfg")
            && punct(i + 3, '(')
            && ident(i + 4, "test")
            && punct(i + 5, ')')
            && punct(i + 6, ']');
        if !cfg_test {
            kept.push(tokens[i].clone());
            i += 1;
            continue;
        }
        i += 7;
        let mut path_attribute = None;
        while punct(i, '#') {
            let end = matching(tokens, i + 1);
            if ident(i + 2, "path") {
                path_attribute = literal_after(&tokens[i..end], file);
            }
            i = end + 1;
        }
        // The item ends at its `;` or its closing brace; a closing bracket
        // of the enclosing item (after a field or an arm) ends it too.
        let item = i;
        let mut depth = 0;
        while i < tokens.len() {
            match tokens[i].0 {
                Token::Punct('{' | '(' | '[') => depth += 1,
                Token::Punct('}' | ')' | ']') if depth == 0 => break,
                Token::Punct('}' | ')' | ']') => depth -= 1,
                _ => {}
            }
            i += 1;
            if depth == 0 && matches!(tokens[i - 1].0, Token::Punct(';' | '}' | ',')) {
                break;
            }
        }
        if let Some(name) = declared_module_file(&tokens[item..i]) {
            test_files.push(path_attribute.take().unwrap_or_else(|| module_file(file, &name)));
        }
    }
    (kept, test_files)
}

/// The index of the `]`, `)` or `}` that closes the bracket at `open`.
fn matching(tokens: &[(Token, usize)], open: usize) -> usize {
    let mut depth = 0;
    for (i, (token, _)) in tokens.iter().enumerate().skip(open) {
        match token {
            Token::Punct('{' | '(' | '[') => depth += 1,
            Token::Punct('}' | ')' | ']') => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            return i;
        }
    }
    tokens.len() - 1
}

/// `#[path = "x.rs"]`: the tokenizer drops literals, so the attribute is
/// read again from the file text by its line.
fn literal_after(attribute: &[(Token, usize)], file: &Path) -> Option<PathBuf> {
    let line = attribute.first()?.1;
    let text = fs::read_to_string(file).ok()?;
    let source_line = text.lines().nth(line - 1)?;
    let quoted = source_line.split('"').nth(1)?;
    Some(file.parent()?.join(quoted))
}

/// `mod name;` (with any visibility) declares a file; `mod name { .. }` does not.
fn declared_module_file(item: &[(Token, usize)]) -> Option<String> {
    let at = item.iter().position(|(t, _)| *t == Token::Ident("mod".into()))?;
    match (item.get(at + 1), item.get(at + 2)) {
        (Some((Token::Ident(name), _)), Some((Token::Punct(';'), _))) => Some(name.clone()),
        _ => None,
    }
}

/// The file `mod name;` in `parent` refers to.
fn module_file(parent: &Path, name: &str) -> PathBuf {
    let stem = parent.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let dir = parent.parent().expect("a file has a folder");
    let dir = if stem == "mod" || stem == "lib" || stem == "main" { dir.to_path_buf() } else { dir.join(stem) };
    let flat = dir.join(format!("{name}.rs"));
    if flat.exists() {
        flat
    } else {
        dir.join(name).join("mod.rs")
    }
}

/// Every path the tokens name: `use` trees expanded to their leaves, and
/// every other `a::b::c` or lone name.
fn paths_in(tokens: &[(Token, usize)]) -> Vec<PathUse> {
    let mut paths = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i].0 == Token::Ident("use".into()) {
            i = use_tree(tokens, i + 1, &[], &mut paths);
            continue;
        }
        if let Token::Ident(first) = &tokens[i].0 {
            let line = tokens[i].1;
            let mut segments = vec![first.clone()];
            i += 1;
            while tokens.get(i).map(|t| &t.0) == Some(&Token::PathSep) {
                match tokens.get(i + 1) {
                    Some((Token::Ident(next), _)) => segments.push(next.clone()),
                    _ => break,
                }
                i += 2;
            }
            paths.push(PathUse { segments, line });
            continue;
        }
        i += 1;
    }
    paths
}

/// Read one `use` tree from `i`, pushing each leaf under `prefix`;
/// returns where reading stopped (after `;`, or at `,`/`}` of a group).
fn use_tree(tokens: &[(Token, usize)], mut i: usize, prefix: &[String], paths: &mut Vec<PathUse>) -> usize {
    let mut segments = prefix.to_vec();
    let mut line = tokens.get(i).map_or(0, |t| t.1);
    while let Some((token, at)) = tokens.get(i) {
        match token {
            Token::Ident(s) if s == "as" => i += 2,
            // `self` names the path so far: `use a::{self, b}` uses `a`.
            Token::Ident(s) if s == "self" => i += 1,
            Token::Ident(s) => {
                if segments.len() == prefix.len() {
                    line = *at;
                }
                segments.push(s.clone());
                i += 1;
            }
            Token::PathSep => i += 1,
            Token::Punct('{') => {
                i += 1;
                while !matches!(tokens.get(i), None | Some((Token::Punct('}'), _))) {
                    i = use_tree(tokens, i, &segments, paths);
                    if matches!(tokens.get(i), Some((Token::Punct(','), _))) {
                        i += 1;
                    }
                }
                i += 1;
                segments.truncate(prefix.len());
            }
            Token::Punct('*') => i += 1,
            Token::Punct(';') => {
                push_leaf(&segments, prefix, line, paths);
                return i + 1;
            }
            Token::Punct(',' | '}') => break,
            Token::Punct(_) => i += 1,
        }
    }
    push_leaf(&segments, prefix, line, paths);
    i
}

fn push_leaf(segments: &[String], prefix: &[String], line: usize, paths: &mut Vec<PathUse>) {
    if segments.len() > prefix.len() || (!segments.is_empty() && segments == prefix) {
        paths.push(PathUse { segments: segments.to_vec(), line });
    }
}
