"""TorchServe: its image, config, handler and the supervisor plug-ins that launch it natively."""
