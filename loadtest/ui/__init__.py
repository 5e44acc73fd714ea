"""`make locust`: Locust's web UI where each user class is one target, and every run is a twinserve result."""
