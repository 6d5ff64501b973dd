"""The dashboard's sampler: queue depth and workers every ANALYTICS_SAMPLE_SECONDS into the time series
table, pushed to browsers as ``analytics_sample`` so the Analytics tab's chart moves live.

It runs whether or not a browser is open (an unattended night is what the chart is for), reusing the
Queue tab's inspect snapshot when that is fresh and taking one of its own otherwise.
"""

from __future__ import annotations

import logging
import time

from ..db import database_url
from ..jobs import queries
from ..services import queue_history

log = logging.getLogger(__name__)
PRUNE_EVERY = 3600.0


def start(app, socketio, monitor) -> None:
    """Start the loop once per app (``live.init_socketio`` calls this)."""
    conf = app.config["CAPTION_SETTINGS"]
    if app.extensions.get("queue_sampler") or conf["ANALYTICS_SAMPLE_SECONDS"] <= 0:
        return
    app.extensions["queue_sampler"] = True
    socketio.start_background_task(_loop, app, socketio, monitor)


def _loop(app, socketio, monitor) -> None:
    conf = app.config["CAPTION_SETTINGS"]
    interval, url = float(conf["ANALYTICS_SAMPLE_SECONDS"]), database_url(conf)
    pruned_at = 0.0
    while True:
        socketio.sleep(interval)
        try:
            with app.app_context():
                snapshot = monitor.recent(interval)   # the Queue tab's if fresh: no second inspect
            counts = queries.counts()                 # the store's own, as of now
            point = queue_history.record(queue_history.sample_of({**snapshot, "counts": counts}), url)
            socketio.emit("analytics_sample", point)
            if time.monotonic() - pruned_at > PRUNE_EVERY:
                queue_history.prune(conf["ANALYTICS_RETENTION_DAYS"], url)
                pruned_at = time.monotonic()
        except Exception as err:  # noqa: BLE001 - a failed sample must not stop the next ones
            # One line while Redis or the store is down (every interval); the traceback at debug level.
            log.warning("analytics sample failed: %s: %s", type(err).__name__, err)
            log.debug("analytics sample failed", exc_info=True)
