"""Titan's one typed settings model. Every value comes from the environment (prefix ``TITAN_``)
or a ``.env`` file; invalid values fail at start with a message naming the field."""

from __future__ import annotations

import os
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from titan.core.catalog import Catalog, token


class Mode(StrEnum):
    PAPER = "paper"
    LIVE = "live"


class ConfigError(Exception):
    """Raised with a readable message naming the offending setting(s)."""


Port = Annotated[int, Field(ge=0, le=65535)]


def default_data_dir() -> Path:
    """Per-user data dir; as root, /var/lib/titan (the embedded PostgreSQL's unprivileged user must be
    able to reach it, which it cannot under /root)."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/titan")
    return Path(platformdirs.user_data_dir("titan", appauthor=False))


def parse_cpu_list(spec: str) -> list[int]:
    """Parse a Linux CPU list ("2-3", "0,2,4-5") into sorted CPU ids."""
    cpus: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo_s, hi_s = part.split("-", 1)
            lo, hi = int(lo_s), int(hi_s)
            if lo > hi:
                raise ValueError(f"bad CPU range {part!r}")
            cpus.update(range(lo, hi + 1))
        else:
            cpus.add(int(part))
    if any(c < 0 for c in cpus):
        raise ValueError("CPU ids must be >= 0")
    return sorted(cpus)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TITAN_", env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    # where things live
    data_dir: Path = Field(default_factory=default_data_dir, description="state: embedded DBs, keys, reports")
    namespace: str = Field("", description="prefix for NATS subjects/streams (several organisms on one NATS)")

    # infrastructure (empty = start embedded ones)
    pg_dsn: str = Field("", description="PostgreSQL DSN; empty = embedded PostgreSQL")
    nats_url: str = Field("", description="NATS URL; empty = embedded nats-server with JetStream")
    nats_monitor_url: str = Field("", description="the NATS server's monitoring endpoint (http://host:8222) for "
                                  "the titan_nats_* metrics; empty = the embedded server's, or none")

    # trading
    mode: Mode = Field(Mode.PAPER, description="paper (default) or live (needs keys and explicit opt-in)")
    venue: str = Field("paper", description="paper, bybit or binance")
    testnet: bool = Field(True, description="use the venue's testnet in live mode")
    live_confirm: bool = Field(False, description="second explicit opt-in required for mode=live")
    api_key: SecretStr = Field(SecretStr(""), description="venue API key (live only)")
    api_secret: SecretStr = Field(SecretStr(""), description="venue API secret (live only)")
    paper_capital: Decimal = Field(Decimal(1000), gt=0, description="paper account's starting equity (quote)")

    # execution service
    execution_host: str = "127.0.0.1"
    execution_port: Port = 50051
    execution_cpus: str = Field("", description="CPU list to pin execution to, e.g. '2-3'")
    replay_window_ms: int = Field(5_000, ge=100, le=600_000, description="accepted signal age")
    hmac_keys_dir: Path | None = Field(None, description="directory of <phase>.key files (a mounted Secret)")
    control_key: SecretStr = Field(SecretStr(""), description="HMAC key for control calls")
    degraded_grace_ms: int = Field(5_000, ge=500, le=600_000, description="how long execution still accepts "
                                   "entries while the ledger is not writing, its events wait for NATS or its lease "
                                   "is unconfirmed")
    outbox_dir: Path | None = Field(None, description="execution's event outbox (empty = "
                                    "<data_dir>/outbox/<namespace>)")
    outbox_fsync: bool = Field(False, description="fdatasync execution's outbox before each ack (machine-crash safe)")

    # phases
    phase_id: str = Field("", description="this phase's id (its TitanPhase's name; empty = the phase kind)")

    # metrics / health
    metrics_port: Port = 9100
    health_port: Port = 8080

    # AI quant
    gemini_api_key: SecretStr = Field(SecretStr(""), description="Gemini key for the AI Quant phase")
    gemini_base_url: str = Field("", description="Gemini API endpoint; empty = the SDK's default (Google's)")

    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")

    @field_validator("namespace")
    @classmethod
    def _namespace_token(cls, v: str) -> str:
        if v:
            Catalog(v)  # validates the token
        return v

    @field_validator("phase_id")
    @classmethod
    def _phase_token(cls, v: str) -> str:
        if v:
            token(v)  # it names KV keys, subjects and the <phase>.key file
        return v

    @field_validator("venue")
    @classmethod
    def _known_venue(cls, v: str) -> str:
        if v not in {"paper", "bybit", "binance"}:
            raise ValueError("must be one of: paper, bybit, binance")
        return v

    @field_validator("execution_cpus")
    @classmethod
    def _cpu_list(cls, v: str) -> str:
        if v:
            parse_cpu_list(v)
        return v

    @field_validator("pg_dsn")
    @classmethod
    def _dsn_scheme(cls, v: str) -> str:
        if v and not v.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql:// or postgres://")
        return v

    @field_validator("nats_url")
    @classmethod
    def _nats_scheme(cls, v: str) -> str:
        if v and not all(u.strip().startswith(("nats://", "tls://", "ws://", "wss://")) for u in v.split(",")):
            raise ValueError("must be nats://host:port (comma-separated for a cluster)")
        return v

    @model_validator(mode="after")
    def _live_needs_opt_in_and_keys(self) -> Settings:
        if self.mode is Mode.LIVE:
            missing = []
            if self.venue == "paper":
                missing.append("TITAN_VENUE (bybit or binance)")
            if not self.live_confirm:
                missing.append("TITAN_LIVE_CONFIRM=true")
            if not self.api_key.get_secret_value():
                missing.append("TITAN_API_KEY")
            if not self.api_secret.get_secret_value():
                missing.append("TITAN_API_SECRET")
            if missing:
                raise ValueError("mode=live needs " + ", ".join(missing))
        return self

    @property
    def catalog(self) -> Catalog:
        return Catalog(self.namespace)

    @property
    def cpus(self) -> list[int]:
        return parse_cpu_list(self.execution_cpus) if self.execution_cpus else []

    @property
    def infra_dir(self) -> Path:
        return self.data_dir / "infra"


def format_validation_error(err: ValidationError) -> str:
    lines = ["invalid Titan configuration:"]
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "settings"
        env = f"TITAN_{loc.upper()}" if e["loc"] else "settings"
        lines.append(f"  {env}: {e['msg']}")
    return "\n".join(lines)


def load_settings(**overrides: object) -> Settings:
    """Load settings from the environment; raise ConfigError naming the bad field(s)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None


def env_snapshot() -> dict[str, str]:
    """TITAN_* variables currently set (values of secrets masked), for diagnostics."""
    secret = ("KEY", "SECRET", "PASSWORD", "TOKEN")
    return {
        k: ("***" if any(s in k for s in secret) else v)
        for k, v in sorted(os.environ.items())
        if k.startswith("TITAN_")
    }
