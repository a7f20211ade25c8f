"""AudioBuffer against a plain array holding the whole stream."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdiarize._audio_buffer import AudioBuffer

operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 5000)),
        st.tuples(st.just("discard"), st.integers(-100, 40000)),
        st.tuples(st.just("slice"), st.tuples(st.integers(-100, 40000), st.integers(-100, 40000))),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_buffer_matches_the_whole_stream(ops: list[tuple[str, object]]) -> None:
    buffer = AudioBuffer(capacity=16)
    stream = np.zeros(0, dtype=np.int16)
    kept_from = 0
    rng = np.random.default_rng(0)
    for name, arg in ops:
        if name == "append":
            chunk = rng.integers(-32768, 32767, int(arg), dtype=np.int16)  # type: ignore[call-overload]
            buffer.append(chunk)
            stream = np.concatenate([stream, chunk])
        elif name == "discard":
            buffer.discard_before(int(arg))  # type: ignore[call-overload]
            kept_from = min(max(kept_from, int(arg)), len(stream))  # type: ignore[call-overload]
        else:
            start, end = arg  # type: ignore[misc]
            lo, hi = max(start, kept_from), min(end, len(stream))
            expected = stream[lo:hi] if hi > lo else stream[:0]
            assert np.array_equal(buffer.slice(start, end), expected)
        assert buffer.end == len(stream)
        assert buffer.start == kept_from


def test_memory_follows_what_is_kept() -> None:
    buffer = AudioBuffer(capacity=1000)
    for _ in range(1000):
        buffer.append(np.ones(1600, dtype=np.int16))
        buffer.discard_before(buffer.end - 8000)
    assert buffer.end - buffer.start == 8000
    assert buffer._data.size <= 4 * 8000  # storage did not grow with the stream
