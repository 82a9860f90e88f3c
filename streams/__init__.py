"""The Kafka edge: the Faust app, its topics, and the batch loop that feeds detectors."""
