//! Files opened the way a root process should open them in a directory that someone else
//! can write to (CERT_PATH belongs to the `-u` user): no symbolic link is followed, only
//! regular files are read, a FIFO cannot block the open, no more than a cap is read, and the
//! owner must be one we trust. Writes go to an unpredictable, exclusively created temporary
//! name, get their owner and mode on the open file, and are renamed over the target.
//!
//! Every path is resolved relative to a directory opened once (`Dir`), so a directory that is
//! swapped for a link after startup is not followed either.

use std::ffi::CString;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Who may own a file we read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owners {
    /// Anyone: the process does not run as root, so it can only read what it may anyway.
    Any,
    /// Root or one of these users (the `-u` user, our own uid).
    Trusted(Vec<libc::uid_t>),
}

impl Owners {
    /// The owners a process with effective uid `euid` trusts when it will switch to `user`.
    pub fn for_process(euid: libc::uid_t, user: Option<libc::uid_t>) -> Owners {
        if euid != 0 {
            return Owners::Any;
        }
        Owners::Trusted(user.into_iter().collect())
    }

    fn allows(&self, uid: libc::uid_t) -> bool {
        match self {
            Owners::Any => true,
            Owners::Trusted(list) => uid == 0 || list.contains(&uid),
        }
    }
}

/// Why a file was not read.
#[derive(Debug)]
pub enum FileError {
    /// A symbolic link, a FIFO, a device, a directory…: named by kind.
    NotRegular(&'static str),
    TooLarge {
        cap: u64,
    },
    /// Owned by a user we do not trust.
    Owner(libc::uid_t),
    Io(io::Error),
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::NotRegular(kind) => write!(f, "not a regular file ({kind})"),
            FileError::TooLarge { cap } => write!(f, "larger than {cap} bytes"),
            FileError::Owner(uid) => write!(f, "owned by uid {uid}, not root or the -u user"),
            FileError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for FileError {
    fn from(e: io::Error) -> Self {
        if e.raw_os_error() == Some(libc::ELOOP) {
            FileError::NotRegular("symbolic link")
        } else {
            FileError::Io(e)
        }
    }
}

/// A file's bytes and what `fstat` said of it.
pub struct Contents {
    pub bytes: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
    pub uid: libc::uid_t,
}

/// A directory entry that is a regular file (`entries`).
pub struct Entry {
    pub name: String,
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn c_name(name: &str) -> io::Result<CString> {
    // One path component only: a name with a slash could walk out of the directory.
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad file name {name:?}"),
        ));
    }
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))
}

fn kind(mode: libc::mode_t) -> Option<&'static str> {
    match mode & libc::S_IFMT {
        libc::S_IFREG => None,
        libc::S_IFDIR => Some("directory"),
        libc::S_IFIFO => Some("FIFO"),
        libc::S_IFCHR => Some("character device"),
        libc::S_IFBLK => Some("block device"),
        libc::S_IFSOCK => Some("socket"),
        libc::S_IFLNK => Some("symbolic link"),
        _ => Some("unknown type"),
    }
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: an all-zero stat is a valid out-parameter; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable stat and `fd` an open descriptor.
    check(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

/// Reads an open file after checking what it is: regular, trusted owner, within `cap`.
fn read_checked(fd: OwnedFd, cap: u64, owners: &Owners) -> Result<Contents, FileError> {
    let st = fstat(fd.as_raw_fd())?;
    if let Some(k) = kind(st.st_mode) {
        return Err(FileError::NotRegular(k));
    }
    if !owners.allows(st.st_uid) {
        return Err(FileError::Owner(st.st_uid));
    }
    if st.st_size as u64 > cap {
        return Err(FileError::TooLarge { cap });
    }
    let mut bytes = Vec::with_capacity(st.st_size as usize);
    // The file may grow after the fstat: read one byte past the cap to notice.
    std::fs::File::from(fd)
        .take(cap.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(FileError::TooLarge { cap });
    }
    Ok(Contents {
        bytes,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
    })
}

/// Reads a file opened by `Dir::open_for_later` from its start, with the same checks as
/// `Dir::read`; the descriptor stays open for the next reader.
pub fn read_open(fd: &OwnedFd, cap: u64, owners: &Owners) -> Result<Contents, FileError> {
    let copy = fd.try_clone()?;
    // SAFETY: lseek on a descriptor we own; the copy shares the offset, which only the
    // one reader of the moment moves.
    check(unsafe { libc::lseek(copy.as_raw_fd(), 0, libc::SEEK_SET) } as libc::c_int)?;
    read_checked(copy, cap, owners)
}

const READ_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;

/// Reads a file named by the administrator (`--psl`, `--ticket-keys`) with the same checks:
/// the last path component is not followed if it is a link. `Ok(None)`: no such file.
pub fn read_path(path: &Path, cap: u64, owners: &Owners) -> Result<Option<Contents>, FileError> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: a NUL-terminated path; the descriptor is owned right after.
    let fd = unsafe { libc::open(c.as_ptr(), READ_FLAGS) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::NotFound => Ok(None),
            _ => Err(e.into()),
        };
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    read_checked(unsafe { OwnedFd::from_raw_fd(fd) }, cap, owners).map(Some)
}

