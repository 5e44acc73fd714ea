"""What every twinserve component agrees on, with no framework behind it (no torch, no TensorFlow, no FastAPI).

The gateway, the load generator, the reliability harness, the supervisor and the container images all import
this package, so each fact here has exactly one home:

- `protos/`, `_generated/`: the wire formats (KServe v2, TorchServe and TF Serving's gRPC subsets);
- `ports`: the contract ports of a stack (docs/contracts.md);
- `state`: the supervisor's `run/state.json`, written by the supervisor and read by everyone else;
- `tskeys`: TorchServe's key file, read with stale-key detection;
- `v2`: Open Inference Protocol v2 request bodies (REST JSON and gRPC ModelInfer);
- `gateway_env`: gateway settings as the `TWINSERVE_*` environment variables the gateway reads.
"""
