"""highmem-harness: test Linux highmem mappings on a real i386 PAE kernel, PTEs checked live.

The pipeline is source -> config -> build -> modules -> image -> boot -> guest channel ->
module -> checkpoint -> page walk -> verdict -> report. The code is in four layers, each a
folder that may import only the layers above it in this list:

- core/       pure logic and data: checkpoint ABI and verdicts, PTE decoding, page walks,
              layout, KTAP, suites, results, report formatting, option defaults.
- kernel/     reading a stopped kernel through the Target protocol (layout, tasks, kmaps,
              vmaps): the inspection reports.
- stages/     one I/O module per stage (make, QEMU, serial console, SSH, gdb/MI, QMP).
- frontends/  the `highmem` command, the pytest plugin, the gdb commands.

Between stages/ and frontends/ sits the facade both front ends drive: lab.py (the policy:
what to build, when to boot and reboot, every failure a result), operations.py (the same
stages done for real) and run.py (the main job and its report). cli.py and pytest_plugin.py
here are the old module names, kept for `python -m harness.cli` and older installs.
"""
