"""Measurements with real tools (iperf3, a UDP probe, curl, Chromium) and their verdicts."""
