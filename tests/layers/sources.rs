//! Reading the library's sources for `tests/layers.rs`: each product file
//! (test code left out) down to the paths it names, with line numbers.
//! A small tokenizer is enough: comments and literals are dropped, `use`
//! trees are expanded, and everything else that looks like `a::b::c` (or a
//! lone name) is a path.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// One product source file, read down to the paths it names.
pub struct Source {
    /// Relative to `src/`, e.g. `call/phone/across_calls.rs`.
    pub rel: String,
    /// Its module path, e.g. `call::phone::across_calls`.
    pub module_path: Vec<String>,
    pub paths: Vec<PathUse>,
}

impl Source {
    /// The top-level module a path names, when it leaves through the crate root.
    pub fn crate_module(&self, segments: &[String]) -> Option<String> {
        let absolute = self.absolute(segments, |_| false)?;
        (absolute.first() != self.module_path.first()).then(|| absolute.first().cloned()).flatten()
    }

    /// A path made absolute (from the crate root, without `crate`), for
    /// paths that start at `crate`, `super`, `self` or at a child module
    /// (`is_module` says which module paths exist). Others name no module
    /// of ours (std, other crates, local names): `None`.
    pub fn absolute(&self, segments: &[String], is_module: impl Fn(&[String]) -> bool) -> Option<Vec<String>> {
        let first = segments.first()?;
        let supers = segments.iter().take_while(|s| *s == "super").count();
        let (base, rest): (&[String], &[String]) = match first.as_str() {
            "crate" => (&[], &segments[1..]),
            "self" => (&self.module_path, &segments[1..]),
            "super" if supers <= self.module_path.len() => {
                (&self.module_path[..self.module_path.len() - supers], &segments[supers..])
            }
            _ if is_module(&[self.module_path.as_slice(), &segments[..1]].concat()) => (&self.module_path, segments),
            _ => return None,
        };
        (!rest.is_empty()).then(|| [base, rest].concat())
    }
}

/// A path in code (`a::b::c`, a lone name, or one leaf of a `use` tree) and its line.
pub struct PathUse {
    pub segments: Vec<String>,
    pub line: usize,
    /// A leaf of a `pub use`: the module's face, not a dependency of its own.
    pub reexport: bool,
}

/// Every product source of the library (not `bin/`, `main.rs`, `lib.rs`,
/// nor test files), each read down to the paths it names.
pub fn sources() -> Vec<Source> {
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
        sources.push(Source { rel, module_path, paths: paths_in(&tokens) });
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
            let leaf = Leaf { prefix: &[], reexport: is_public(tokens, i) };
            i = use_tree(tokens, i + 1, &leaf, &mut paths);
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
            paths.push(PathUse { segments, line, reexport: false });
            continue;
        }
        i += 1;
    }
    paths
}

/// Where a `use` tree is read: the path of the group around it, and
/// whether the declaration is public (a re-export).
struct Leaf<'a> {
    prefix: &'a [String],
    reexport: bool,
}

/// `pub use` or `pub(...) use`, looking back from the `use` at `i`.
fn is_public(tokens: &[(Token, usize)], i: usize) -> bool {
    let before = |back: usize| i.checked_sub(back).and_then(|j| tokens.get(j)).map(|t| &t.0);
    match before(1) {
        Some(Token::Ident(s)) => s == "pub",
        Some(Token::Punct(')')) => {
            let open = (1..=i).find(|back| before(*back) == Some(&Token::Punct('('))).unwrap_or(i);
            matches!(before(open + 1), Some(Token::Ident(s)) if s == "pub")
        }
        _ => false,
    }
}

/// Read one `use` tree from `i`, pushing each leaf under the group's
/// prefix; returns where reading stopped (after `;`, or at `,`/`}` of a group).
fn use_tree(tokens: &[(Token, usize)], mut i: usize, leaf: &Leaf, paths: &mut Vec<PathUse>) -> usize {
    let mut segments = leaf.prefix.to_vec();
    let mut line = tokens.get(i).map_or(0, |t| t.1);
    // `self` names the path so far: `use a::{self, b}` uses `a`.
    let mut names_itself = false;
    let mut grouped = false;
    while let Some((token, at)) = tokens.get(i) {
        match token {
            Token::Ident(s) if s == "as" => i += 2,
            Token::Ident(s) if s == "self" => (names_itself, i) = (true, i + 1),
            Token::Ident(s) => {
                if segments.len() == leaf.prefix.len() {
                    line = *at;
                }
                segments.push(s.clone());
                i += 1;
            }
            Token::Punct('{') => {
                i += 1;
                let group = Leaf { prefix: &segments, reexport: leaf.reexport };
                while !matches!(tokens.get(i), None | Some((Token::Punct('}'), _))) {
                    i = use_tree(tokens, i, &group, paths);
                    if matches!(tokens.get(i), Some((Token::Punct(','), _))) {
                        i += 1;
                    }
                }
                i += 1;
                grouped = true;
            }
            Token::Punct(';') => {
                i += 1;
                break;
            }
            Token::Punct(',' | '}') => break,
            Token::PathSep | Token::Punct(_) => i += 1,
        }
    }
    let named = segments.len() > leaf.prefix.len() || names_itself;
    if named && !grouped {
        paths.push(PathUse { segments, line, reexport: leaf.reexport });
    }
    i
}
