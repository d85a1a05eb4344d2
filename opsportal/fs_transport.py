"""kombu's filesystem transport with atomic writes (the embedded, no-server broker).

Stock kombu creates files empty and then fills them, so a reader can see an empty file and die on
a JSON decode error (seen with `make run`: the worker crashed while beat published). Two files
are affected: each message, and the exchange table a queue binding creates. Here both appear
whole: written under a temporary name, then renamed (messages) or hard-linked (the exchange
table, so that a concurrent first binding is not overwritten). Only the embedded mode uses
this; with REDIS_URL set, Redis is the broker.
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
            os.replace(staging, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        table = self._exchange_file(exchange)
        self.control_folder.mkdir(parents=True, exist_ok=True)
        if not table.exists():
            binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
            staging = table.with_name(f"{table.name}.{uuid.uuid4()}.partial")
            staging.write_bytes(str_to_bytes(dumps([binding])))
            try:
                os.link(staging, table)
                return
            except FileExistsError:
                pass  # another process created it first: add ours under its lock below
            finally:
                staging.unlink(missing_ok=True)
        super()._queue_bind(exchange, routing_key, pattern, queue)


class Transport(filesystem.Transport):
    Channel = Channel
