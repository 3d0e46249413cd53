"""Settings: defaults here, then ``PORTAL_*`` environment variables, then an explicit mapping.

Every setting is listed in README.md. Production (``PORTAL_ENV=production``) refuses to start
on the defaults that are only safe on a developer's machine.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from portal.payments.stripe_gateway import STRIPE_API_VERSION

ENVIRONMENTS = ("development", "testing", "production")

DEFAULTS: dict[str, object] = {
    "ENV": "development",
    # None means "derive": a SQLite file in the instance folder.
    "DATABASE_URL": None,
    # None means: development keeps a generated key in the instance folder; production refuses.
    "SECRET_KEY": None,
    "BASE_URL": "http://127.0.0.1:5000",
    # None means "derive": instance/uploads, which is outside the web root.
    "UPLOAD_DIR": None,
    # Where documents, staged uploads and receipts are kept: file:///folder or s3://bucket/prefix.
    # None means "derive": the folder UPLOAD_DIR as a file: URL.
    "STORAGE_URL": None,
    # An S3-compatible service other than AWS (MinIO, SeaweedFS, Ceph); credentials and region come
    # from the standard AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION).
    "S3_ENDPOINT_URL": None,
    "S3_REGION": None,
    # Server-side encryption of what is written to S3: "" (none, or the bucket's default), "AES256" or "aws:kms".
    "STORAGE_SSE": "",
    "STORAGE_SSE_KMS_KEY_ID": None,
    # The data lifecycle: documents are deleted this many days after their request closes; receipts
    # and refund records are kept this many years for accounting.
    "DOCUMENT_RETENTION_DAYS": 180,
    "FINANCIAL_RETENTION_YEARS": 7,
    "POLICY_FILE": None,
    "LANGUAGES": ("en", "zh", "nl"),
    "DEFAULT_LOCALE": "en",
    "DEFAULT_TIMEZONE": "UTC",
    "FORCE_HTTPS": False,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": False,
    "WTF_CSRF_TIME_LIMIT": 3600 * 8,
    # Five documents of 10 MB and the form around them; a single larger file is refused with a reason.
    "MAX_CONTENT_LENGTH": 52 * 1024 * 1024,
    "SQLALCHEMY_ECHO": False,
    "RATELIMIT_STORAGE_URI": "memory://",
    "RATELIMIT_HEADERS_ENABLED": True,
    "LOOKUP_RATE_LIMIT": "10 per minute;30 per hour",
    "LOOKUP_ORDER_RATE_LIMIT": "10 per hour",
    "MAGIC_LINK_RATE_LIMIT": "5 per hour",
    # How many proxies in front set X-Forwarded-For/-Proto (0: none, the client talks to us directly).
    "PROXY_COUNT": 0,
    # Email. No MAIL_SERVER (the embedded default) writes each message as an .eml file into
    # OUTBOX_DIR instead of sending it. The MAIL_* names are Flask-Mail's own settings.
    "MAIL_SERVER": "",
    "MAIL_PORT": 25,
    "MAIL_USE_TLS": False,
    "MAIL_USE_SSL": False,
    "MAIL_USERNAME": None,
    "MAIL_PASSWORD": None,
    # None: the company name and support address from emails/brand.toml.
    "MAIL_DEFAULT_SENDER": None,
    # Flask-Mail would silently drop every message when TESTING is on; the suite talks to a real
    # SMTP server instead, so sending is never suppressed.
    "MAIL_SUPPRESS_SEND": False,
    # Flask-Mail opens SMTP without a timeout; a hung server must not hang the worker.
    "MAIL_TIMEOUT": 10,
    # None means "derive": instance/outbox.
    "OUTBOX_DIR": None,
    "OUTBOX_MAX_ATTEMPTS": 8,
    "OUTBOX_POLL_SECONDS": 2,
    # How long a claimed message is left to the worker sending it; a worker that died mid-send
    # leaves its message to be tried again after this.
    "OUTBOX_LEASE_SECONDS": 300,
    # Staff sign-in.
    "LOGIN_RATE_LIMIT": "5 per minute;30 per hour",
    "STAFF_IDLE_MINUTES": 30,
    # Second factor for staff: "required" (everyone), "admins" (admins must, others may) or "optional".
    "STAFF_MFA": "admins",
    # Staged uploads (documents of a form not yet accepted) are deleted after this long.
    "STAGING_MAX_AGE_MINUTES": 60,
    # What one browser session may keep staged at once, in bytes (all its forms together).
    "STAGING_QUOTA_BYTES": 60 * 1024 * 1024,
    # Refund filings and answers with documents per client.
    "FILING_RATE_LIMIT": "10 per minute;60 per hour",
    # Payments: "manual" (staff refund in the processor's dashboard and record the reference) or
    # "stripe" (the official library refunds the order's charge).
    "PAYMENT_GATEWAY": "manual",
    "STRIPE_API_KEY": None,
    "STRIPE_API_BASE": None,  # None: Stripe's own API
    "STRIPE_TIMEOUT": 30,
    "STRIPE_MAX_NETWORK_RETRIES": 2,
    # The Stripe API version the code reads and is tested with; every call sends it, every event must carry it.
    "STRIPE_API_VERSION": STRIPE_API_VERSION,
    # The signing secret of the /webhooks/stripe endpoint (whsec_…); None refuses every event.
    "STRIPE_WEBHOOK_SECRET": None,
    # How old a signed Stripe event may be: Stripe's own default tolerance against replays.
    "STRIPE_WEBHOOK_TOLERANCE": 300,
    # The JSON API: requests per token (or per client without one).
    "API_RATE_LIMIT": "600 per minute",
    # Outgoing webhooks: how long a subscriber may take to answer.
    "WEBHOOK_TIMEOUT": 10,
    # After an endpoint's secret is rotated, the old one still signs (a second signature) this long.
    "WEBHOOK_SECRET_OVERLAP_HOURS": 24,
    # What the processor keeps of a charge on a refund, for the business-cost figures.
    "PROCESSOR_FEE_PERCENT": "2.9",
    "PROCESSOR_FEE_FIXED_MINOR": 30,
    # Logs on standard error: "json" (one JSON object a line) or "console" (readable lines).
    # None: json in production, console elsewhere.
    "LOG_FORMAT": None,
    "LOG_LEVEL": "INFO",
    # /metrics answers only a scraper sending this as a Bearer token; None: no /metrics at all.
    "METRICS_TOKEN": None,
    # Inbound email: the domain of the reply addresses (reply+<token>@domain); empty, no Reply-To.
    "INBOUND_DOMAIN": "",
    # The largest inbound message accepted (bytes), attachments included.
    "INBOUND_MAX_BYTES": 26214400,
    # The loop guard: at most this many messages from one address within INBOUND_LOOP_WINDOW_MINUTES.
    "INBOUND_LOOP_LIMIT": 10,
    "INBOUND_LOOP_WINDOW_MINUTES": 10,
    # Where `portal mail serve` listens, and whether it speaks LMTP (behind an MTA) or SMTP.
    "INBOUND_LISTEN_HOST": "127.0.0.1",
    "INBOUND_LISTEN_PORT": 8024,
    "INBOUND_PROTOCOL": "lmtp",
    # How long a portal session's one-time URL (POST /api/v1/portal-sessions) stays valid.
    "PORTAL_SESSION_MINUTES": 10,
    # Paddle Billing (merchant of record): PAYMENT_GATEWAY "paddle" refunds as Paddle adjustments.
    "PADDLE_API_KEY": None,
    "PADDLE_API_BASE": None,  # None: Paddle's production API (https://sandbox-api.paddle.com for the sandbox)
    "PADDLE_TIMEOUT": 30,
    # The notification destination's secret key (pdl_ntfset_…); None: /webhooks/paddle answers 404.
    "PADDLE_WEBHOOK_SECRET": None,
    "PADDLE_WEBHOOK_TOLERANCE": 5,  # seconds of drift allowed on Paddle-Signature's ts (the SDK's default)
    # Automation: the rules file (None: portal/policy/default_automation.toml), the cooling-off
    # period before a rule approves, and the days after which an unanswered request is closed.
    "AUTOMATION_FILE": None,
    "AUTOMATION_DELAY_MINUTES": 60,
    "AWAITING_CLOSE_DAYS": 14,
    # The staff desk: hours after filing (not counting waits on the customer) a request is due, and
    # whether new requests are given to the active agents in turn.
    "SLA_HOURS": 24,
    "ROUND_ROBIN": False,
}

MIN_SECRET_LENGTH = 32


class ConfigError(RuntimeError):
    """The configuration is unsafe or incomplete; the message says what to set."""


def normalize_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever spelling the operator gave."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def engine_options(url: str) -> dict:
    if url.startswith("postgresql"):
        # psycopg prepares a statement after 5 runs and PostgreSQL may then keep a generic plan
        # that scans instead of using the index (seen: 0.6 s instead of 10 ms per lookup in the
        # orders import). Turning it off also keeps the portal usable behind PgBouncer.
        return {"connect_args": {"prepare_threshold": None}, "pool_pre_ping": True}
    return {}


def load_secret_key(instance_path: Path) -> str:
    """A development key generated once and kept, so sessions survive restarts."""
    key_file = instance_path / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


# Settings below which the portal would do harm (retention of zero days deletes documents at once).
MINIMUMS = {"DOCUMENT_RETENTION_DAYS": 1, "FINANCIAL_RETENTION_YEARS": 1}


def _check_numbers(config: dict) -> None:
    """Every setting whose default is a number must be one, not negative (at least its minimum): a
    typo in PORTAL_DOCUMENT_RETENTION_DAYS is one line at start, not a traceback in the worker."""
    for key, default in DEFAULTS.items():
        if isinstance(default, bool) or not isinstance(default, int | float):
            continue
        value = config.get(key, default)
        if isinstance(value, str) and value.strip().isdigit():
            value = config[key] = int(value)
        name = key if key.startswith("PORTAL_") else f"PORTAL_{key}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name} must be a number, not {value!r}.")
        if value < MINIMUMS.get(key, 0):
            raise ConfigError(f"{name} must be at least {MINIMUMS.get(key, 0)}, not {value!r}.")


def finalize(config: dict, instance_path: Path) -> None:
    """Derive what was left unset and refuse what is unsafe for the environment."""
    env = config["ENV"]
    if env not in ENVIRONMENTS:
        raise ConfigError(f"PORTAL_ENV must be one of {', '.join(ENVIRONMENTS)}, not {env!r}.")
    problems = []
    if env == "production":
        key = config.get("SECRET_KEY")
        if not key:
            problems.append("PORTAL_SECRET_KEY is not set.")
        elif len(str(key)) < MIN_SECRET_LENGTH:
            problems.append(f"PORTAL_SECRET_KEY is shorter than {MIN_SECRET_LENGTH} characters.")
        if not str(config.get("BASE_URL", "")).startswith("https://"):
            problems.append("PORTAL_BASE_URL must be the public https:// address of the portal.")
        if not config.get("DATABASE_URL"):
            problems.append("PORTAL_DATABASE_URL is not set (the embedded SQLite file is for development).")
        if config.get("DEBUG"):
            problems.append("debug mode is on.")
        if config.get("PAYMENT_GATEWAY") == "stripe" and not config.get("STRIPE_API_KEY"):
            problems.append("PORTAL_PAYMENT_GATEWAY is stripe but PORTAL_STRIPE_API_KEY is not set.")
        storage = str(config.get("RATELIMIT_STORAGE_URI") or "memory://")
        if storage.startswith("memory://"):
            problems.append(
                "PORTAL_RATELIMIT_STORAGE_URI must point at storage every worker shares, such as "
                "redis://host:6379 (memory:// counts per worker, so limits multiply)."
            )
        if config.get("PAYMENT_GATEWAY") == "paddle" and not config.get("PADDLE_API_KEY"):
            problems.append("PORTAL_PAYMENT_GATEWAY is paddle but PORTAL_PADDLE_API_KEY is not set.")
        if not config.get("MAIL_SERVER"):
            problems.append("PORTAL_MAIL_SERVER is not set (emails written to files never reach customers).")
        if problems:
            raise ConfigError("Refusing to start in production: " + " ".join(problems))
        config["SESSION_COOKIE_SECURE"] = True
        config["FORCE_HTTPS"] = True
    elif not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = load_secret_key(instance_path)

    url = config.get("DATABASE_URL") or f"sqlite:///{instance_path / 'portal.sqlite3'}"
    config["DATABASE_URL"] = normalize_database_url(str(url))
    config["SQLALCHEMY_DATABASE_URI"] = config["DATABASE_URL"]
    config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(config["DATABASE_URL"]))
    config["BASE_URL"] = str(config.get("BASE_URL") or DEFAULTS["BASE_URL"]).rstrip("/")
    config["UPLOAD_DIR"] = str(Path(config.get("UPLOAD_DIR") or instance_path / "uploads").resolve())
    config["STORAGE_URL"] = str(config.get("STORAGE_URL") or Path(config["UPLOAD_DIR"]).as_uri())
    if not config["STORAGE_URL"].startswith(("file://", "s3://")):
        raise ConfigError(f"PORTAL_STORAGE_URL must start with file:// or s3://, not {config['STORAGE_URL']!r}.")
    if config.get("PAYMENT_GATEWAY", "manual") not in ("manual", "stripe", "paddle"):
        raise ConfigError(
            f"PORTAL_PAYMENT_GATEWAY must be manual, stripe or paddle, not {config.get('PAYMENT_GATEWAY')!r}."
        )
    if config.get("STAFF_MFA", "admins") not in ("required", "admins", "optional"):
        raise ConfigError(f"PORTAL_STAFF_MFA must be required, admins or optional, not {config.get('STAFF_MFA')!r}.")
    config["OUTBOX_DIR"] = str(Path(config.get("OUTBOX_DIR") or instance_path / "outbox").resolve())
    config["LOG_FORMAT"] = config.get("LOG_FORMAT") or ("json" if env == "production" else "console")
    if config["LOG_FORMAT"] not in ("json", "console"):
        raise ConfigError(f"PORTAL_LOG_FORMAT must be json or console, not {config['LOG_FORMAT']!r}.")
    if str(config.get("LOG_LEVEL", "INFO")).upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"PORTAL_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {config['LOG_LEVEL']!r}.")
    _check_database_url(config["DATABASE_URL"])
    _check_numbers(config)


def _check_database_url(url: str) -> None:
    """A URL SQLAlchemy cannot even parse is a typo; say so before anything tries to connect."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        make_url(url).get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as error:
        raise ConfigError(f"PORTAL_DATABASE_URL is not a database URL SQLAlchemy understands ({error}).") from None
