"""The pure core. It owns the checkpoint ABI mirror and its verdicts (checkpoint), PTE
decoding (pte), page walks over a read-physical-memory callable (pagewalk), the
address-space layout (layout), KTAP parsing (ktap), Kconfig survival (kconfig_check), suites
and their selection (suite, suitefile), results and the pass/fail rules (results, failure),
report formatting from data (report, inspect_model, phases), the run knobs and their
defaults (options), option checks (preflight), the user-facing errors (errors), where the
repository's inputs are (repo), and the small parsers the I/O layers share (meminfo,
gdb_text). It may import only the standard library, yaml and itself: no subprocess, socket,
pexpect, pygdbmi, paramiko or qemu.qmp, and nothing else of harness
(tests/unit/test_layers.py holds that). Everything here is tested in milliseconds on
recorded or hand-built data.
The warm guest's records, request lines and watch verdicts are in warm.
"""
