"""Checks shared by the tests of the sources streamed by file (test_data_image_streaming.py,
test_data_text_streaming.py). Not a test module."""

from __future__ import annotations

import tracemalloc
from typing import Callable


def assert_epoch_memory_flat(stream_of: Callable[[int], object]) -> None:
    """Iterating an epoch of 40 or 400 files, 16 at a time, holds as much at its peak (a batch,
    not the files): `stream_of(n)` is a stream (ImageStream, TextStream) over n files."""

    def peak(n: int) -> int:
        stream = stream_of(n)
        tracemalloc.start()
        try:
            for _ in stream.batches(epoch=0, size=16):
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(40), peak(400)
    assert large <= 1.2 * small, (small, large)


def assert_resumes_exactly(split, input_name: str, **options) -> None:
    """The training input of epochs [1, 2) equals the second epoch of [0, 2) (what exact resume
    needs), batch 8, and differs from the first epoch; `options` go to `training_dataset`
    (`augment`)."""
    import numpy as np

    stream, y = split.stream, split.y[:1]
    whole = list(stream.training_dataset(batch_size=8, first_epoch=0, epochs=2, y_example=y, **options))
    resumed = list(stream.training_dataset(batch_size=8, first_epoch=1, epochs=2, y_example=y, **options))
    per_epoch = -(-len(stream.index) // 8)
    assert len(whole) == 2 * per_epoch and len(resumed) == per_epoch
    for a, b in zip(whole[per_epoch:], resumed):
        np.testing.assert_array_equal(a[0][input_name].numpy(), b[0][input_name].numpy())
        np.testing.assert_array_equal(a[1].numpy(), b[1].numpy())
    assert not np.array_equal(whole[0][0][input_name].numpy(), whole[per_epoch][0][input_name].numpy())