/// A directory opened once; files in it are reached only through its descriptor.
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    pub fn open(path: &Path) -> io::Result<Dir> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
        // SAFETY: a NUL-terminated path; the descriptor is owned right after.
        let fd = check(unsafe { libc::open(c.as_ptr(), flags) })?;
        Ok(Dir {
            // SAFETY: `fd` was just opened and is owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's descriptor, for a forked process to close its copy.
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Owner and permission bits of the directory itself.
    pub fn owner_and_mode(&self) -> io::Result<(libc::uid_t, u32)> {
        let st = fstat(self.fd.as_raw_fd())?;
        Ok((st.st_uid, st.st_mode & 0o7777))
    }

    /// Gives the directory to `uid:gid` (on the open directory, never by path).
    pub fn chown(&self, uid: libc::uid_t, gid: libc::gid_t) -> io::Result<()> {
        // SAFETY: fchown on a descriptor we own.
        check(unsafe { libc::fchown(self.fd.as_raw_fd(), uid, gid) }).map(|_| ())
    }

    /// Sets the directory's own permission bits (on the open directory).
    pub fn chmod(&self, mode: u32) -> io::Result<()> {
        // SAFETY: fchmod on a descriptor we own.
        check(unsafe { libc::fchmod(self.fd.as_raw_fd(), mode as libc::mode_t) }).map(|_| ())
    }

    fn open_at(&self, name: &str, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
        let c = c_name(name)?;
        // SAFETY: a NUL-terminated single component relative to our directory descriptor.
        let fd = check(unsafe {
            libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags, mode as libc::c_uint)
        })?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Opens `name` for reading later, perhaps by a process that could not open it (the
    /// monitor keeps `ca.key` open for the signers it starts after dropping root);
    /// `Ok(None)` when there is no such file. Read it with `read_open`.
    pub fn open_for_later(&self, name: &str) -> io::Result<Option<OwnedFd>> {
        match self.open_at(name, READ_FLAGS, 0) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads `name`; `Ok(None)` when there is no such file.
    pub fn read(
        &self,
        name: &str,
        cap: u64,
        owners: &Owners,
    ) -> Result<Option<Contents>, FileError> {
        match self.open_at(name, READ_FLAGS, 0) {
            Ok(fd) => read_checked(fd, cap, owners).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces `name` with `bytes`: written to an exclusive temporary file with exactly
    /// `mode`, given to `owner` if set, synced when `durable`, then renamed over `name`. On
    /// any failure the temporary file is removed and `name` is untouched.
    pub fn write_atomic(
        &self,
        name: &str,
        bytes: &[u8],
        mode: u32,
        owner: Option<(libc::uid_t, libc::gid_t)>,
        durable: bool,
    ) -> io::Result<()> {
        c_name(name)?;
        let (tmp, fd) = self.create_temp(name, mode)?;
        let written =
            finish(fd, bytes, mode, owner, durable).and_then(|()| self.rename(&tmp, name));
        if written.is_err() {
            let _ = self.remove(&tmp);
        }
        written
    }

    fn create_temp(&self, name: &str, mode: u32) -> io::Result<(String, OwnedFd)> {
        let flags =
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let mut attempts = 0;
        loop {
            let tmp = format!(".{name}.{:016x}{TMP_SUFFIX}", random_u64());
            match self.open_at(&tmp, flags, mode as libc::mode_t) {
                Ok(fd) => return Ok((tmp, fd)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 8 => attempts += 1,
                Err(e) => return Err(e),
            }
        }
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (a, b) = (c_name(from)?, c_name(to)?);
        let dir = self.fd.as_raw_fd();
        // SAFETY: two NUL-terminated names relative to our directory descriptor.
        check(unsafe { libc::renameat(dir, a.as_ptr(), dir, b.as_ptr()) }).map(|_| ())
    }

    /// Removes `name` (a link itself, never what it points to).
    pub fn remove(&self, name: &str) -> io::Result<()> {
        let c = c_name(name)?;
        // SAFETY: a NUL-terminated name relative to our directory descriptor.
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) }).map(|_| ())
    }

    /// Makes new and renamed names durable (after creating a CA).
    pub fn sync(&self) -> io::Result<()> {
        // SAFETY: fsync on a descriptor we own.
        check(unsafe { libc::fsync(self.fd.as_raw_fd()) }).map(|_| ())
    }

    /// Sets the permission bits of `name` if it is a regular file we may change.
    pub fn set_mode(&self, name: &str, mode: u32) -> io::Result<()> {
        let fd = self.open_at(name, READ_FLAGS, 0)?;
        if kind(fstat(fd.as_raw_fd())?.st_mode).is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        // SAFETY: fchmod on a descriptor we own.
        check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) }).map(|_| ())
    }

    /// The regular files in the directory (links and everything else are left out).
    pub fn entries(&self) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(proc_path(self.fd.as_raw_fd()).unwrap_or(self.path.clone()))?
        {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if let Ok(st) = self.lstat(&name) {
                if kind(st.st_mode).is_none() {
                    // time_t is 32 bits on some router targets.
                    #[allow(clippy::unnecessary_cast)]
                    let mtime = st.st_mtime as i64;
                    out.push(Entry {
                        name,
                        size: st.st_size as u64,
                        mtime,
                    });
                }
            }
        }
        Ok(out)
    }

    fn lstat(&self, name: &str) -> io::Result<libc::stat> {
        let c = c_name(name)?;
        // SAFETY: an all-zero stat is a valid out-parameter; fstatat fills it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a NUL-terminated name relative to our descriptor, a writable stat.
        check(unsafe {
            libc::fstatat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })?;
        Ok(st)
    }
}

