"""Anti-fraud stream monitor for telecom and banking events."""
