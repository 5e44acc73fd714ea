"""Constants shared by the security tests."""

INGRESS_KEY = "ingress-7f1c2e9a-security-test-key"
"""The one ingress API key the keyed gateway accepts (long enough to search logs for)."""
