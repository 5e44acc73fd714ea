"""Reliability tooling: a fault-injecting TCP proxy, an accounted open-loop driver, and chaos scenarios."""
