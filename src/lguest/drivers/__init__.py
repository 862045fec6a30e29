# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/drivers/__init__.py» book/drivers-plugging.md:53 @c929f4bb
"""virtio devices for the guest: transport, virtqueues, and four device types."""

from __future__ import annotations

import re
from typing import BinaryIO, Sequence

from .block import Block
from .console import Console
from .mmio import FIRST_DEVICE_IRQ, MMIO_BASE, MMIO_SIZE, VirtioDevice
from .net import Net, Switch, UdpCable
from .rng import Rng

MAX_DEVICES = 8  # the boot page's device table has room for eight
MAX_PORT = 65535  # UDP's port numbers are 16 bits, and 0 means "any"


class DeviceError(ValueError):
    """A device the Launcher was asked for but cannot build: one line that says why."""


def placement(slot: int) -> dict[str, int]:
    return {"base": MMIO_BASE + slot * MMIO_SIZE, "irq": FIRST_DEVICE_IRQ + slot}


def make_devices(*, block: Sequence[str] = (), net: Sequence[str] = (), rng: bool = False,
                 console: BinaryIO | None = None, console_input: BinaryIO | None = None,
                 deterministic: bool = False, switch: Switch | None = None,
                 guest: int = 0) -> list[VirtioDevice]:
    """The devices a Launcher was asked for, each in its own window with its own line."""
    wanted = (int(console is not None) + len(block) + len(net) + int(rng))
    if wanted > MAX_DEVICES:
        raise DeviceError(f"{wanted} devices asked for; the boot page has room for {MAX_DEVICES}")
    devices: list[VirtioDevice] = []
    if console is not None:
        devices.append(Console(console, console_input, deterministic=deterministic,
                               **placement(len(devices))))
    for spec in block:
        path, read_only = (spec[:-3], True) if spec.endswith(":ro") else (spec, False)
        try:
            devices.append(Block(path, read_only=read_only, **placement(len(devices))))
        except OSError as error:
            raise DeviceError(f"{path}: cannot open the disk image: {error.strerror}") from None
    for spec in net:
        if spec == "switch":
            switch = switch if switch is not None else Switch()
            mac = bytes([0x02, 0x4C, 0x47, 0, guest & 0xFF, len(devices)])
            devices.append(Net(switch.port(), mac, **placement(len(devices))))
        else:
            devices.append(make_net(spec, len(devices)))
    if rng:
        devices.append(Rng(**placement(len(devices))))
    return devices


def parse_net(spec: str) -> tuple[int, int] | None:
    """The two UDP ports of a ``--net`` cable, or None for ``switch``; DeviceError if neither."""
    if spec == "switch":
        return None
    cable = re.fullmatch(r"udp:([0-9]+):([0-9]+)", spec)
    if cable is None:
        raise DeviceError(f"--net={spec}: expected udp:LOCAL_PORT:REMOTE_PORT or switch")
    local, remote = int(cable[1]), int(cable[2])
    for port in (local, remote):
        if not 0 < port <= MAX_PORT:
            raise DeviceError(f"--net={spec}: {port} is not a UDP port (1 to {MAX_PORT})")
    return local, remote


def make_net(spec: str, slot: int) -> Net:
    local, remote = parse_net(spec) or (0, 0)
    try:
        cable = UdpCable(local, remote)
    except OSError as error:
        raise DeviceError(f"--net={spec}: cannot use UDP port {local}: {error.strerror}") from None
    mac = bytes([0x02, 0x4C, 0x47, local >> 8 & 0xFF, local & 0xFF, slot])
    return Net(cable, mac, **placement(slot))


__all__ = ["Block", "Console", "DeviceError", "Net", "Rng", "Switch", "UdpCable",
           "VirtioDevice", "make_devices", "parse_net"]
# «/src/lguest/drivers/__init__.py»
