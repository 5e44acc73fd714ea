"""Locust users for every target: REST (a lean keep-alive client) and gRPC (gevent-cooperative grpcio)."""
