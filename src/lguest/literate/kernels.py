# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/literate/kernels.py» book/literate-weaving.md:402 @0fbc0de8
"""A kernel provisioner that encrypts a local kernel's sockets with CurveZMQ."""

from __future__ import annotations

from typing import Any

import zmq
from jupyter_client.provisioning import LocalProvisioner

NAME = "lguest-encrypted"  # the entry point in pyproject.toml
CHOOSE = "JUPYTER_DEFAULT_PROVISIONER_NAME"  # jupyter_client's variable for the default provisioner


class EncryptedProvisioner(LocalProvisioner):
    """A local kernel whose manager provisions CurveZMQ keys, if the kernel and ZeroMQ support them."""

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        if zmq.has("curve"):
            kwargs.setdefault("transport_encryption", "auto")
        return await super().pre_launch(**kwargs)


def registered() -> bool:
    """Whether the installed package offers this provisioner to jupyter_client."""
    from importlib.metadata import entry_points

    return any(entry.name == NAME for entry in entry_points(group="jupyter_client.kernel_provisioners"))
# «/src/lguest/literate/kernels.py»
