//! Users, dropping privileges, testing access as another user, and the open-file limit.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// The account the process switches to after binding its ports.
pub struct User {
    pub name: String,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
}

/// Looks the user up: `/etc/passwd` first (all a router has, and safe in a static binary,
/// where glibc's NSS would load the host's shared modules), then, in dynamic builds, the
/// system's passwd database (LDAP and the like). `Ok(None)` when there is no such user.
pub fn lookup_user(name: &str) -> io::Result<Option<User>> {
    if let Ok(text) = std::fs::read_to_string("/etc/passwd") {
        if let Some(user) = passwd_entry(&text, name) {
            return Ok(Some(user));
        }
    }
    #[cfg(not(target_feature = "crt-static"))]
    {
        getpwnam(name)
    }
    #[cfg(target_feature = "crt-static")]
    {
        Ok(None)
    }
}

/// The `name:passwd:uid:gid:...` line for `name`.
fn passwd_entry(text: &str, name: &str) -> Option<User> {
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        if f.next()? != name {
            return None;
        }
        let _password = f.next()?;
        let uid = f.next()?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        Some(User {
            name: name.to_string(),
            uid,
            gid,
        })
    })
}

#[cfg(not(target_feature = "crt-static"))]
fn getpwnam(name: &str) -> io::Result<Option<User>> {
    let cname = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "user name contains NUL"))?;
    // SAFETY: zeroed passwd is a valid out-parameter for getpwnam_r.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: all pointers are valid for the call; getpwnam_r writes only into `pwd`/`buf`.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 && rc != libc::ENOENT && rc != libc::ESRCH {
        return Err(io::Error::from_raw_os_error(rc));
    }
    if result.is_null() {
        return Ok(None);
    }
    Ok(Some(User {
        name: name.to_string(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    }))
}

pub fn euid() -> libc::uid_t {
    // SAFETY: geteuid never fails.
    unsafe { libc::geteuid() }
}

pub fn is_root() -> bool {
    euid() == 0
}

/// Switches to `user` completely: supplementary groups, gid, then uid (the original only
/// did setuid and kept group 0, DEFECTS.md #13). Any failure is an error; the caller exits.
pub fn drop_privileges(user: &User) -> io::Result<()> {
    let cname = CString::new(user.name.as_str())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "user name contains NUL"))?;
    set_groups(&cname, user.gid)?;
    // SAFETY: plain syscalls with valid arguments.
    unsafe {
        check(libc::setgid(user.gid))?;
        check(libc::setuid(user.uid))?;
        // Regaining root must be impossible now.
        if user.uid != 0 && libc::setuid(0) == 0 {
            return Err(io::Error::other(
                "setuid(0) still succeeds after dropping privileges",
            ));
        }
    }
    Ok(())
}

/// Whether `user` (or, with `None`, this process) may access `path` with `mode`
/// (`libc::W_OK | libc::X_OK` and the like). For another user the test runs in a child that
/// switches to that user, so groups, ACLs and read-only mounts count exactly as they will
/// after the drop. Must run while the process is single-threaded.
pub fn access_as(user: Option<&User>, path: &Path, mode: libc::c_int) -> io::Result<()> {
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let Some(user) = user.filter(|u| u.uid != 0 && is_root()) else {
        // SAFETY: a NUL-terminated path that outlives the call.
        let rc = unsafe { libc::faccessat(libc::AT_FDCWD, cpath.as_ptr(), mode, libc::AT_EACCESS) };
        return check(rc).map(|_| ());
    };
    // SAFETY: single-threaded (the caller's contract); the child only switches user, tests
    // and leaves with _exit, its status carrying the errno.
    let pid = check(unsafe { libc::fork() })?;
    if pid == 0 {
        let code = match drop_privileges(user) {
            // SAFETY: as above.
            Ok(()) => match unsafe { libc::access(cpath.as_ptr(), mode) } {
                0 => 0,
                _ => io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(255)
                    .min(254),
            },
            Err(_) => 255,
        };
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: `status` is a valid out-parameter; `pid` is our child.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    match (libc::WIFEXITED(status), libc::WEXITSTATUS(status)) {
        (true, 0) => Ok(()),
        (true, 255) | (false, _) => Err(io::Error::other(format!(
            "cannot switch to user \"{}\" to test access",
            user.name
        ))),
        (true, errno) => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Supplementary groups: the user's own through NSS in dynamic builds; in a static binary
/// (where NSS modules cannot load) just the primary group.
#[cfg(not(target_feature = "crt-static"))]
fn set_groups(name: &CString, gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: `name` is a NUL-terminated string that outlives the call.
    check(unsafe { libc::initgroups(name.as_ptr(), gid) }).map(|_| ())
}

#[cfg(target_feature = "crt-static")]
fn set_groups(_name: &CString, gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: a one-element group list read from a live local.
    check(unsafe { libc::setgroups(1, &gid) }).map(|_| ())
}

/// Raises the soft open-file limit to `want` (capped by the hard limit, which root may
/// raise too). Returns the soft limit in force afterwards.
pub fn raise_nofile(want: u64) -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointer to an rlimit.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    if wide(lim.rlim_cur) >= want {
        return Ok(wide(lim.rlim_cur));
    }
    let want_lim = libc::rlim_t::try_from(want).unwrap_or(libc::rlim_t::MAX);
    let mut new = libc::rlimit {
        rlim_cur: want_lim,
        rlim_max: lim.rlim_max,
    };
    if wide(lim.rlim_max) < want {
        new.rlim_max = want_lim;
        // SAFETY: valid pointer; only root may raise the hard limit, fall back below.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            return Ok(want);
        }
        new.rlim_cur = lim.rlim_max;
        new.rlim_max = lim.rlim_max;
    }
    // SAFETY: valid pointer.
    check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) })?;
    Ok(wide(new.rlim_cur))
}

/// `rlim_t` is 32 bits on 32-bit targets.
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
fn wide(v: libc::rlim_t) -> u64 {
    v as u64
}

/// glibc creates a malloc arena per thread; one arena keeps a router's RSS small.
pub fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Gives freed heap pages back to the kernel. glibc keeps them after a burst of connections,
/// which on a router would pin the peak size for good.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines_are_parsed_exactly() {
        let text = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\nbad:x:zz:1::/:\n";
        let u = passwd_entry(text, "nobody").unwrap();
        assert_eq!((u.uid, u.gid), (65534, 65534));
        assert!(passwd_entry(text, "nob").is_none());
        assert!(passwd_entry(text, "bad").is_none());
        assert!(passwd_entry(text, "").is_none());
    }
}
