"""Create every stream and KV bucket of a catalog, idempotently."""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamInfo,
)
from nats.js.errors import BadRequestError, NotFoundError

from titan.core.catalog import BucketSpec, Catalog, StreamSpec

log = logging.getLogger("titan.bus")

KV_STREAM_PREFIX = "KV_"


def stream_config(spec: StreamSpec) -> StreamConfig:
    """The JetStream configuration for a catalog stream: file storage, limits retention, the spec's
    duplicate window (the window in which a repeated Nats-Msg-Id is dropped)."""
    return StreamConfig(
        name=spec.name,
        description=spec.description,
        subjects=list(spec.subjects),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=spec.max_age_s or None,
        duplicate_window=spec.duplicate_window_s,
        num_replicas=1,
    )


async def ensure_stream(js: JetStreamContext, spec: StreamSpec) -> StreamInfo:
    """Create the stream, or bring an existing one to the spec's configuration."""
    config = stream_config(spec)
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        try:
            return await js.add_stream(config)
        except BadRequestError:
            # Created concurrently by another process (with a different config): update below.
            info = await js.stream_info(spec.name)
    current = info.config
    if (
        sorted(current.subjects or []) == sorted(config.subjects or [])
        and current.duplicate_window == config.duplicate_window
        and (current.max_age or None) == config.max_age
        and current.description == config.description
        and current.storage == config.storage
    ):
        return info
    if current.storage != config.storage:
        log.warning("stream %s uses %s storage; storage cannot be changed in place", spec.name, current.storage)
        config.storage = current.storage
    log.info("updating stream %s to the catalog configuration", spec.name)
    return await js.update_stream(config)


async def ensure_bucket(js: JetStreamContext, spec: BucketSpec) -> None:
    """Create the KV bucket if missing (an existing bucket keeps its data and history setting)."""
    try:
        await js.key_value(spec.name)
        return
    except NotFoundError:  # BucketNotFoundError
        pass
    try:
        await js.create_key_value(
            KeyValueConfig(
                bucket=spec.name,
                description=spec.description,
                history=spec.history,
                storage=StorageType.FILE,
            )
        )
    except BadRequestError:
        # Created concurrently by another process: fine as long as it exists now.
        await js.key_value(spec.name)


async def ensure_jetstream(js: JetStreamContext, catalog: Catalog) -> None:
    """Create/update every stream in ``catalog.streams`` and every bucket in ``catalog.buckets``.

    Safe to call repeatedly and from several processes at once."""
    for stream in catalog.streams:
        await ensure_stream(js, stream)
    for bucket in catalog.buckets:
        await ensure_bucket(js, bucket)
