//! What the file system says before SQLite is let near a file: its header,
//! its directory, who owns it, and whether it changed since it was opened.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::errors::{Result, SidecarError, SidecarErrorKind};

pub(super) const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Identity and last change of the database file, and whether a `-wal`
/// exists: what decides whether an immutable connection is still valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileStamp {
    pub(super) ino: u64,
    pub(super) len: u64,
    pub(super) mtime: SystemTime,
    pub(super) wal: bool,
}

impl FileStamp {
    pub(super) fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            ino: m.ino(),
            len: m.len(),
            mtime: m.modified().ok()?,
            wal: sidecar_file(&canonical(path), "-wal").exists(),
        })
    }
}

/// What the first 100 bytes of an existing file say.
pub(super) struct Header {
    /// 0-byte file: an empty database.
    pub(super) empty: bool,
    /// Read/write format versions 2/2: WAL mode.
    pub(super) wal: bool,
    /// `PRAGMA application_id` as the main file holds it (bytes 68..72).
    pub(super) application_id: u32,
}

/// Root writing into a state directory that belongs to the service user
/// would leave root-owned files (the sidecar, its lock, -wal/-shm) that
/// break every later tick of that user: refuse, and say how to run it.
pub(super) fn refuse_root_in_foreign_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // The owner of /proc/self is the effective uid (Linux).
    let (Ok(me), Ok(dir)) = (std::fs::metadata("/proc/self"), std::fs::metadata(parent)) else {
        return Ok(());
    };
    if me.uid() == 0 && dir.uid() != 0 {
        return Err(SidecarError::new(
            path,
            SidecarErrorKind::Io,
            format!(
                "refusing to write as root into {}, which belongs to uid {}: run as that user \
                 (e.g. sudo -u reconcile reconcile …) so its files stay its own",
                parent.display(),
                dir.uid()
            ),
        ));
    }
    Ok(())
}

pub(super) fn check_parent(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => return Ok(()),
    };
    match std::fs::metadata(parent) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(SidecarError::new(
            path,
            SidecarErrorKind::MissingDirectory,
            format!("{} is not a directory", parent.display()),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SidecarError::new(
            path,
            SidecarErrorKind::MissingDirectory,
            format!("directory {} does not exist", parent.display()),
        )),
        Err(e) => Err(SidecarError::new(
            path,
            SidecarErrorKind::Io,
            format!("cannot access directory {}: {e}", parent.display()),
        )),
    }
}

/// `path` with every symlink resolved, also when the file itself does not
/// exist yet: its directory is resolved and a dangling link at the leaf is
/// followed. Two paths to one database thus name one lock. A path whose
/// directory cannot be resolved is returned as given (opening it reports
/// why).
pub fn canonical(path: &Path) -> PathBuf {
    let mut cur = path.to_path_buf();
    // As many hops as the kernel follows (ELOOP beyond).
    for _ in 0..40 {
        if let Ok(p) = std::fs::canonicalize(&cur) {
            return p;
        }
        let Some(name) = cur.file_name() else {
            break;
        };
        let parent = match cur.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let Ok(dir) = std::fs::canonicalize(parent) else {
            break;
        };
        let joined = dir.join(name);
        match std::fs::read_link(&joined) {
            // An absolute target replaces `dir` in the join.
            Ok(target) => cur = dir.join(target),
            Err(_) => return joined,
        }
    }
    path.to_path_buf()
}

/// A FIFO, device or socket at `path` (or where its symlink points) would
/// block the open for ever or read garbage: refuse it before opening,
/// naming the file. A missing file is fine (it gets created).
pub fn refuse_special(path: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt as _;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let t = meta.file_type();
    let what = if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        return Ok(());
    };
    Err(SidecarError::new(
        path,
        SidecarErrorKind::Io,
        format!("is {what}, not a regular file; refusing to open it"),
    ))
}

/// `Ok(None)`: the file does not exist.
pub(super) fn read_header(path: &Path) -> Result<Option<Header>> {
    let io_err = |e: std::io::Error| SidecarError::new(path, SidecarErrorKind::Io, e.to_string());
    refuse_special(path)?;
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    let meta = file.metadata().map_err(io_err)?;
    if meta.is_dir() {
        return Err(SidecarError::new(
            path,
            SidecarErrorKind::Io,
            "is a directory",
        ));
    }
    let mut buf = Vec::with_capacity(100);
    (&mut file)
        .take(100)
        .read_to_end(&mut buf)
        .map_err(io_err)?;
    if buf.is_empty() {
        return Ok(Some(Header {
            empty: true,
            wal: false,
            application_id: 0,
        }));
    }
    if buf.len() < 100 || &buf[..16] != SQLITE_MAGIC {
        return Err(SidecarError::new(
            path,
            SidecarErrorKind::NotADatabase,
            "file is not a database",
        ));
    }
    Ok(Some(Header {
        empty: false,
        wal: buf[18] == 2 && buf[19] == 2,
        application_id: u32::from_be_bytes([buf[68], buf[69], buf[70], buf[71]]),
    }))
}

pub(super) fn sidecar_file(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// `file:` URI for `path` (absolute, percent-encoded) with `query`.
pub(super) fn file_uri(path: &Path, query: &str) -> Result<String> {
    use std::os::unix::ffi::OsStrExt;
    let abs = std::path::absolute(path)
        .map_err(|e| SidecarError::new(path, SidecarErrorKind::Io, e.to_string()))?;
    let mut uri = String::from("file:");
    for &b in abs.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push('?');
    uri.push_str(query);
    Ok(uri)
}
