//! What tells one version of a file from the next: a new file renamed into
//! place, or the same one written again, differs in one of these.

use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
    ctime: (i64, i64),
    mtime: (i64, i64),
    size: u64,
}

/// The identity of the file at `path` now, or None when it cannot be
/// looked at.
pub fn identity(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).ok()?;
    Some(FileId {
        dev: m.dev(),
        ino: m.ino(),
        ctime: (m.ctime(), m.ctime_nsec()),
        mtime: (m.mtime(), m.mtime_nsec()),
        size: m.size(),
    })
}
