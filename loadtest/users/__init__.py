"""Locust users for every target: REST (FastHttpUser) and gRPC (gevent-cooperative grpcio)."""
