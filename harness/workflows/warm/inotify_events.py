"""The records a Linux inotify descriptor reads (struct inotify_event, <sys/inotify.h>),
decoded, and what each means to `highmem watch`: a file created, modified or deleted in the
watched directory, the kernel's queue overflowed (events were lost), or the directory itself
went away. No I/O: workflows/warm/inotify.py reads the bytes.
"""

import struct

# <linux/inotify.h> (stable ABI since 2.6.13)
IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ISDIR = 0x40000000
IN_NONBLOCK = 0o4000      # = O_NONBLOCK (i386 and x86_64)
IN_CLOEXEC = 0o2000000    # = O_CLOEXEC

WATCH_MASK = (IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE
              | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF)

CREATE, MODIFY, DELETE, OVERFLOW, GONE = "create", "modify", "delete", "overflow", "gone"

HEADER = struct.Struct("=iIII")   # int wd; uint32_t mask, cookie, len; then char name[len]


def parse_events(buf: bytes) -> list[tuple[int, int, str]]:
    """The (watch descriptor, mask, name) of each inotify_event in `buf` (name: "" for the
    directory itself; NUL padding stripped). A truncated last record is dropped (the kernel
    never returns one)."""
    out, off = [], 0
    while off + HEADER.size <= len(buf):
        wd, mask, _cookie, length = HEADER.unpack_from(buf, off)
        off += HEADER.size
        if off + length > len(buf):
            break
        name = buf[off:off + length].split(b"\0", 1)[0].decode(errors="surrogateescape")
        off += length
        out.append((wd, mask, name))
    return out


def kind_of(mask: int) -> str | None:
    """What an event means to the watch: CREATE, MODIFY, DELETE, OVERFLOW, GONE (the
    directory was deleted or moved: its watch is over), or None (of a subdirectory, or
    not one we asked for)."""
    if mask & IN_Q_OVERFLOW:
        return OVERFLOW
    if mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED):
        return GONE
    if mask & IN_ISDIR:
        return None
    if mask & (IN_CREATE | IN_MOVED_TO):
        return CREATE
    if mask & (IN_DELETE | IN_MOVED_FROM):
        return DELETE
    if mask & (IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB):
        return MODIFY
    return None
