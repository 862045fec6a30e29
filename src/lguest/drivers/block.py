# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/drivers/block.py» book/drivers.md:901 @34cc21d7
"""virtio-blk: a disk image file, read and written straight from guest memory."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct
from pathlib import Path

from .mmio import BLOCK, VirtioDevice
from .virtqueue import Chain, RingError, Virtqueue, window

SECTOR = 512
T_IN, T_OUT, T_FLUSH, T_GET_ID = 0, 1, 4, 8
S_OK, S_IOERR, S_UNSUPP = 0, 1, 2
F_RO = 1 << 5
F_FLUSH = 1 << 9
HEADER = struct.Struct("<IIQ")  # type, reserved, sector
ID_BYTES = 20
NOT_A_FILE = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO, not a disk image",
              stat.S_IFCHR: "a character device, not a disk image",
              stat.S_IFBLK: "a block device, not a disk image"}


class Block(VirtioDevice):
    device_id = BLOCK
    name = "virtio-blk"
    queue_sizes = (128,)

    def __init__(self, path: str | Path, *, read_only: bool = False, **placement):
        self.path, self.read_only = Path(path), read_only
        mode = os.O_RDONLY if read_only else os.O_RDWR
        self.fd = os.open(path, mode | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            status = os.fstat(self.fd)
            kind = stat.S_IFMT(status.st_mode)
            if kind != stat.S_IFREG:
                raise OSError(errno.EINVAL, f"it is {NOT_A_FILE.get(kind, 'not a file')}")
            os.set_blocking(self.fd, True)
            try:
                fcntl.flock(self.fd, (fcntl.LOCK_SH if read_only else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OSError(errno.EBUSY, "another Launcher is using it") from None
        except OSError:
            os.close(self.fd)
            raise
        self.capacity = status.st_size // SECTOR
        super().__init__(**placement)

    def device_features(self) -> int:
        return F_FLUSH | (F_RO if self.read_only else 0)

    def config(self) -> bytes:
        return struct.pack("<Q", self.capacity)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # «Serve a block request» book/drivers.md:973 @603d59e3
    def handle(self, queue: Virtqueue, chain: Chain) -> int:
        if chain.readable_size < HEADER.size or chain.writable_size < 1:
            raise RingError("a block request without a 16-byte header and a status byte")
        kind, _, sector = HEADER.unpack(chain.read(0, HEADER.size))
        data_out = window(chain.readable, HEADER.size, chain.readable_size - HEADER.size)
        data_in = window(chain.writable, 0, chain.writable_size - 1)
        try:
            status, written = self.request(kind, sector, data_out, data_in)
        except OSError:
            status, written = S_IOERR, 0
        chain.write(chain.writable_size - 1, bytes([status]))
        return written + 1

    def request(self, kind: int, sector: int, data_out: list[memoryview],
                data_in: list[memoryview]) -> tuple[int, int]:
        """Do one request; return its status and how many data bytes went to the guest."""
        if kind == T_IN:
            length = sum(len(view) for view in data_in)
            if not self.in_range(sector, length):
                return S_IOERR, 0
            done = os.preadv(self.fd, data_in, sector * SECTOR) if length else 0
            return (S_OK if done == length else S_IOERR), done
        if kind == T_OUT:
            length = sum(len(view) for view in data_out)
            if self.read_only or not self.in_range(sector, length):
                return S_IOERR, 0
            done = os.pwritev(self.fd, data_out, sector * SECTOR) if length else 0
            return (S_OK if done == length else S_IOERR), 0
        if kind == T_FLUSH:
            os.fsync(self.fd)
            return S_OK, 0
        if kind == T_GET_ID:
            name = os.fsencode(self.path.name)[:ID_BYTES].ljust(ID_BYTES, b"\0")
            done = 0
            for view in data_in:
                piece = name[done:done + len(view)]
                view[:len(piece)] = piece
                done += len(piece)
            return S_OK, done
        return S_UNSUPP, 0

    def in_range(self, sector: int, length: int) -> bool:
        return length % SECTOR == 0 and sector * SECTOR + length <= self.capacity * SECTOR
    # «/Serve a block request»
# «/src/lguest/drivers/block.py»
