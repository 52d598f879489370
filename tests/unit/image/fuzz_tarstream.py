"""Coverage-guided fuzzing of the layer tar reader with atheris (libFuzzer), for long local runs.

atheris is not a dependency (``pip install atheris``); pytest does not
collect this file. The seeds are the well-formed archives of
test_image_tar_fuzz.py. Anything but an ImageError escaping, or an entry
outside the ranges extract.py relies on, is a crash::

    .venv/bin/python tests/unit/image/fuzz_tarstream.py -atheris_runs=1000000 [CORPUS_DIR]
"""

from __future__ import annotations

import os
import sys
import tempfile

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

with atheris.instrument_imports(include=["inclavare.image"]):
    from test_image_tar_fuzz import CORPUS, read_all

    from inclavare.image.errors import ImageError


def one_input(data: bytes) -> None:
    try:
        read_all(with_checksums(data) if data[:1] == b"\0" else data[1:])
    except ImageError:
        pass


def with_checksums(data: bytes) -> bytes:
    """A mutated header rarely keeps its checksum: inputs starting with a NUL
    have every non-zero block's checksum fixed, so the fields themselves are explored."""
    buf = bytearray(data[1:])
    for at in range(0, len(buf) - 511, 512):
        if any(buf[at : at + 512]):
            buf[at + 148 : at + 156] = b" " * 8
            buf[at + 148 : at + 156] = b"%06o\0 " % sum(buf[at : at + 512])
    return bytes(buf)


def main() -> None:
    args = list(sys.argv)
    dirs = [a for a in args[1:] if not a.startswith("-")]
    if not dirs:
        dirs = [tempfile.mkdtemp(prefix="tar-seeds-")]
        args.append(dirs[0])
    if not os.listdir(dirs[0]):
        for i, archive in enumerate(CORPUS):
            for flag in (b"\0", b"\1"):  # checksums fixed, and as they are
                with open(os.path.join(dirs[0], f"seed{i}-{flag[0]}"), "wb") as f:
                    f.write(flag + archive)
    atheris.Setup(args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
