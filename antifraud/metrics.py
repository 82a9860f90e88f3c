"""Prometheus metrics of the worker. Labels are topics, detectors and fixed
vocabularies only: never a phone number, account, ID number or name."""

from prometheus_client import Counter, Histogram

EVENTS_CONSUMED = Counter(
    "antifraud_events_consumed_total", "Records read from an input topic (valid or not).", ["topic"]
)
DEAD_LETTERS = Counter(
    "antifraud_dead_letters_total", "Records sent to the dead-letter topic.", ["topic", "reason"]
)
ALERTS = Counter("antifraud_alerts_total", "Alerts produced.", ["detector", "severity"])
EVENT_TO_ALERT_SECONDS = Histogram(
    "antifraud_event_to_alert_seconds",
    "From the event time of the event that triggered an alert to the alert being acknowledged by the broker.",
    ["detector"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
BATCH_SECONDS = Histogram(
    "antifraud_batch_seconds",
    "Time to process one batch: decode, detect, produce, flush state.",
    ["topic"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
