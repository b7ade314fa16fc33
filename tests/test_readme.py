"""The README: every paragraph and table once (an edit that inserts instead of replacing shows here)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(text: str) -> list[str]:
    """The README's paragraphs and tables: runs of non-blank lines, stripped."""
    out, current = [], []
    for line in text.splitlines() + [""]:
        if line.strip():
            current.append(line.rstrip())
        elif current:
            out.append("\n".join(current))
            current = []
    return out


def test_blocks_split_on_blank_lines():
    assert blocks("a\nb\n\n\nc\n") == ["a\nb", "c"]


def test_no_paragraph_or_table_twice():
    counts = Counter(b for b in blocks(README.read_text(encoding="utf-8")) if len(b) > 80)
    twice = [b.splitlines()[0][:80] for b, n in counts.items() if n > 1]
    assert not twice, f"README.md repeats these blocks: {twice}"


def test_no_table_row_twice_in_a_table():
    for block in blocks(README.read_text(encoding="utf-8")):
        rows = [line for line in block.splitlines() if line.startswith("|") and not set(line) <= set("|-: ")]
        repeated = [row for row, n in Counter(rows).items() if n > 1]
        assert not repeated, f"a README table repeats rows: {repeated[:2]}"
