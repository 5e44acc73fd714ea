"""The gateway benchmark (`make bench-gateway`): the gateway's added latency beside Envoy's, its cost per request,
and the no-op upstream both are measured against. Same pacer, recorder and validity judge as `make bench`."""
