"""A tracking URI checked before MLflow sees it: which part is wrong, said in a second, with nothing created.

MLflow's own answer to a bad URI is slow or cryptic: an unknown scheme reports that the *model registry* is
unavailable, `postgresql://` without a driver raises `No module named 'psycopg'`, a `file:` store says it is "in
maintenance mode", and a sqlite path under a missing or read-only directory fails inside alembic after the file was
created. `check` catches each of these from the URI alone (plus one TCP connect for network stores), so `rlx train`,
`rlx compare` and `rlx runs` fail with exit 3 naming the scheme, the driver, the directory or the address.

This module imports neither MLflow nor any rlx stage: launch, compare and runs all call it.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from rlx.errors import UnreachableError

# The schemes MLflow 3.17's tracking store registry accepts (`mlflow.tracking._tracking_service.utils`).
DB_DRIVERS = {  # scheme -> (importable modules, any one suffices; what to install)
    "postgresql": (("psycopg2", "psycopg"), "psycopg2-binary"),
    "mysql": (("pymysql", "MySQLdb", "mysql.connector"), "pymysql"),
    "mssql": (("pyodbc", "pymssql"), "pyodbc"),
}
SCHEMES = ("sqlite", "http", "https", "file", *DB_DRIVERS, "databricks", "databricks-uc", "uc")
DB_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
CONNECT_TIMEOUT = 5.0
HINT = "pass --tracking-uri sqlite:////ABS/PATH/mlflow.db (a local store) or http://HOST:PORT (an `mlflow server`)"


def _fail(uri: str, what: str, hint: str = HINT) -> UnreachableError:
    from rlx.redact import redact_text

    return UnreachableError(
        f"MLflow tracking URI {redact_text(uri)}: {what}", where="--tracking-uri / MLFLOW_TRACKING_URI", hint=hint
    )


def scheme_of(uri: str) -> str:
    """`postgresql+psycopg2://...` -> `postgresql`; a bare path -> ``."""
    if "://" not in uri:
        return "file" if uri.startswith("file:") else ""
    return uri.split("://", 1)[0].split("+", 1)[0].lower()


def check(uri: str, *, create: bool) -> None:
    """Raise `UnreachableError` (exit 3) when `uri` cannot work; create nothing.

    `create` says whether the caller will create the store if it is missing (`rlx train`), or only read an existing
    one (`rlx compare`, `rlx runs`), in which case a missing sqlite file is left for the caller to report.
    """
    scheme = scheme_of(uri)
    if scheme == "sqlite":
        _check_sqlite(uri, create=create)
    elif scheme in ("file", ""):
        raise _fail(
            uri,
            "MLflow 3's file store is in maintenance mode and rlx does not write to it",
            "use a sqlite store instead, e.g. --tracking-uri sqlite:////ABS/PATH/mlflow.db "
            "(`mlflow migrate-filestore` moves existing runs into one)",
        )
    elif scheme in DB_DRIVERS:
        modules, package = DB_DRIVERS[scheme]
        if not any(_importable(m) for m in modules):
            raise _fail(
                uri,
                f"the {scheme} scheme needs a database driver, and none of {', '.join(modules)} is installed",
                f"install one into rlx's environment (`pip install {package}`), or use a "
                "sqlite store or an `mlflow server`",
            )
        _check_reachable(uri, DB_PORTS[scheme])
    elif scheme in ("http", "https"):
        _check_reachable(uri, 443 if scheme == "https" else 80)
    elif scheme not in SCHEMES:
        raise _fail(uri, f"unknown scheme '{scheme}'; MLflow stores are {', '.join(s + '://' for s in SCHEMES)}")


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _check_sqlite(uri: str, *, create: bool) -> None:
    raw = uri[len("sqlite://") :]
    if raw in ("", "/", "/:memory:"):
        raise _fail(
            uri,
            "an in-memory sqlite store forgets every run when the process ends",
            "name a file: --tracking-uri sqlite:////ABS/PATH/mlflow.db",
        )
    path = Path(raw[1:] if raw.startswith("/") else raw)
    if path.exists():
        if path.is_dir():
            raise _fail(
                uri,
                f"{path} is a directory, not a sqlite file",
                f"name the file inside it: --tracking-uri sqlite:///{path / 'mlflow.db'}",
            )
        return
    if not create:
        return
    # The nearest existing ancestor must be a writable directory: the store, its lock file and `mlruns/` go there.
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise _fail(
            uri,
            f"{parent} is a file, so {path} cannot be created",
            "pass a path under a directory: --tracking-uri sqlite:////ABS/PATH/mlflow.db",
        )
    if not os.access(parent, os.W_OK | os.X_OK) or _read_only_fs(parent):
        raise _fail(
            uri,
            f"the directory {parent} is not writable, so the store {path.name} cannot be created there",
            "pass a writable location: --tracking-uri sqlite:////ABS/PATH/mlflow.db",
        )


def _read_only_fs(path: Path) -> bool:
    """A read-only mount, which `os.access` misses for root."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _check_reachable(uri: str, default_port: int) -> None:
    parts = urlsplit(uri)
    host = parts.hostname
    if not host:
        raise _fail(uri, "no host name", "write it as SCHEME://HOST:PORT/...")
    try:
        port = parts.port or default_port
    except ValueError:
        raise _fail(uri, "the port is not a number", "write it as SCHEME://HOST:PORT/...") from None
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            pass
    except socket.gaierror:
        raise _fail(
            uri, f"the host name {host!r} does not resolve", "check the host name, or use its IP address"
        ) from None
    except TimeoutError:
        raise _fail(
            uri,
            f"{host}:{port} did not accept a connection within {CONNECT_TIMEOUT:.0f} s",
            "check that the server is up and that no firewall drops the port",
        ) from None
    except OSError as e:
        raise _fail(
            uri,
            f"nothing accepts connections at {host}:{port} ({e.strerror or e})",
            "start the server (e.g. `mlflow server --port PORT`), or pass the right --tracking-uri",
        ) from None


def reason(e: BaseException) -> str:
    """Why a call to a tracking store failed, in a few words instead of urllib3's nested repr.

    "API request to http://H:P/api/2.0/... failed with exception HTTPConnectionPool(host=..., port=...): Max retries
    exceeded with url: ... (Caused by ReadTimeoutError(...))" becomes "no answer within 3 s (read timed out)".
    """
    text = str(e)
    if "Read timed out" in text or "ReadTimeout" in text:
        limit = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT")
        return f"no answer within {limit} s (read timed out)" if limit else "no answer (read timed out)"
    if "ConnectTimeout" in text or "connect timeout" in text.lower():
        return "the connection was not accepted in time (connect timed out)"
    if "Connection refused" in text:
        return "nothing accepts connections (connection refused)"
    if "Name or service not known" in text or "Failed to resolve" in text or "nodename nor servname" in text:
        return "the host name does not resolve"
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return first[:300]
