"""The embedded broker: messages published while a consumer polls always arrive whole."""

import threading
import time

from kombu import Connection

from opsportal import celery  # noqa: F401  (registers the opsfs transport alias)


def test_concurrent_publish_and_consume_loses_and_corrupts_nothing(tmp_path):
    folder = str(tmp_path)
    options = {
        "data_folder_in": folder,
        "data_folder_out": folder,
        "control_folder": str(tmp_path / "control"),
    }
    total = 1000
    received, errors = [], []

    def consume():
        with Connection("opsfs://localhost/", transport_options=options) as conn:
            queue = conn.SimpleQueue("q")
            queue.consumer.consume()
            while len(received) < total:
                try:
                    message = queue.get(timeout=20)
                except Exception as exc:
                    errors.append(exc)
                    return
                received.append(message.payload["n"])
                message.ack()

    consumer = threading.Thread(target=consume)
    consumer.start()
    # As in production, the worker's queue is bound before anything is published to it.
    # (Threads of one process share kombu's in-memory binding state, so publishing earlier
    # would race that state rather than the files under test.)
    exchange_table = tmp_path / "control" / "q.exchange"
    deadline = time.monotonic() + 10
    while not exchange_table.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    with Connection("opsfs://localhost/", transport_options=options) as conn:
        queue = conn.SimpleQueue("q")
        for n in range(total):
            queue.put({"n": n, "padding": "x" * 20000})
    consumer.join(timeout=60)
    assert not errors, f"received {len(received)} of {total}"
    assert sorted(received) == list(range(total))
