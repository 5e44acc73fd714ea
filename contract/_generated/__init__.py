"""Generated protobuf messages (do not edit; rebuild with `make protos`, excluded from lint)."""
