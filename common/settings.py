"""The one typed settings object of the central services (ingest, CRM link, API).

Read from ``CARGOTRACE_*`` environment variables and an optional ``.env`` file.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, IPvAnyNetwork, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common import basemap

LISTEN = r"^[0-9a-zA-Z.:-]+:[0-9]{1,5}$"  # host:port


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARGOTRACE_", env_file=".env", extra="ignore")

    # Contract: a PostgreSQL URL and mqtt://user:pass@host:port. Unset means embedded services (`up`).
    database_url: str | None = None
    mqtt_url: str | None = None
    # The clustered broker instead (docs/scaling.md): its nodes' NATS URLs, comma-separated. Set, ingest
    # consumes the JetStream consumer of `cargotrace broker init` and needs no CARGOTRACE_MQTT_URL.
    broker_url: str | None = Field(None, pattern=r"^(nats|tls)://[^,\s]+(,(nats|tls)://[^,\s]+)*$")
    data_dir: str = Field("var", description="where `up` keeps the embedded database and broker state")

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # The API's own login role (member of cargotrace_api, not owner, no BYPASSRLS). Unset: the API
    # connects with database_url and switches to cargotrace_api on every connection (SET ROLE).
    api_database_url: str | None = None
    # A read replica for the API's read endpoints (shipments, trails, positions); writes stay on the primary.
    read_database_url: str | None = None
    api_pool_size: int = 20
    # A verified key is trusted this long without a lookup: revocation takes effect within it. 0: every request.
    api_key_cache_seconds: float = 5.0
    # Per API key, per API process (a fixed window); 0 disables.
    api_rate_limit_per_minute: int = 600
    # Refused keys and share tokens per client address and minute, per API process; past it, 429 without
    # a lookup. 0 disables. Behind a reverse proxy the address is the X-Forwarded-For of a trusted proxy
    # (api_forwarded_allow_ips, uvicorn's forwarded_allow_ips: addresses or "*").
    api_auth_failures_per_minute: int = 30
    api_forwarded_allow_ips: str = "127.0.0.1"
    # A request body larger than this is refused (413); one that takes longer to arrive, 408.
    api_max_body_bytes: int = Field(2_097_152, ge=1024)
    api_body_timeout_s: float = Field(10.0, gt=0)
    share_link_days: int = Field(14, ge=1, le=365, description="validity of a shipment's share link")

    ingest_client_id: str = "cargotrace-ingest"
    ingest_batch_events: int = 2000
    ingest_batch_seconds: float = 0.2
    ingest_max_message_bytes: int = 1_048_576
    # An event stamped further ahead of its receipt is a clock fault: quarantined as a dead letter.
    ingest_max_ahead_s: float = Field(300.0, gt=0)
    # Empty: one plain subscription, which Mosquitto 2.0 keeps in the persistent session across a
    # broker restart. A group name ("ingest") splits the stream among workers via $share/..., but
    # Mosquitto 2.0 does not restore shared subscriptions after a restart: messages arriving before
    # the workers subscribe again are dropped (see docs/ingest.md).
    ingest_shared_group: str = ""
    ingest_mqtt_v5: bool = Field(True, description="v5 persistent session and shared subscription; "
                                                   "false for 3.1.1-only brokers (the embedded one)")
    ingest_session_expiry_s: int = 7 * 24 * 3600
    ingest_receive_maximum: int = 1000
    # Clustered broker: a message a worker took and did not acknowledge within this is given to another
    # (a worker waiting for the database says it is still at work). Set on the consumer by broker init.
    ingest_ack_wait_s: float = Field(10.0, gt=0)

    crm_poll_seconds: float = 1.0
    # Tenant defaults of the route exceptions, overriding crm_link.thresholds.Thresholds (JSON in the
    # environment, e.g. {"corridor_m": 500}); customers.exception_thresholds overrides both.
    exception_thresholds: dict[str, float] = Field(default_factory=dict)

    # Webhook URLs resolving to private, loopback or link-local addresses are refused (SSRF) unless
    # allowed here: all of them, or the listed networks (JSON list, e.g. ["10.20.0.0/16"]).
    webhook_allow_private: bool = False
    webhook_allowed_networks: list[IPvAnyNetwork] = Field(default_factory=list)
    webhook_timeout_s: float = 10.0
    webhook_poll_seconds: float = 1.0
    # Notifications for people (docs/notifications.md). A robot's URL must be on its vendor's hosts
    # (crm_link/robots.py HOSTS) unless this allows any host that passes the checks above (a relay).
    notify_any_host: bool = False
    # The address of the installation's pages, for the link in each notice (e.g. https://track.example.com).
    public_url: str | None = None
    # The zone a time is shown in when the shipment's destination site names none (IANA).
    time_zone: str = "Asia/Shanghai"
    # The SMTP relay of email notifications; STARTTLS before login unless smtp_starttls is false.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_from: str = "cargotrace@localhost"
    smtp_ca_file: str | None = Field(None, description="a CA bundle the relay's certificate is checked against")

    # host:port of each process's /metrics and /healthz (Prometheus text); off when unset. The API's
    # is apart from its public port so metrics never pass the reverse proxy.
    ingest_metrics_listen: str | None = Field(None, pattern=LISTEN)
    crm_metrics_listen: str | None = Field(None, pattern=LISTEN)
    api_metrics_listen: str | None = Field(None, pattern=LISTEN)
    geofence_default_radius_m: float = 300.0
    # ABC classes: A while the bigger customers hold less than abc_a of the volume, B below abc_b, else C.
    abc_a: float = Field(0.80, gt=0, le=1)
    abc_b: float = Field(0.95, gt=0, le=1)

    # The pages' base map (docs/operations.md, "Base map"). Unset: no tiles, the pages draw what the
    # system knows (sites, routes, vehicles) on a plain grid, as a closed network needs.
    map_subdomains: str = Field("abc", description="the characters {s} stands for, one a tile request")
    map_tiles: str | None = Field(None, description="tile URL template, e.g. "
                                                    "https://tile.openstreetmap.org/{z}/{x}/{y}.png")
    map_labels: str | None = Field(None, description="a second template drawn over the tiles (place names, "
                                                     "e.g. Tianditu's cva_w)")
    map_attribution: str = Field("", description="the tiles' copyright line, shown on the map")
    map_crs: Literal[basemap.CRS] = Field(  # type: ignore[valid-type]
        "wgs84", description="the tiles' coordinate system: wgs84 (also CGCS2000), gcj02 (AMap, Tencent), bd09 (Baidu)")

    @field_validator("map_tiles", "map_labels")
    @classmethod
    def _tile_template(cls, template: str | None, info: ValidationInfo) -> str | None:
        if not template:
            return None  # an empty variable, as a compose file writes it, is no base map
        basemap.origins(template, info.data.get("map_subdomains", ""))
        return template

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:  # an unknown zone fails at start, not at the first notice
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r}: an IANA name such as Asia/Shanghai") from None
        return zone


@lru_cache
def get_settings() -> Settings:
    return Settings()
