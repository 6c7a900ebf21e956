"""Write one benchmark's section of bench/RESULTS.md, between its ``<!-- name:begin/end -->``
markers, leaving the other sections as they are."""

from __future__ import annotations

from pathlib import Path

PATH = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = "# Benchmark results\n\nEvery number below comes from the command printed with it.\n\n"


def write_section(name: str, body: str) -> str:
    block = f"<!-- {name}:begin -->\n{body.rstrip()}\n<!-- {name}:end -->"
    text = PATH.read_text() if PATH.exists() else HEADER
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin in text:
        a, rest = text.split(begin, 1)
        text = a + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    PATH.write_text(text)
    return block
