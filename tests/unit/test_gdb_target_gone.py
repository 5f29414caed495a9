"""gdb's records when QEMU exits under it (stages/gdbmi.py): the kept gdb must see the
target is gone, so detaching neither waits for a stop that cannot come nor ends gdb.
Records as gdb 13 printed them when a module panicked the guest (tests/catalogue cat_panic)."""

from harness.stages.gdbmi import _target_closed

PANIC_RECORDS = [
    {"type": "notify", "message": "thread-exited", "payload": {"id": "1", "group-id": "i1"}},
    {"type": "notify", "message": "thread-group-exited", "payload": {"id": "i1"}},
    {"type": "log", "message": None,
     "payload": "Remote communication error.  Target disconnected.: Broken pipe.\n"},
]


def test_the_records_of_a_qemu_that_exited_say_the_target_is_gone():
    assert [_target_closed(r) for r in PANIC_RECORDS] == [False, True, True]


def test_a_stop_or_a_console_line_does_not():
    assert not _target_closed({"type": "notify", "message": "stopped", "payload": {}})
    assert not _target_closed({"type": "console", "payload": "Target disconnected"})
    assert not _target_closed({"type": "log", "payload": "warning: no symbols"})
