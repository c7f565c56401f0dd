//! `CERT_PATH/prefetch` (COMPATIBILITY.md §7.7): the names of the cached certificates, most reused
//! first, `<name>\t<count>\n`; read at startup to warm the cache. Reading is bounded and
//! forgiving (the file may be hand-edited or damaged); the caller validates the names.

use crate::sys::files::{Dir, FileError, Owners};
use std::collections::HashSet;
use std::io::{self, BufRead};

pub const FILE_NAME: &str = "prefetch";
pub const MAX_LINES: usize = 100_000;
pub const MAX_LINE: usize = 1024;
/// Largest file read: far more than `-c` names need, small enough for a router's memory.
pub const MAX_BYTES: u64 = 8 << 20;

/// The names in CERT_PATH's prefetch file; `Ok(None)` when there is none.
pub fn read(dir: &Dir, owners: &Owners) -> Result<Option<Vec<String>>, FileError> {
    Ok(dir
        .read(FILE_NAME, MAX_BYTES, owners)?
        .map(|c| parse(&c.bytes)))
}

/// The names in a prefetch file's bytes, exactly as [`read`] would return them.
pub fn parse(text: &[u8]) -> Vec<String> {
    // A slice never fails to read.
    parse_from(text).unwrap_or_default()
}

fn parse_from<R: BufRead>(mut reader: R) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut seen = HashSet::new();
    let mut line = Vec::with_capacity(MAX_LINE);
    for _ in 0..MAX_LINES {
        let fits = match read_line(&mut reader, &mut line)? {
            Some(fits) => fits,
            None => break,
        };
        if !fits {
            continue;
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            continue;
        };
        // Any white space ends the name, \v and Unicode spaces too, so no name holds any.
        let Some(name) = text.split_whitespace().next() else {
            continue;
        };
        if name.starts_with('#') {
            continue;
        }
        if seen.insert(name.to_string()) {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// Reads one line (without its `\n`) into `line`, never keeping more than MAX_LINE bytes.
/// None at end of file; Some(false) when the line was too long and has been skipped.
fn read_line<R: BufRead>(reader: &mut R, line: &mut Vec<u8>) -> io::Result<Option<bool>> {
    line.clear();
    let mut any = false;
    let mut fits = true;
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(if any { Some(fits) } else { None });
        }
        any = true;
        let (chunk, used, done) = match memchr::memchr(b'\n', buf) {
            Some(end) => (&buf[..end], end + 1, true),
            None => (buf, buf.len(), false),
        };
        if fits && line.len() + chunk.len() <= MAX_LINE {
            line.extend_from_slice(chunk);
        } else {
            fits = false;
            line.clear();
        }
        reader.consume(used);
        if done {
            return Ok(Some(fits));
        }
    }
}

/// Rewrites the file atomically; names that would break the line format are left out.
pub fn write(dir: &Dir, entries: &[(&str, u64)]) -> io::Result<()> {
    let mut text = String::new();
    for (name, count) in entries {
        if name.is_empty()
            || name.starts_with('#')
            || name.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            continue;
        }
        text.push_str(name);
        text.push('\t');
        text.push_str(&count.to_string());
        text.push('\n');
    }
    dir.write_atomic(FILE_NAME, text.as_bytes(), 0o644, None, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::store::tests::TempDir;
    use std::fs;
    use std::io::{BufReader, Read};
    use std::os::unix::fs::PermissionsExt;

    fn p(bytes: &[u8]) -> Vec<String> {
        parse(bytes)
    }

    /// Hands out the input a few bytes at a time, to exercise lines split across reads.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(self.1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn original_format_and_variants() {
        assert_eq!(
            p(b"_.example.com\t51\nshop.co.uk\t3\n127.0.0.1\t0\n"),
            ["_.example.com", "shop.co.uk", "127.0.0.1"]
        );
        assert_eq!(
            p(b"  a.example  7 extra\r\n\n\t\n# comment\n#x.example\t1\nb.example"),
            ["a.example", "b.example"]
        );
        assert_eq!(p(b""), Vec::<String>::new());
        assert_eq!(p(b"\n\n\n"), Vec::<String>::new());
    }

    #[test]
    fn every_white_space_separates() {
        // Found by fuzzing: \v is not ASCII white space in Rust, and a name with it was kept.
        assert_eq!(p(b".R`\x0b=\0\t"), [".R`"]);
        assert_eq!(
            p(b"a\x0c1\nb\xc2\xa0c\n\x0b\x0bd\xe2\x80\xa8"),
            ["a", "b", "d"]
        );
    }

    #[test]
    fn duplicates_keep_first_position() {
        assert_eq!(p(b"b\t1\na\t2\nb\t3\nc\na\n"), ["b", "a", "c"]);
    }

    #[test]
    fn long_and_invalid_lines_are_skipped() {
        let mut input = Vec::new();
        input.extend(b"first\n");
        input.extend(vec![b'x'; MAX_LINE + 1]);
        input.extend(b"\n");
        input.extend(b"bad\xff\xfe name\n");
        let exact = "y".repeat(MAX_LINE);
        input.extend(exact.as_bytes());
        input.extend(b"\nlast\n");
        let expected = vec!["first".to_string(), exact.clone(), "last".to_string()];
        assert_eq!(p(&input), expected);
        for step in [1, 2, 7, 1000] {
            let names = parse_from(BufReader::with_capacity(16, Trickle(&input, step))).unwrap();
            assert_eq!(names, expected, "step {step}");
        }
        // A long final line without newline is skipped too.
        let mut input = b"a\n".to_vec();
        input.extend(vec![b'z'; 5000]);
        assert_eq!(p(&input), ["a"]);
    }

    #[test]
    fn line_limit() {
        let mut input = String::new();
        for i in 0..MAX_LINES + 10 {
            input.push_str(&format!("n{i}\n"));
        }
        let names = p(input.as_bytes());
        assert_eq!(names.len(), MAX_LINES);
        assert_eq!(names.last().unwrap(), &format!("n{}", MAX_LINES - 1));
        // Skipped lines count towards the limit as well.
        let mut input = "\n".repeat(MAX_LINES);
        input.push_str("late\n");
        assert!(p(input.as_bytes()).is_empty());
    }

    #[test]
    fn write_then_read() {
        let tmp = TempDir::new("prefetch");
        let path = tmp.0.join("prefetch");
        let dir = Dir::open(&tmp.0).unwrap();
        assert!(read(&dir, &Owners::Any).unwrap().is_none());
        write(
            &dir,
            &[
                ("_.example.com", 51),
                ("shop.co.uk", 3),
                ("bad name", 9),
                ("tab\tname", 1),
                ("new\nline", 1),
                ("", 1),
                ("#comment", 1),
                ("127.0.0.1", 0),
            ],
        )
        .unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "_.example.com\t51\nshop.co.uk\t3\n127.0.0.1\t0\n"
        );
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(
            read(&dir, &Owners::Any).unwrap().unwrap(),
            ["_.example.com", "shop.co.uk", "127.0.0.1"]
        );
        write(&dir, &[]).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"");
        // A link or a FIFO in its place is refused, never followed or waited on.
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        assert!(read(&dir, &Owners::Any).is_err());
    }
}
