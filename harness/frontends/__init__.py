"""The ways in: the `highmem` command (cli.py parses and checks; commands.py,
inspect_cli.py, mutate.py, bisect.py and bisect_step.py run what builds or boots;
inspect_args.py and guest_record.py are small parts), the pytest plugin (pytest_plugin.py)
and the commands of an interactive gdb (gdb_commands.py, loaded by gdb from its path). They
drive the facade (harness/lab.py, operations.py, run.py) and may import every layer; nothing
imports them but each other. cli.py imports no I/O library until a subcommand that builds or
boots runs; gdb_commands.py imports only harness.core and harness.kernel.
The warm guest: warm_client.py (up, status, down, run on it), warm_server.py, warm_watch.py.
"""
