"""highmem-harness: test Linux highmem mappings on a real i386 PAE kernel, PTEs checked live.

The pipeline, one module per stage:
source -> kconfig -> build -> image -> qemu (boot) -> console (guest channel) -> modules ->
checkpoint (gdbmi + pagewalk + pte) -> verdict -> report. `run.py` strings them together.
"""
