"""twinserve gateway: Open Inference Protocol v2 in front of TorchServe and TensorFlow Serving.

Imports neither torch nor tensorflow; build the app with `gateway.app.create_app(settings)`.
"""

from __future__ import annotations

__version__ = "0.1.0"
