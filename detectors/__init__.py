"""Pure detectors: typed events and prior state in, alerts and state changes out.

No Kafka, Redis or HTTP here; ``streams/`` feeds them and stores their state.
"""
