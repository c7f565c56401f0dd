//! The shape of `src/` that the module map in `src/lib.rs` promises: no import cycle between
//! files, no import from a lower layer up to a higher one, and no long function outside
//! tests, in `src/` and in `tools/`; and that every citation of the compatibility documents
//! in the sources, tests, tools and fuzz targets names a section or row that exists. Reads
//! files; builds nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest non-test function, in lines from `fn` to its closing brace.
const MAX_FN_LINES: usize = 80;

/// Layers, lowest first: a file may import from its own layer or a lower one. Within a
/// layer only the cycle rule applies.
/// An entry names a top-level module or a file below one (`stats::pages`); a module is in
/// the layer of its longest entry.
const LAYERS: &[&[&str]] = &[
    &["log", "sys", "stats::topk", "version", "x509"],
    &["stats", "config"],
    &["http", "tls", "stats::pages", "stats::metrics"],
    &["server"],
    &["app", "main", "lib"],
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/tls/hello.rs` → `tls::hello`; `src/tls/mod.rs` → `tls`; `src/lib.rs` → `lib`.
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The source with comments, string and char literals blanked (lengths kept), so braces
/// and `crate::` inside them are not seen.
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, s: &[u8]| {
        out.extend(s.iter().map(|&c| if c == b'\n' { b'\n' } else { b' ' }))
    };
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest.starts_with(b"/*") {
            let end = find(rest, b"*/").map_or(rest.len(), |e| e + 2);
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest.starts_with(b"r#\"") || rest.starts_with(b"r\"") || rest.starts_with(b"br\"")
        {
            let hashes = rest
                .iter()
                .skip_while(|&&c| c != b'#' && c != b'"')
                .take_while(|&&c| c == b'#')
                .count();
            let open = rest.iter().position(|&c| c == b'"').unwrap() + 1;
            let mut close = vec![b'"'];
            close.extend(std::iter::repeat_n(b'#', hashes));
            let end = find(&rest[open..], &close).map_or(rest.len(), |e| open + e + close.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest[0] == b'"' {
            let mut j = 1;
            while j < rest.len() && rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest[0] == b'\'' {
            // A char literal ('x', '\n', '\u{1F}') or a lifetime ('a): blank only literals.
            let lit = if rest.get(1) == Some(&b'\\') {
                rest.iter().skip(2).position(|&c| c == b'\'').map(|p| p + 3)
            } else if rest.get(2) == Some(&b'\'') {
                Some(3)
            } else {
                std::str::from_utf8(&rest[1..rest.len().min(6)])
                    .ok()
                    .and_then(|s| s.chars().next())
                    .filter(|c| !c.is_ascii())
                    .and_then(|c| {
                        (rest.get(1 + c.len_utf8()) == Some(&b'\'')).then_some(2 + c.len_utf8())
                    })
            };
            match lit {
                Some(n) => {
                    blank(&mut out, &rest[..n]);
                    i += n;
                }
                None => {
                    out.push(b'\'');
                    i += 1;
                }
            }
        } else {
            out.push(rest[0]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The source up to its `#[cfg(test)]` module (tests live at the end of each file).
fn non_test(stripped: &str) -> &str {
    [
        "#[cfg(test)]\nmod tests",
        "#[cfg(test)]\npub(crate) mod tests",
    ]
    .iter()
    .filter_map(|m| stripped.find(m))
    .min()
    .map_or(stripped, |at| &stripped[..at])
}

fn ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Every path that starts with `crate::`, `super::` or `self::`, with one level of `{..}`
/// groups expanded, as module paths relative to the crate root.
fn referenced_paths(module: &str, is_mod_rs: bool, code: &str) -> Vec<Vec<String>> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let here: Vec<String> = if module == "lib" || module == "main" {
        Vec::new()
    } else {
        module.split("::").map(str::to_string).collect()
    };
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(start) {
            let at = from + at;
            from = at + start.len();
            if at > 0 && (ident_char(b[at - 1]) || b[at - 1] == b':') {
                continue;
            }
            let base: Vec<String> = match start {
                "crate::" => Vec::new(),
                // `super` of tls/hello.rs is tls; of tls/mod.rs it is the crate.
                "super::" => {
                    let mut h = here.clone();
                    if is_mod_rs {
                        h.pop();
                    }
                    h.pop();
                    h
                }
                _ => {
                    let mut h = here.clone();
                    if !is_mod_rs {
                        h.pop();
                    }
                    h
                }
            };
            for tail in expand(&code[from..]) {
                let mut p = base.clone();
                p.extend(tail);
                out.push(p);
            }
        }
    }
    out
}

