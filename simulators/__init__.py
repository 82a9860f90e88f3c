"""Synthetic city generator and stream replay (see the simulator issue)."""