/// Temporary files end with this; a start-up sweep removes those a killed process left.
pub const TMP_SUFFIX: &str = ".tmp";

/// The directory as `/proc/self/fd/N`, so that listing it follows our descriptor rather than
/// the path (None without /proc).
fn proc_path(fd: RawFd) -> Option<PathBuf> {
    let p = PathBuf::from(format!("/proc/self/fd/{fd}"));
    p.exists().then_some(p)
}

fn finish(
    fd: OwnedFd,
    bytes: &[u8],
    mode: u32,
    owner: Option<(libc::uid_t, libc::gid_t)>,
    durable: bool,
) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    if let Some((uid, gid)) = owner {
        // SAFETY: fchown on the temporary file we just created.
        check(unsafe { libc::fchown(raw, uid, gid) })?;
    }
    // The umask must not widen or narrow the mode we promise.
    // SAFETY: fchmod on the temporary file we just created.
    check(unsafe { libc::fchmod(raw, mode as libc::mode_t) })?;
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes)?;
    if durable {
        file.sync_all()?;
    }
    Ok(())
}

/// 64 unpredictable bits for temporary names: getrandom(2), else /dev/urandom (old router
/// kernels have no getrandom), else a mix of time, pid and a counter, which is still unique.
pub fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: getrandom writes at most `buf.len()` bytes into `buf`.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), libc::GRND_NONBLOCK) };
    if n == buf.len() as isize {
        return u64::from_ne_bytes(buf);
    }
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        if f.read_exact(&mut buf).is_ok() {
            return u64::from_ne_bytes(buf);
        }
    }
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    nanos ^ (u64::from(std::process::id()) << 32) ^ u64::from(seq).rotate_left(17)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    struct Tmp(PathBuf);
    impl Tmp {
        fn new(tag: &str) -> Tmp {
            let p = std::env::temp_dir().join(format!(
                "pxs-files-{tag}-{}-{:x}",
                std::process::id(),
                random_u64()
            ));
            std::fs::create_dir_all(&p).unwrap();
            Tmp(p)
        }
    }
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn reads_regular_files_only() {
        let t = Tmp::new("read");
        let dir = Dir::open(&t.0).unwrap();
        std::fs::write(t.0.join("ok"), b"hello").unwrap();
        let c = dir.read("ok", 5, &Owners::Any).unwrap().unwrap();
        assert_eq!(c.bytes, b"hello");
        assert!(matches!(
            dir.read("ok", 4, &Owners::Any),
            Err(FileError::TooLarge { cap: 4 })
        ));
        assert!(dir.read("missing", 5, &Owners::Any).unwrap().is_none());
        symlink(t.0.join("ok"), t.0.join("link")).unwrap();
        assert!(matches!(
            dir.read("link", 99, &Owners::Any),
            Err(FileError::NotRegular("symbolic link"))
        ));
        symlink("/dev/zero", t.0.join("zero")).unwrap();
        assert!(matches!(
            dir.read("zero", 99, &Owners::Any),
            Err(FileError::NotRegular(_))
        ));
        let fifo = CString::new(t.0.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        // Opening a FIFO with no writer must not block.
        assert!(matches!(
            dir.read("fifo", 99, &Owners::Any),
            Err(FileError::NotRegular("FIFO"))
        ));
        std::fs::create_dir(t.0.join("sub")).unwrap();
        assert!(matches!(
            dir.read("sub", 99, &Owners::Any),
            Err(FileError::NotRegular("directory"))
        ));
        for bad in ["", ".", "..", "a/b"] {
            assert!(dir.read(bad, 9, &Owners::Any).is_err(), "{bad:?}");
        }
        let names: Vec<String> = dir.entries().unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["ok"]);
        // The same checks by path.
        assert!(matches!(
            read_path(&t.0.join("link"), 99, &Owners::Any),
            Err(FileError::NotRegular(_))
        ));
        assert_eq!(
            read_path(&t.0.join("ok"), 9, &Owners::Any)
                .unwrap()
                .unwrap()
                .bytes,
            b"hello"
        );
        assert!(read_path(&t.0.join("none"), 9, &Owners::Any)
            .unwrap()
            .is_none());
    }

    #[test]
    fn owners() {
        let t = Tmp::new("own");
        let dir = Dir::open(&t.0).unwrap();
        std::fs::write(t.0.join("f"), b"x").unwrap();
        let me = crate::sys::process::euid();
        let trusted_me = Owners::Trusted(vec![me]);
        assert!(dir.read("f", 9, &trusted_me).unwrap().is_some());
        if me != 0 {
            assert!(
                matches!(dir.read("f", 9, &Owners::Trusted(vec![])), Err(FileError::Owner(u)) if u == me)
            );
        }
        assert_eq!(Owners::for_process(1000, Some(5)), Owners::Any);
        assert_eq!(Owners::for_process(0, Some(5)), Owners::Trusted(vec![5]));
        assert!(Owners::Trusted(vec![]).allows(0));
    }

    #[test]
    fn writes_atomically_with_mode_and_no_link_followed() {
        let t = Tmp::new("write");
        let dir = Dir::open(&t.0).unwrap();
        dir.write_atomic("f", b"one", 0o644, None, true).unwrap();
        dir.write_atomic("f", b"two", 0o600, None, false).unwrap();
        assert_eq!(std::fs::read(t.0.join("f")).unwrap(), b"two");
        let mode = std::fs::metadata(t.0.join("f"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        // A link in place of the target is replaced, not written through.
        let victim = t.0.join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        symlink(&victim, t.0.join("g")).unwrap();
        dir.write_atomic("g", b"new", 0o600, None, false).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(std::fs::read(t.0.join("g")).unwrap(), b"new");
        let names: Vec<String> = std::fs::read_dir(&t.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(TMP_SUFFIX))
            .collect();
        assert!(names.is_empty(), "{names:?}");
        dir.set_mode("f", 0o640).unwrap();
        assert_eq!(
            std::fs::metadata(t.0.join("f"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o640
        );
        dir.remove("f").unwrap();
        assert!(!t.0.join("f").exists());
        assert!(dir
            .write_atomic("../escape", b"x", 0o600, None, false)
            .is_err());
    }

    #[test]
    fn random_names_differ() {
        assert_ne!(random_u64(), random_u64());
    }
}
