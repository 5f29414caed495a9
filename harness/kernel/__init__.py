"""Reading a stopped kernel through the `Target` protocol (target.py): C expressions with
vmlinux's DWARF, guest physical memory through QEMU's `xp`, kernel virtual memory, symbols.
It owns the live layout and page cache of one stop (target.Kernel), the tasks (tasks.py) and
the inspection reports (reports.py, kmaps.py, vmaps.py). It may import harness.core and the
standard library only — no transport: the same files run over the harness's MI gdb
(stages/mi_target.py), inside gdb's own Python (frontends/gdb_commands.py) and over the unit
tests' fake target. Where the kernel changed within 6.1-6.14, the branch names the commit.
"""
