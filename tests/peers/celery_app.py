"""The Celery app of poolpilot's Celery tests (tests/peers/celery.sh).

Broker from CELERY_BROKER (redis://… or amqp://…). Every task appends one line per event to the
ledger file CELERY_LEDGER, `start <tag> <worker node>` then `done <tag> <worker node>`, so a
test can check that no task was lost or run twice and which worker ran it.

Workers take one task at a time from the broker (prefetch 1, late ack is off: Celery's defaults
otherwise), as a pool that is sized task by task should.
"""
import os
import time

from celery import Celery

app = Celery("poolpilot_test", broker=os.environ["CELERY_BROKER"])
app.conf.update(
    worker_prefetch_multiplier=1,
    task_default_queue=os.environ.get("CELERY_QUEUE", "superset"),
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    task_ignore_result=True,
)


def _record(event, tag, hostname):
    with open(os.environ["CELERY_LEDGER"], "a", encoding="utf-8") as ledger:
        ledger.write(f"{event} {tag} {hostname}\n")
        ledger.flush()
        os.fsync(ledger.fileno())


@app.task(bind=True, name="pp.sleep")
def sleep(self, tag, seconds):
    """Sleeps `seconds` (a short or a long task, as the test asks)."""
    _record("start", tag, self.request.hostname)
    time.sleep(float(seconds))
    _record("done", tag, self.request.hostname)
    return tag
