"""Load tests: open-loop schedules, HdrHistogram recording, validity rules, Locust users, report."""
