"""The built-in models, each a spec file in the same format a user writes (see models/modelspec.py)."""
