"""One I/O module per pipeline stage: source (unpack, version gate), kconfig (configure),
build (the kernel), modbuild (the test modules), image (initramfs), qemu (boot), console and
ssh (guest channels), gdbmi and qmp (debugger and monitor transports), mi_target (the
kernel Target over gdb/MI), checker (a checkpoint stop), module_run (one module with its
stops); and their helpers: paths (cache and run directories), buildlock, procutil (child
processes that die with us), sockdir (private socket directories), console_log (the console
as logged), host (tools and directories), progress (stderr lines). A stage may import
harness.core, harness.kernel and other stages, never the facade (lab, operations, run) nor
frontends. Every wait has a deadline; every process is stopped in `close()`/`finally`.
The warm guest's I/O: warm_record (status files), warm_channel (socket), warm_push (.ko).
"""
