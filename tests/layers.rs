//! The house's layers, checked over the sources under `src/` (DESIGN.md,
//! "Inside src/"), so that they stay the way the plan draws them.
//!
//! - **Pure floors** (1–4: `media`, `account`, `dns`, `recording`, `sdp`, `call`,
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

//! - **Floor order**: a module names (`crate::X`, or `super::` up to the
//!   crate root) only modules on its own floor or below. Plain data the
//!   shell reads, such as `config`, sits on the shell floor, so a pure core
//!   never takes a config struct.
//! - **No circles between modules**: no top-level module names another
//!   that names it back, directly or around a longer loop (same-floor
//!   modules are the case the floor order alone does not catch).
//! - **No circles between files** of one module, a parent file with its
//!   own children aside (see [`files_of_a_module_form_no_import_circle`]).
//!
//! Test code is not the product: `#[cfg(test)]` items and the files of
//! `#[cfg(test)] mod x;` are skipped. Tests drive a pure core with real
//! time, seeded noise, capture files and tone generators from higher floors;
//! none of that is compiled into the daemon. Comments and string literals
//! are skipped too, so a doc comment may name what it does not use.
//!
//! Reading the sources is `layers/sources.rs`.

#[path = "layers/sources.rs"]
mod sources;

use std::collections::{BTreeMap, BTreeSet};

use sources::{sources, Source};

/// The floors of DESIGN.md, from the ground up.
const FLOORS: &[(&str, u8)] = &[
    ("media", 1),
    ("nat", 1),
    ("account", 1),
    ("dns", 1),
    ("recording", 1),
    ("history", 1),
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
    ("media_io", 5),
    ("metrics", 5),
    ("daemon", 6),
    ("cli_docs", 6),
];

/// Floors 1 to this one are pure.
const HIGHEST_PURE_FLOOR: u8 = 4;

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
        .filter(|s| floor(s).is_none())
        .map(|s| format!("src/{}: module `{}` is on no floor of tests/layers.rs", s.rel, module(s)))
        .collect();
    assert!(unplaced.is_empty(), "place every module on a floor (DESIGN.md):\n{}", unplaced.join("\n"));
}

#[test]
fn pure_floors_reach_no_runtime_socket_thread_file_or_clock() {
    let mut found = Vec::new();
    for source in sources().iter().filter(|s| floor(s).is_some_and(|f| f <= HIGHEST_PURE_FLOOR)) {
        for path in &source.paths {
            if let Some(why) = impure(&path.segments) {
                found.push(Finding {
                    text: format!(
                        "src/{}:{}: `{}` in pure code (floor {}): {why}",
                        source.rel,
                        path.line,
                        path.segments.join("::"),
                        floor(source).unwrap_or_default()
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
        let Some(floor) = floor(source) else { continue };
        for path in &source.paths {
            let Some(target) = source.crate_module(&path.segments) else { continue };
            let Some(target_floor) = floor_of(&target) else { continue };
            if target_floor > floor {
                found.push(Finding {
                    text: format!(
                        "src/{}:{}: `{}`: {} (floor {floor}) may not use {target} (floor {target_floor})",
                        source.rel,
                        path.line,
                        path.segments.join("::"),
                        module(source)
                    ),
                });
            }
        }
    }
    report("a module uses only modules on its floor or below", found);
}

#[test]
fn modules_form_no_import_circle() {
    let mut uses = Graph::new();
    for source in &sources() {
        for path in &source.paths {
            let Some(target) = source.crate_module(&path.segments) else { continue };
            if target != module(source) {
                let at = format!("src/{}:{}", source.rel, path.line);
                uses.entry(module(source).into()).or_default().entry(target).or_insert(at);
            }
        }
    }
    let found = circles(&uses).into_iter().map(|circle| Finding { text: describe(&circle, &uses) }).collect();
    report("modules form no import circle", found);
}

/// Within a module, files do not name each other around a circle. A file
/// and its own descendants are exempt: a child module is part of its
/// parent (it sees the parent's private items), and a parent's `pub use`
/// of a child's item is the module's face, not a dependency of its own.
/// Calls into methods that another file adds to a type (`impl T` spread
/// over files) name no path and are not seen.
#[test]
fn files_of_a_module_form_no_import_circle() {
    let sources = sources();
    let files: BTreeMap<&[String], &Source> = sources.iter().map(|s| (s.module_path.as_slice(), s)).collect();
    let is_module = |path: &[String]| files.contains_key(path);
    let mut reexports: BTreeMap<(&[String], &str), Vec<String>> = BTreeMap::new();
    for source in &sources {
        for path in source.paths.iter().filter(|p| p.reexport) {
            if let (Some(name), Some(target)) = (path.segments.last(), source.absolute(&path.segments, is_module)) {
                reexports.insert((source.module_path.as_slice(), name.as_str()), target);
            }
        }
    }
    let file_of = |absolute: &[String]| -> Option<&Source> {
        let mut path = absolute.to_vec();
        // A re-export leads to the file that defines the item (a few hops at most).
        for _ in 0..8 {
            let module = (1..=path.len()).rev().map(|n| &path[..n]).find(|p| is_module(p))?;
            match path.get(module.len()).and_then(|name| reexports.get(&(module, name.as_str()))) {
                Some(target) => path = [target.as_slice(), &path[module.len() + 1..]].concat(),
                None => return files.get(module).copied(),
            }
        }
        None
    };
    let mut uses = Graph::new();
    for source in &sources {
        for path in source.paths.iter().filter(|p| !p.reexport) {
            let Some(target) = source.absolute(&path.segments, is_module).and_then(|a| file_of(&a)) else { continue };
            let (from, to) = (&source.module_path, &target.module_path);
            if from[0] == to[0] && !from.starts_with(to) && !to.starts_with(from) {
                let at = format!("src/{}:{}", source.rel, path.line);
                uses.entry(source.rel.clone()).or_default().entry(target.rel.clone()).or_insert(at);
            }
        }
    }
    let found = circles(&uses).into_iter().map(|circle| Finding { text: describe(&circle, &uses) }).collect();
    report("files of a module form no import circle", found);
}

/// One rule's violations, named by file, line and rule.
fn report(rule: &str, found: Vec<Finding>) {
    let lines: Vec<&str> = found.iter().map(|f| f.text.as_str()).collect();
    assert!(lines.is_empty(), "{rule}:\n{}", lines.join("\n"));
}

struct Finding {
    text: String,
}

/// The top-level module a file belongs to.
fn module(source: &Source) -> &str {
    &source.module_path[0]
}

fn floor(source: &Source) -> Option<u8> {
    floor_of(module(source))
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

/// Who names whom: from each node, each node it names, and where first.
type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// The circles of a graph, each once.
fn circles(uses: &Graph) -> Vec<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut found = Vec::new();
    for start in uses.keys() {
        if let Some(circle) = circle_from(start, uses) {
            let mut members = circle.clone();
            members.sort();
            if seen.insert(members) {
                found.push(circle);
            }
        }
    }
    found
}

fn describe(circle: &[String], uses: &Graph) -> String {
    let steps: Vec<String> = circle
        .iter()
        .zip(circle.iter().cycle().skip(1))
        .map(|(from, to)| format!("{from} -> {to} ({})", uses[from][to]))
        .collect();
    format!("circle: {}", steps.join(", "))
}

/// A circle through `start`, if there is one.
fn circle_from(start: &str, uses: &Graph) -> Option<Vec<String>> {
    fn walk(node: &str, start: &str, uses: &Graph, trail: &mut Vec<String>, visited: &mut BTreeSet<String>) -> bool {
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
