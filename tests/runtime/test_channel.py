"""The parent's event inbox: a ring of encoded batches in shared memory, freed in answer order."""

from __future__ import annotations

import mmap

from airegistry.runtime.channel import Inbox


def test_ring_fills_wraps_and_frees_in_answer_order() -> None:
    inbox = Inbox(mmap.mmap(-1, 100))
    assert inbox.place(b"a" * 40, next_id=11) == 0
    assert inbox.place(b"b" * 40, next_id=21) == 40
    assert inbox.place(b"c" * 30, next_id=31) is None  # 20 bytes left at the end, none before
    inbox.release(answered_before=10)  # batch 1 (calls 1..10) not fully answered yet
    assert inbox.place(b"c" * 30, next_id=31) is None
    inbox.release(answered_before=11)
    assert inbox.place(b"c" * 30, next_id=31) == 0  # wraps into the space batch 1 freed
    assert inbox.place(b"d" * 11, next_id=41) is None  # free now: [30, 40) only
    assert inbox.place(b"d" * 10, next_id=41) == 30
    assert bytes(inbox.mem[:80]) == b"c" * 30 + b"d" * 10 + b"b" * 40
    inbox.release(answered_before=41)
    assert not inbox.regions
    assert inbox.place(b"e" * 100, next_id=51) == 0  # empty again: the whole ring
    assert inbox.place(b"f", next_id=52) is None