/// `a::b::{c, d::e}` → [[a,b,c], [a,b,d,e]]; `a::b(` → [[a,b]].
fn expand(s: &str) -> Vec<Vec<String>> {
    let mut segs = Vec::new();
    let mut rest = s;
    loop {
        let n = rest.bytes().take_while(|&c| ident_char(c)).count();
        if n == 0 {
            break;
        }
        segs.push(rest[..n].to_string());
        rest = &rest[n..];
        if let Some(r) = rest.strip_prefix("::") {
            rest = r;
        } else {
            return vec![segs];
        }
    }
    if let Some(group) = rest.strip_prefix('{') {
        let end = group.find('}').unwrap_or(group.len());
        return group[..end]
            .split(',')
            .map(|item| {
                let mut p = segs.clone();
                p.extend(expand(item.trim()).into_iter().next().unwrap_or_default());
                p
            })
            .collect();
    }
    vec![segs]
}

/// The file-level module a path lands in: its longest prefix that is a module of ours.
fn resolve(path: &[String], modules: &BTreeSet<String>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| modules.contains(m))
}

fn layer(module: &str) -> usize {
    let covers = |e: &str| module == e || module.starts_with(&format!("{e}::"));
    LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.iter().filter(|e| covers(e)).map(move |e| (e.len(), i)))
        .max()
        .map(|(_, i)| i)
        .unwrap_or_else(|| panic!("module {module} is in no layer of tests/structure.rs"))
}

struct Source {
    module: String,
    code: String,
}

fn sources() -> Vec<Source> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    files
        .iter()
        .map(|p| Source {
            module: module_of(p),
            code: strip(&std::fs::read_to_string(p).unwrap()),
        })
        .collect()
}

fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let srcs = sources();
    let modules: BTreeSet<String> = srcs.iter().map(|s| s.module.clone()).collect();
    let mut graph = BTreeMap::new();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    for (s, path) in srcs.iter().zip(&files) {
        let is_mod_rs = path
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs");
        let deps: BTreeSet<String> = referenced_paths(&s.module, is_mod_rs, non_test(&s.code))
            .iter()
            .filter_map(|p| resolve(p, &modules))
            // A parent module declaring or re-exporting its children is not an import.
            .filter(|d| *d != s.module && !d.starts_with(&format!("{}::", s.module)))
            .filter(|d| s.module != "lib" || d.contains("::"))
            .collect();
        graph.insert(s.module.clone(), deps);
    }
    graph
}

