# pyright: reportAttributeAccessIssue=false, reportOptionalMemberAccess=false
# (executorch's program schema types its values as unions of dataclasses: the runner reads the
# member each value's tag selects, which pyright cannot narrow)
"""Per-instruction outputs of an ExecuTorch program, recorded by ETDump (the runtime's event
tracer with a debug buffer): the program runs once more with the tracer on, and each debug event
of the main chain names its instruction and where its output tensor lies in the debug buffer.

ETDump records no float16 tensors and nothing inside a delegate; the runner decides where it is
used (``ExecuTorchRunner._capture``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

DEBUG_BUFFER = 1 << 24  # bytes ETDump may fill with intermediate tensors


def record(path: str, method: str, inputs: list) -> dict:
    """``{instruction id: ndarray}``: the last tensor ETDump recorded for each instruction of
    ``method`` run on ``inputs`` (numpy arrays, in the method's input order)."""
    import torch
    from executorch.devtools.etdump.serialize import deserialize_from_etdump_flatcc
    from executorch.runtime import Runtime, Verification

    from convlint.analyzers.models.executorch_runner import scalar_dtype

    prog = Runtime.get().load_program(
        Path(path).read_bytes(),
        verification=Verification.Minimal,
        enable_etdump=True,
        debug_buffer_size=DEBUG_BUFFER,
    )
    prog.load_method(method).execute([torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
    with tempfile.TemporaryDirectory(prefix="convlint-etdump-") as d:
        prog.write_etdump_result_to_file(f"{d}/run.etdp", f"{d}/debug.bin")
        dump = deserialize_from_etdump_flatcc(Path(f"{d}/run.etdp").read_bytes())
        buf = Path(f"{d}/debug.bin").read_bytes()
    out = {}
    for block in dump.run_data:
        for ev in block.events or []:
            d = ev.debug_event
            t = getattr(getattr(d, "debug_entry", None), "tensor", None)
            if t is None or int(d.chain_index) != 0:
                continue
            dt = scalar_dtype(t.scalar_type)
            n = int(np.prod(t.sizes)) if t.sizes else 1
            out[int(d.instruction_id)] = (
                np.frombuffer(buf, dt, count=n, offset=int(t.offset)).reshape(t.sizes).copy()
            )
    return out
