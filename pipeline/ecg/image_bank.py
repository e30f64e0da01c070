"""One array for every training image, filled as records are prepared.

Why: stacking each record's scalogram into the training array held every image twice (three
times with the float32 cast and the fold subsets); at the paper's 45,152 records a 32x64 image
set is 41 GiB. The bank is the only copy: each prepared record's image moves into its row as
soon as it is ready (the record keeps a view), and training reads batches from it by row. A
bank larger than ``max_ram_bytes`` (default: half the machine's memory) lives in an unnamed
temporary file (``np.memmap``), removed when the bank is, so the set may exceed RAM.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np


def physical_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume small
        return 8 << 30


def fits_in_memory(n_bytes: int, max_ram_bytes: int | None = None) -> bool:
    """Whether a bank of ``n_bytes`` stays in memory (default limit: half the machine's)."""
    return n_bytes <= (physical_memory_bytes() // 2 if max_ram_bytes is None else max_ram_bytes)


class ImageBank:
    """``capacity`` rows of one image shape, allocated on the first image."""

    def __init__(self, capacity: int, max_ram_bytes: int | None = None):
        self.capacity = capacity
        self.max_ram_bytes = max_ram_bytes
        self.array: np.ndarray | None = None
        self.filled = np.zeros(capacity, dtype=bool)

    @property
    def on_disk(self) -> bool:
        return isinstance(self.array, np.memmap)

    def _allocate(self, shape: tuple[int, ...]) -> None:
        full = (self.capacity, *shape)
        if fits_in_memory(self.capacity * int(np.prod(shape)) * 4, self.max_ram_bytes):
            self.array = np.empty(full, dtype=np.float32)  # pages are only touched when a row is written
        else:  # in TMPDIR, deleted with the bank
            self.array = np.memmap(tempfile.TemporaryFile(), dtype=np.float32, mode="w+", shape=full)

    def keep(self, row: int, image: np.ndarray) -> np.ndarray:
        """Copy ``image`` into ``row`` and return the row (a view); an image of another shape than
        the bank's stays where it is (training then reports the mismatch as before)."""
        if self.array is None:
            self._allocate(image.shape)
        if image.shape != self.array.shape[1:]:
            return image
        self.array[row] = image
        self.filled[row] = True
        return self.array[row]