#[test]
fn no_import_cycle_between_files() {
    let graph = import_graph();
    assert!(graph.contains_key("server::conn") && graph.contains_key("tls::hello"));
    // Depth-first search; a back edge is a cycle.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
        cycles: &mut Vec<String>,
    ) {
        state.insert(m.to_string(), 1);
        stack.push(m.to_string());
        for d in graph.get(m).into_iter().flatten() {
            match state.get(d.as_str()).copied().unwrap_or(0) {
                0 => visit(d, graph, state, stack, cycles),
                1 => {
                    let from = stack.iter().position(|s| s == d).unwrap();
                    cycles.push(format!("{} -> {}", stack[from..].join(" -> "), d));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(m.to_string(), 2);
    }
    let mut state = BTreeMap::new();
    let mut cycles = Vec::new();
    for m in graph.keys() {
        if !state.contains_key(m.as_str()) {
            visit(m, &graph, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn no_import_from_a_higher_layer() {
    let mut bad = Vec::new();
    for (m, deps) in import_graph() {
        for d in deps {
            if layer(&d) > layer(&m) {
                bad.push(format!("{m} imports {d}"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports against the layers:\n{}",
        bad.join("\n")
    );
}

/// The Rust sources of `tools/` (each tool is a crate of its own), as `Source`s named by
/// their path; build output is skipped.
fn tool_sources() -> Vec<Source> {
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&tools).unwrap() {
        let src = entry.unwrap().path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    files.sort();
    files
        .iter()
        .map(|p| Source {
            module: p.strip_prefix(&tools).unwrap().display().to_string(),
            code: strip(&std::fs::read_to_string(p).unwrap()),
        })
        .collect()
}

#[test]
fn no_long_functions() {
    let mut long = Vec::new();
    let tools = tool_sources();
    assert!(tools.iter().any(|s| s.module == "bench/src/main.rs"));
    for s in sources().into_iter().chain(tools) {
        let code = non_test(&s.code);
        let lines: Vec<&str> = code.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            let t = t
                .strip_prefix("pub(crate) ")
                .or_else(|| t.strip_prefix("pub "))
                .unwrap_or(t);
            let t = t.strip_prefix("const ").unwrap_or(t);
            let t = t.strip_prefix("unsafe ").unwrap_or(t);
            if !t.starts_with("fn ") {
                continue;
            }
            // The body runs from the first `{` after the signature to its matching `}`;
            // a declaration ending in `;` (trait method) has none.
            let mut depth = 0i32;
            let mut opened = false;
            let mut end = i;
            'scan: for (j, l) in lines.iter().enumerate().skip(i) {
                for c in l.chars() {
                    match c {
                        ';' if !opened && depth == 0 => break 'scan,
                        '{' => {
                            depth += 1;
                            opened = true;
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                    if opened && depth == 0 {
                        end = j;
                        break 'scan;
                    }
                }
            }
            let n = end + 1 - i;
            if opened && n > MAX_FN_LINES {
                long.push(format!("{}:{} {} lines: {}", s.module, i + 1, n, t));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_checker_sees_what_it_checks() {
    let code = strip("fn a() { let s = \"crate::x {\"; let c = '{'; } // crate::y\nuse crate::tls::{ca, certs::Leaf};");
    assert!(!code.contains("crate::x") && !code.contains("crate::y"));
    assert_eq!(code.matches('{').count(), 2);
    let paths = referenced_paths("server::conn", false, &code);
    assert_eq!(paths, vec![vec!["tls", "ca"], vec!["tls", "certs", "Leaf"]]);
    let sup = referenced_paths("tls::hello", false, "use super::names;");
    assert_eq!(sup, vec![vec!["tls", "names"]]);
    let sup = referenced_paths("tls", true, "use super::stats;");
    assert_eq!(sup, vec![vec!["stats"]]);
}

/// 32-bit MIPS (the mipsel router build) has no 64-bit atomics; only `make -f Makefile.xc
/// mipsel` would notice one, so this does.
#[test]
fn no_64_bit_atomics() {
    let found: Vec<String> = sources()
        .iter()
        .filter(|s| s.code.contains("AtomicU64") || s.code.contains("AtomicI64"))
        .map(|s| s.module.clone())
        .collect();
    assert!(found.is_empty(), "64-bit atomics in {found:?}");
}

/// Where sources may cite the compatibility documents, and which files there are text.
const CITING: &[&str] = &["src", "tests", "tools", "fuzz", "build.rs"];
const TEXT_EXTENSIONS: &[&str] = &["rs", "md", "toml", "sh", "py", "html", "js", "conf", "cfg"];
/// The section sign, spelt as an escape so that this file cites nothing itself.
const SECTION: char = '\u{a7}';
const COMPAT: &str = "COMPATIBILITY.md";
const DEFECTS: &str = "DEFECTS.md";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Text files under `path` (or `path` itself), skipping build output and hidden folders.
fn text_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if TEXT_EXTENSIONS.contains(&ext) {
            out.push(path.to_path_buf());
        }
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for entry in entries {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy();
        if !(p.is_dir() && (name == "target" || name.starts_with('.'))) {
            text_files(&p, out);
        }
    }
}

/// What a citation may name: the numbered headings of COMPATIBILITY.md (`5.3` for
/// `### 5.3 …`) and the row numbers of DEFECTS.md's table.
struct Targets {
    sections: BTreeSet<String>,
    defects: BTreeSet<u32>,
}

/// The numbered headings; `problems` gets every heading without its anchor line
/// (`<a id="s5.3"></a>` just before it), since links and citations rely on the anchors.
fn numbered_headings(doc: &str, problems: &mut Vec<String>) -> BTreeSet<String> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut found = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(title) = line.strip_prefix("##") else {
            continue;
        };
        let token = title.trim_start_matches('#').split_whitespace().next();
        let number = token.unwrap_or("").trim_end_matches('.');
        if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
            continue;
        }
        let anchor = format!("<a id=\"s{number}\"></a>");
        if i == 0 || lines[i - 1] != anchor {
            problems.push(format!("{COMPAT}: no {anchor} before {line:?}"));
        }
        found.insert(number.to_string());
    }
    found
}

/// The row numbers of DEFECTS.md; `problems` gets rows without their `<a id="dN"></a>`.
fn defect_rows(doc: &str, problems: &mut Vec<String>) -> BTreeSet<u32> {
    let mut rows = BTreeSet::new();
    for line in doc.lines() {
        let Some(cell) = line.strip_prefix('|').and_then(|l| l.split('|').next()) else {
            continue;
        };
        let cell = cell.trim();
        let (anchor, number) = match cell.split_once("</a>") {
            Some((a, n)) => (Some(a), n),
            None => (None, cell),
        };
        let Ok(n) = number.parse::<u32>() else {
            continue;
        };
        if anchor != Some(&format!("<a id=\"d{n}\">")) {
            problems.push(format!("{DEFECTS}: row {n} has no <a id=\"d{n}\"></a>"));
        }
        rows.insert(n);
    }
    rows
}

/// The section number right after a section sign: `5.3` of `5.3, …` (a final dot is prose).
fn section_number(after: &str) -> &str {
    let end = after
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(after.len());
    after[..end].trim_end_matches('.')
}

/// Row numbers after `DEFECTS.md`: ` #5`, ` #15, #16`, ` #19 and #20`, ` #1/#2`.
fn defect_numbers(mut rest: &str) -> Vec<Option<u32>> {
    let mut numbers = Vec::new();
    loop {
        let Some(after) = rest.trim_start().strip_prefix('#') else {
            return numbers;
        };
        let after = after.strip_prefix('d').unwrap_or(after);
        let end = after
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after.len());
        numbers.push(after[..end].parse().ok());
        rest = &after[end..];
        let next = [", ", "/", " and ", " or "]
            .iter()
            .find_map(|sep| rest.strip_prefix(sep))
            .filter(|r| r.starts_with('#'));
        match next {
            Some(r) => rest = r,
            None => return numbers,
        }
    }
}

/// What is wrong with the citations on one line. A section sign belongs to the nearest
/// document named before it on the same line: `COMPATIBILITY.md` (the section must exist),
/// `RFC n` (not checked), or none (a citation that points nowhere). A defect is cited as
/// `#N` right after `DEFECTS.md` (`#15, #16`, `#19 and #20` too), and the row must exist.
fn bad_citations(line: &str, t: &Targets) -> Vec<String> {
    let mut docs: Vec<(usize, &str)> = Vec::new();
    for doc in [COMPAT, DEFECTS] {
        docs.extend(line.match_indices(doc).map(|(i, _)| (i, doc)));
    }
    let rfc = line
        .match_indices("RFC ")
        .filter(|(i, m)| line[i + m.len()..].starts_with(|c: char| c.is_ascii_digit()));
    docs.extend(rfc.map(|(i, _)| (i, "RFC")));
    docs.sort();
    let mut bad = Vec::new();
    for (i, _) in line.match_indices(SECTION) {
        let number = section_number(&line[i + SECTION.len_utf8()..]);
        match docs.iter().rev().find(|(at, _)| *at < i).map(|(_, d)| *d) {
            Some("RFC") => {}
            Some(COMPAT) if t.sections.contains(number) => {}
            Some(COMPAT) => bad.push(format!("{COMPAT} has no section {SECTION}{number:?}")),
            Some(_) => bad.push(format!(
                "{DEFECTS} rows are cited as #N, not with {SECTION}"
            )),
            None => bad.push(format!("{SECTION}{number} names no document")),
        }
    }
    for (i, _) in line.match_indices(DEFECTS) {
        for n in defect_numbers(&line[i + DEFECTS.len()..]) {
            if !n.is_some_and(|n| t.defects.contains(&n)) {
                bad.push(format!("{DEFECTS} has no row #{}", n.unwrap_or(0)));
            }
        }
    }
    bad
}

fn citation_targets(problems: &mut Vec<String>) -> Targets {
    let read =
        |name: &str| std::fs::read_to_string(repo().join("include-docs").join(name)).unwrap();
    let sections = numbered_headings(&read(COMPAT), problems);
    let defects = defect_rows(&read(DEFECTS), problems);
    Targets { sections, defects }
}

/// Every section sign in the sources, tests, tools, fuzz targets and build.rs names a
/// heading of include-docs/COMPATIBILITY.md (or an RFC), and every `#N` after `DEFECTS.md`
/// a row of include-docs/DEFECTS.md: a maintainer who clones the repository can follow them
/// all.
#[test]
fn every_citation_points_into_the_repository() {
    let mut problems = Vec::new();
    let t = citation_targets(&mut problems);
    assert!(
        t.sections.contains("5.3") && t.sections.contains("12"),
        "{:?}",
        t.sections
    );
    let last = t.defects.last().copied().unwrap_or(0);
    assert!(
        last >= 37 && t.defects.len() == last as usize,
        "rows {:?}",
        t.defects
    );
    let mut files = Vec::new();
    for tree in CITING {
        text_files(&repo().join(tree), &mut files);
    }
    let mut cited = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            cited += line.matches(SECTION).count() + line.matches(DEFECTS).count();
            for why in bad_citations(line, &t) {
                let rel = file.strip_prefix(repo()).unwrap().display();
                problems.push(format!("{rel}:{}: {why}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(
        cited > 40,
        "only {cited} citations found: is the scan broken?"
    );
    assert!(
        problems.is_empty(),
        "citations that point nowhere:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_citation_checker_sees_bad_citations() {
    // `$` stands for the section sign, `@C` and `@D` for the two documents.
    let cite = |s: &str| {
        s.replace('$', &SECTION.to_string())
            .replace("@C", COMPAT)
            .replace("@D", DEFECTS)
    };
    let t = Targets {
        sections: ["5", "5.3", "12"].iter().map(|s| s.to_string()).collect(),
        defects: (1..=3).collect(),
    };
    for good in [
        "(@C $5.3)",
        "@C $5.3, also $12.",
        "@D #2, #3",
        "(@C $5, with @D #1/#2 and #3 fixed)",
        "RFC 9112 $2, $3.2.2",
        "@D maps every defect to its test",
        "nothing cited here #99",
    ] {
        assert_eq!(
            bad_citations(&cite(good), &t),
            Vec::<String>::new(),
            "{good}"
        );
    }
    for bad in [
        "reference $5.3",
        "(the original's defect $12 #5)",
        "@C $5.4",
        "@C $12.7",
        "@C $",
        "@D #4",
        "@D #1, #9",
        "@D $3",
        "@D #x",
        "RFC 1 $1, @D #1 then $5",
    ] {
        assert!(!bad_citations(&cite(bad), &t).is_empty(), "{bad}");
    }
    let mut problems = Vec::new();
    let doc = "<a id=\"s1\"></a>\n## 1. A\n### 1.1 B\n<a id=\"s2\"></a>\n## 2. C";
    let found = numbered_headings(doc, &mut problems);
    assert_eq!(
        found,
        ["1", "1.1", "2"].iter().map(|s| s.to_string()).collect()
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    let rows = defect_rows(
        "| # | x |\n|---|\n| <a id=\"d1\"></a>1 | a |\n| 2 | b |",
        &mut problems,
    );
    assert_eq!(rows, [1, 2].into_iter().collect());
    assert_eq!(problems.len(), 2, "{problems:?}");
}
