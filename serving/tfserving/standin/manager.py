"""The protocol-free core: which versions are served, how a request finds one, and predict itself."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from serving.tfserving.standin.batching import Batcher
from serving.tfserving.standin.config import BatchingOptions, ModelConfig
from serving.tfserving.standin.errors import (
    ConfigError,
    InvalidArgumentError,
    NotFoundError,
    UnimplementedError,
)
from serving.tfserving.standin.metrics import Metrics
from serving.tfserving.standin.servables import Servable, Signature, Tensors, discover_versions

log = logging.getLogger("twinserve.tfserving.standin")

_MAX_VERSION = 2**63 - 1


def parse_version(text: str) -> int:
    """A version from a URL, or InvalidArgumentError as the real server answers for an out-of-range one."""
    version = int(text)
    if version > _MAX_VERSION:
        raise InvalidArgumentError(f"Failed to convert version: {text}")
    return version


class ModelManager:
    """Every served model version, their version labels, and the thread pool inference runs on."""

    def __init__(
        self,
        servables: dict[str, dict[int, Servable]],
        labels: dict[str, dict[str, int]],
        metrics: Metrics,
        batching: BatchingOptions | None,
    ) -> None:
        self._servables = servables
        self._labels = labels
        self.metrics = metrics
        self._batching = batching
        # Batch threads are the real server's num_batch_threads; unbatched requests each get a worker.
        self._executor = (
            ThreadPoolExecutor(batching.num_batch_threads, thread_name_prefix=batching.thread_pool_name)
            if batching
            else ThreadPoolExecutor(thread_name_prefix="standin-inference")
        )
        self._batchers: dict[tuple[str, int, str], Batcher] = {}

    @classmethod
    def load(
        cls,
        configs: Sequence[ModelConfig],
        metrics: Metrics,
        batching: BatchingOptions | None,
    ) -> ModelManager:
        """Load the versions each config's policy selects, replay their warm-up, check version labels."""
        servables: dict[str, dict[int, Servable]] = {}
        for cfg in configs:
            on_disk = discover_versions(cfg.base_path)
            chosen = cfg.select_versions(on_disk)
            if not chosen:
                raise ConfigError(
                    f"model {cfg.name}: no version under {cfg.base_path} matches policy {cfg.policy} "
                    f"(found {sorted(on_disk)})"
                )
            if cfg.policy == "specific" and len(chosen) < len(set(cfg.versions)):
                missing = sorted(set(cfg.versions) - set(chosen))
                raise ConfigError(f"model {cfg.name}: versions {missing} not found under {cfg.base_path}")
            servables[cfg.name] = {}
            for version in chosen:
                started = time.perf_counter()
                servable = Servable(cfg.name, version, cfg.base_path / str(version))
                metrics.record_load(str(servable.path), time.perf_counter() - started)
                replayed = servable.replay_warmup()
                log.info(
                    "loaded model %s version %d from %s in %.2f s; replayed %d warm-up requests",
                    cfg.name,
                    version,
                    servable.path,
                    time.perf_counter() - started,
                    replayed,
                )
                servables[cfg.name][version] = servable
            for label, version in cfg.version_labels.items():
                if version not in servables[cfg.name]:
                    raise ConfigError(
                        f"model {cfg.name}: label {label!r} points at version {version}, which is not served "
                        f"(served: {sorted(servables[cfg.name])})"
                    )
        labels = {cfg.name: dict(cfg.version_labels) for cfg in configs}
        return cls(servables, labels, metrics, batching)

    async def start(self) -> None:
        """Create one batcher per batchable signature (needs the running event loop)."""
        if self._batching is None:
            return
        slots = asyncio.Semaphore(self._batching.num_batch_threads)
        for name, versions in self._servables.items():
            for version, servable in versions.items():
                for sig_name, sig in servable.signatures.items():
                    if not sig.batchable:
                        log.warning("model %s v%d signature %s runs unbatched", name, version, sig_name)
                        continue
                    batcher = Batcher(
                        sig.run,
                        self._batching,
                        self._executor,
                        slots,
                        on_batch=functools.partial(self.metrics.record_batch, name),
                    )
                    batcher.start()
                    self._batchers[(name, version, sig_name)] = batcher

    async def close(self) -> None:
        """Stop the batchers and the inference threads (after the servers stopped taking requests)."""
        await asyncio.gather(*(b.close() for b in self._batchers.values()))
        await asyncio.to_thread(self._executor.shutdown)

    def describe(self) -> list[str]:
        """One entry per model for the ready log line: name, versions (newest first), labels."""
        return [
            f"{name} versions {sorted(versions, reverse=True)}"
            + (f" labels {self._labels[name]}" if self._labels[name] else "")
            for name, versions in self._servables.items()
        ]

    def is_served(self, name: str) -> bool:
        """Whether `name` is a configured model (metrics are labelled only with these: bounded labels)."""
        return name in self._servables

    def versions(self, name: str, version: int | None = None, label: str | None = None) -> list[int]:
        """Served versions of `name` (only one if a version or label is given), newest first: model status."""
        if name not in self._servables:
            raise NotFoundError(f"Could not find any versions of model {name}")
        if label is not None:
            version = self._version_for_label(name, label)
        if version is None:
            return sorted(self._servables[name], reverse=True)
        if version not in self._servables[name]:
            raise NotFoundError(f"Could not find version {version} of model {name}")
        return [version]

    def _version_for_label(self, name: str, label: str) -> int:
        try:
            return self._labels[name][label]
        except KeyError:
            raise InvalidArgumentError(f"Unrecognized servable version label: {label}") from None

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable a request names: the latest version unless a version or a label is given."""
        if label:
            if name not in self._servables:
                raise NotFoundError(f"Servable not found for request: Latest({name})")
            version = self._version_for_label(name, label)
        versions = self._servables.get(name, {})
        if version is None:
            if not versions:
                raise NotFoundError(f"Servable not found for request: Latest({name})")
            return versions[max(versions)]
        if version not in versions:
            raise NotFoundError(f"Servable not found for request: Specific({name}, {version})")
        return versions[version]

    def check_method(self, servable: Servable, signature_name: str, kind: str) -> None:
        """For :classify / :regress: the real server's error for a signature of another kind."""
        sig = servable.signature(signature_name)
        expected = f"tensorflow/serving/{kind}"
        if sig.method_name != expected:
            raise InvalidArgumentError(
                f"Expected {kind} signature method_name to be {expected}. Was: {sig.method_name} "
                f"(model {servable.name} has no {kind} signature named {sig.name})"
            )
        raise UnimplementedError(f"the twinserve TF Serving stand-in implements Predict only, not {kind}")

    async def predict(
        self, servable: Servable, signature_name: str, inputs: Tensors, output_filter: Sequence[str] = ()
    ) -> tuple[Signature, Tensors]:
        """Check `inputs`, run them (batched when enabled) off the event loop, return the chosen outputs."""
        sig = servable.signature(signature_name)
        unknown = sorted(set(output_filter) - set(sig.outputs))
        if unknown:
            raise InvalidArgumentError(
                f"output tensor alias not found in signature: {', '.join(unknown)}. "
                f"Outputs expected to be in the set {{{','.join(sig.outputs)}}}."
            )
        rows = sig.validate(inputs)
        batcher = self._batchers.get((servable.name, servable.version, sig.name))
        if batcher is not None:
            outputs = await batcher.submit(inputs, rows)
        else:
            outputs = await asyncio.get_running_loop().run_in_executor(self._executor, sig.run, inputs)
        if output_filter:
            outputs = {k: outputs[k] for k in sig.outputs if k in output_filter}
        return sig, outputs
