"""Fashion-MNIST IDX reading shared by the Python scripts (peers and torch_interop.py)."""
import gzip
import struct

import numpy as np


def read_idx(path):
    """An IDX file (gzip-compressed) as a NumPy array of unsigned bytes with its dimensions."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
