"""kombu's filesystem transport with atomic message writes (the embedded, no-server broker).

Stock kombu writes a message file in place, so a worker polling the folder can pick up a file
that is still empty and die on a JSON decode error (seen with `make run`: beat publishing while
the worker polled). Writing to a temporary name and renaming makes each message appear whole.
Only the embedded mode uses this; with REDIS_URL set, Redis is the broker.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        staging = final + ".partial"
        try:
            with open(staging, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(staging, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
