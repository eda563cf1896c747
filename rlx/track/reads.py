"""Reading runs out of MLflow in bulk, for comparisons of a handful to thousands of runs.

Two sources, one interface:

- `SqlSource` for SQL-backed stores (sqlite, postgresql, mysql): it queries MLflow's own tables through MLflow's
  SQLAlchemy store, a few statements for the whole selection. `MlflowClient.search_runs` eagerly loads every param of
  every run (verl logs ~950 per run), which takes ~30 s for 1,000 runs, and one `get_metric_history` round trip per
  run and metric adds 10,000 more; this source needs neither. Run selection with `--filter` still uses MLflow's own
  filter parser and SQL clause builder, so the syntax and its errors are MLflow's.
- `ClientSource` for everything else (a tracking server over HTTP): the public client, paginated, with metric
  histories fetched in a thread pool.

Both return plain data (`RunInfo`, dicts, a pandas frame); `rlx.compare.core` does the rest. mlflow is imported
inside functions only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlx.errors import ConfigError, RlxError, UnreachableError, suggestion
from rlx.track.histories import Histories
from rlx.track.store import INTERACTIVE_HTTP_ENV, env_or_default_uri, sqlite_path

PROVENANCE_ARTIFACT = "rlx/provenance.json"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_CHUNK = 500  # ids per IN (...) list: far below every backend's bind-parameter limit
_SINGLE_STATEMENT = 10_000  # most ids one GROUP BY statement takes (sqlite allows 32,766 bound parameters)
_FULL_SCAN_ABOVE = 200  # sqlite: above this many runs, one scan of the metric keys beats 10,000 index range scans

FILTER_HINT = (
    "MLflow filter syntax: clauses joined by AND (no OR), strings in single quotes, keys with / . - in "
    "backticks, e.g. --filter \"params.`algorithm/adv_estimator` = 'grpo' and metrics.`critic/score/mean` "
    '> 0.5"'
)


@dataclass
class RunInfo:
    """What the comparison needs about a run besides its params and metrics."""

    run_id: str
    name: str
    experiment: str
    mlflow_status: str
    start_ms: int | None
    end_ms: int | None
    artifact_uri: str
    tags: dict[str, str] = field(default_factory=dict)


def _is_remote(uri: str) -> bool:
    return uri.split(":", 1)[0].lower() in {"http", "https", "databricks", "uc"}


@contextlib.contextmanager
def mlflow_errors(uri: str, *, what: str = "reading runs") -> Iterator[None]:
    """Translate MLflow and database failures into RlxErrors: unreachable -> exit 3, bad filter -> exit 1."""
    try:
        yield
    except RlxError:
        raise
    except Exception as e:  # noqa: BLE001 - MLflow raises many types; each is mapped below or re-raised
        text = str(e)
        first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
        name = type(e).__name__
        if (
            "Max retries exceeded" in text
            or "ConnectionError" in name
            or "Connection refused" in text
            or "timed out" in text.lower()
            or name in {"OperationalError", "DatabaseError"}
        ):
            from rlx.redact import redact_text
            from rlx.trackuri import reason

            raise UnreachableError(
                f"MLflow at {redact_text(uri)} is unreachable while {what}: {reason(e)}",
                where=uri,
                hint="check --tracking-uri / MLFLOW_TRACKING_URI and that the server or database is up",
            ) from None
        if name == "MlflowException":
            code = getattr(e, "error_code", "")
            if code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST"):
                raise ConfigError(
                    f"MLflow rejected the query: {first[:500]}", where="--filter", hint=FILTER_HINT
                ) from None
            if code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
                raise ConfigError(first[:500], where=uri) from None
            raise UnreachableError(
                f"MLflow error while {what}: {first[:500]}", where=uri, hint="re-run with --verbose for details"
            ) from None
        if what == "opening the tracking store":  # whatever stops MLflow opening a store is the environment's
            raise UnreachableError(
                f"cannot open the MLflow store: {first[:300]}",
                where=uri,
                hint="check --tracking-uri / MLFLOW_TRACKING_URI",
            ) from None
        raise


def open_source(uri: str | None = None) -> Source:
    """The fastest source for `uri` (default: `env_or_default_uri()`). Nothing is created on disk."""
    from rlx import trackuri

    uri = uri or env_or_default_uri()
    trackuri.check(uri, create=False)
    path = sqlite_path(uri)
    if path is not None and not path.is_file():
        raise UnreachableError(
            f"no MLflow store at {path}",
            where=uri,
            hint="pass --tracking-uri (or set MLFLOW_TRACKING_URI) to the store your runs were "
            "logged to, e.g. --tracking-uri sqlite:////abs/path/mlflow.db",
        )
    if _is_remote(uri):
        for key, value in INTERACTIVE_HTTP_ENV.items():
            os.environ.setdefault(key, value)
    with mlflow_errors(uri, what="opening the tracking store"):
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        store = getattr(getattr(client, "_tracking_client", None), "store", None)
        if store is not None and hasattr(store, "engine") and hasattr(store, "ManagedSessionMaker"):
            return SqlSource(uri, client, store)
        source = ClientSource(uri, client)
        source.experiments()  # fail fast (exit 3) when the server is down
        return source


def _chunks(seq: Sequence[str], n: int = _CHUNK) -> Iterator[list[str]]:
    for i in range(0, len(seq), n):
        yield list(seq[i : i + n])


def quote(value: str) -> str:
    """A string literal for MLflow's filter grammar.

    MLflow strips the quotes of a literal but never unescapes what is inside, so `'it''s'` would search for `it''s`.
    A value with a single quote is therefore written in double quotes (MLflow accepts both); one with both kinds of
    quote cannot be written at all and is refused.
    """
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ConfigError(
        f"cannot search MLflow for a value containing both quote characters: {value!r}",
        hint="select the run by its id instead",
    )


class Source:
    """The reading interface `rlx.compare.core` uses. All methods take and return run ids (32 hex)."""

    uri: str

    def experiments(self) -> dict[str, str]:
        """Active experiments: {experiment_id: name}."""
        raise NotImplementedError

    def experiment_ids(self, names: Sequence[str] | None) -> list[str]:
        """Ids of the named experiments (all active ones when `names` is empty); unknown names are an error."""
        exps = self.experiments()
        if not names:
            return list(exps)
        by_name = {v: k for k, v in exps.items()}
        out = []
        for name in names:
            if name in by_name:
                out.append(by_name[name])
            elif name in exps:  # an experiment id works too
                out.append(name)
            else:
                hint = suggestion(name, by_name)
                raise ConfigError(
                    f"no experiment named '{name}' in {self.uri}",
                    where="--experiment",
                    hint=(hint + " " if hint else "") + "experiments: " + ", ".join(sorted(by_name)[:20])
                    if by_name
                    else "this store has no experiments",
                )
        return out

    def search(
        self, experiment_ids: Sequence[str], filter_string: str = "", max_results: int | None = None
    ) -> list[str]:
        """Run ids in the experiments matching MLflow's `filter_string`, newest first."""
        raise NotImplementedError

    def find(self, selector: str, experiment_ids: Sequence[str]) -> list[str]:
        """Run ids for one positional selector: a run id, or a run name (every run of that name)."""
        if RUN_ID.match(selector.lower()) and self._exists(selector.lower()):
            return [selector.lower()]
        return self.search(experiment_ids, f"attributes.run_name = {quote(selector)}")

    def run_names(self, experiment_ids: Sequence[str], limit: int = 2000) -> list[str]:
        """Some run names in scope, for did-you-mean hints."""
        raise NotImplementedError

    def _exists(self, run_id: str) -> bool:
        raise NotImplementedError

    def infos(self, ids: Sequence[str]) -> dict[str, RunInfo]:
        raise NotImplementedError

    def params(self, ids: Sequence[str], keys: Sequence[str] | None = None) -> dict[str, dict[str, str]]:
        """{run_id: {param key: value}}, restricted to `keys` when given."""
        raise NotImplementedError

    def params_with_prefix(self, ids: Sequence[str], prefix: str) -> dict[str, dict[str, str]]:
        """{run_id: {param key: value}} for the params whose key starts with `prefix` (e.g. `rlx/smoke/`)."""
        return {rid: {k: v for k, v in p.items() if k.startswith(prefix)} for rid, p in self.params(ids).items()}

    def param_summary(self, ids: Sequence[str]) -> tuple[dict[str, int], list[str] | None]:
        """({run_id: number of params}, the keys whose value differs among the runs that have params).

        The second item is None when the source cannot compute it cheaply (then all params are fetched).
        """
        return {rid: len(p) for rid, p in self.params(ids).items()}, None

    def metric_keys(self, ids: Sequence[str]) -> dict[str, set[str]]:
        """The metric keys each run logged."""
        raise NotImplementedError

    def histories(self, ids: Sequence[str], keys: Sequence[str]) -> Histories:
        """Every point of `keys` in the runs `ids`."""
        raise NotImplementedError

    def provenance(self, info: RunInfo) -> list[dict[str, Any]] | None:
        """rlx's provenance artifact of a run (None when the run has none or it cannot be read)."""
        local = _local_artifact_dir(info.artifact_uri)
        if local is not None:
            path = local / PROVENANCE_ARTIFACT
            try:
                return _parse_provenance(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
        try:
            import tempfile

            import mlflow

            with tempfile.TemporaryDirectory(prefix="rlx-prov-") as tmp:
                got = mlflow.artifacts.download_artifacts(
                    run_id=info.run_id, artifact_path=PROVENANCE_ARTIFACT, tracking_uri=self.uri, dst_path=tmp
                )
                return _parse_provenance(Path(got).read_text(encoding="utf-8"))
        except Exception:  # noqa: BLE001 - a missing or unreadable artifact only loses the provenance column
            return None


def _local_artifact_dir(uri: str) -> Path | None:
    if uri.startswith("file://"):
        return Path(uri[len("file://") :])
    if uri.startswith("/"):
        return Path(uri)
    return None


def _parse_provenance(text: str) -> list[dict[str, Any]] | None:
    data = json.loads(text)
    if not isinstance(data, list):
        return None
    return [d for d in data if isinstance(d, dict) and isinstance(d.get("key"), str)]


class SqlSource(Source):
    """Bulk reads on MLflow's SQL schema (runs, tags, params, metrics, latest_metrics, experiments)."""

    def __init__(self, uri: str, client, store) -> None:
        self.uri = uri
        self.client = client
        self.store = store
        self.engine = store.engine
        self.sqlite = self.engine.dialect.name == "sqlite"

    def _rows(self, sql: str, **params: Any) -> list[tuple]:
        """Run `sql` on the raw DB-API connection (tuples, no ORM rows: ~3x faster for millions of rows).

        `sql` names its parameters as `{name}`; a list parameter expands to a parenthesised placeholder list.
        """
        import string

        style = self.engine.dialect.paramstyle
        args: list[Any] = []
        parts: list[str] = []
        for literal, name, _, _ in string.Formatter().parse(sql):
            parts.append(literal)
            if name is None:
                continue
            value = params[name]
            values = list(value) if isinstance(value, (list, tuple)) else [value]
            marks = []
            for v in values:
                args.append(v)
                marks.append({"qmark": "?", "numeric": f":{len(args)}", "named": f":p{len(args)}"}.get(style, "%s"))
            parts.append(f"({', '.join(marks)})" if isinstance(value, (list, tuple)) else marks[0])
        bound: Any = {f"p{i + 1}": a for i, a in enumerate(args)} if style in ("named", "pyformat_named") else args
        with mlflow_errors(self.uri):
            conn = self.engine.raw_connection()
            try:
                cur = conn.cursor()
                cur.execute("".join(parts), bound)
                return [tuple(r) for r in cur.fetchall()] if style != "qmark" else cur.fetchall()
            finally:
                conn.close()

    def _by_ids(self, sql: str, ids: Sequence[str], **params: Any) -> list[tuple]:
        rows: list[tuple] = []
        for part in _chunks(ids):
            rows.extend(self._rows(sql, ids=part, **params))
        return rows

    def experiments(self) -> dict[str, str]:
        rows = self._rows("SELECT experiment_id, name FROM experiments WHERE lifecycle_stage = 'active'")
        return {str(i): n for i, n in rows}

    def _exists(self, run_id: str) -> bool:
        return bool(self._rows("SELECT 1 FROM runs WHERE run_uuid = {r} AND lifecycle_stage = 'active'", r=run_id))

    def find(self, selector: str, experiment_ids: Sequence[str]) -> list[str]:
        # Plain SQL: exact for any name (no filter-grammar quoting); an id is found in any experiment.
        rows = self._rows(
            "SELECT run_uuid FROM runs WHERE ((name = {n} AND experiment_id IN {e}) OR run_uuid = {i}) "
            "AND lifecycle_stage = 'active' ORDER BY start_time DESC",
            n=selector,
            i=selector.lower(),
            e=[int(e) for e in experiment_ids] or [-1],
        )
        return [r[0] for r in rows]

    def run_names(self, experiment_ids: Sequence[str], limit: int = 2000) -> list[str]:
        rows = self._rows(
            "SELECT DISTINCT name FROM runs WHERE experiment_id IN {e} AND lifecycle_stage = 'active' LIMIT {n}",
            e=[int(e) for e in experiment_ids] or [-1],
            n=limit,
        )
        return [r[0] for r in rows if r[0]]

    def search(
        self, experiment_ids: Sequence[str], filter_string: str = "", max_results: int | None = None
    ) -> list[str]:
        if not experiment_ids:
            return []
        try:
            return self._search_sql(experiment_ids, filter_string, max_results)
        except (ImportError, AttributeError, TypeError):
            # MLflow moved its private query helpers: fall back to the public (slower, eager) search.
            return ClientSource(self.uri, self.client).search(experiment_ids, filter_string, max_results)

    def _search_sql(self, experiment_ids: Sequence[str], filter_string: str, max_results: int | None) -> list[str]:
        """MLflow's own `_search_runs` statement, selecting ids only instead of loading every param and tag."""
        from mlflow.store.tracking import sqlalchemy_store as S
        from mlflow.store.tracking.dbmodels.models import SqlRun
        from mlflow.utils.search_utils import SearchUtils
        from sqlalchemy import select

        with mlflow_errors(self.uri):
            parsed = SearchUtils.parse_search_filter(filter_string or "")
            with self.store.ManagedSessionMaker() as session:
                attribute_filters, non_attribute_filters, dataset_filters = S._get_sqlalchemy_filter_clauses(
                    parsed, session, self.store._get_dialect()
                )
                # MLflow's dbmodels are untyped, so the statement's row types are unknown
                stmt: Any = select(SqlRun.run_uuid, SqlRun.start_time)
                for f in non_attribute_filters:
                    stmt = stmt.join(f)
                for f in dataset_filters:
                    stmt = stmt.join(f, SqlRun.run_uuid == f.c.destination_id)
                stmt = (
                    stmt.distinct()
                    .filter(
                        SqlRun.experiment_id.in_([int(e) for e in experiment_ids]),
                        SqlRun.lifecycle_stage == "active",
                        *attribute_filters,
                    )
                    .order_by(SqlRun.start_time.desc(), SqlRun.run_uuid)
                )
                if max_results is not None:
                    stmt = stmt.limit(max_results)
                return [r[0] for r in session.execute(stmt)]

    def infos(self, ids: Sequence[str]) -> dict[str, RunInfo]:
        exps = self.experiments()
        out: dict[str, RunInfo] = {}
        for rid, name, exp, status, start, end, art in self._by_ids(
            "SELECT run_uuid, name, experiment_id, status, start_time, end_time, artifact_uri FROM runs "
            "WHERE run_uuid IN {ids}",
            ids,
        ):
            out[rid] = RunInfo(rid, name or "", exps.get(str(exp), str(exp)), status or "", start, end, art or "")
        for rid, key, value in self._by_ids("SELECT run_uuid, key, value FROM tags WHERE run_uuid IN {ids}", ids):
            if rid in out:
                out[rid].tags[key] = value if value is not None else ""
        return out

    def params(self, ids: Sequence[str], keys: Sequence[str] | None = None) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {rid: {} for rid in ids}
        if keys is None:
            rows = self._by_ids("SELECT run_uuid, key, value FROM params WHERE run_uuid IN {ids}", ids)
        else:
            rows = []
            for part in _chunks(list(keys)):
                rows += self._by_ids(
                    "SELECT run_uuid, key, value FROM params WHERE run_uuid IN {ids} AND key IN {k}", ids, k=part
                )
        for rid, key, value in rows:
            out[rid][key] = value
        return out

    def params_with_prefix(self, ids: Sequence[str], prefix: str) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {rid: {} for rid in ids}
        # A key range, not LIKE (`_` is its wildcard) nor substr (no index): params' primary key starts with `key`.
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        for rid, key, value in self._by_ids(
            "SELECT run_uuid, key, value FROM params WHERE run_uuid IN {ids} AND key >= {lo} AND key < {hi}",
            ids,
            lo=prefix,
            hi=upper,
        ):
            out[rid][key] = value
        return out

    def param_summary(self, ids: Sequence[str]) -> tuple[dict[str, int], list[str] | None]:
        # The database finds the differing keys: 1,000 verl runs hold ~950,000 params, almost all identical.
        counts = dict.fromkeys(ids, 0)
        for rid, n in self._by_ids(
            "SELECT run_uuid, COUNT(*) FROM params WHERE run_uuid IN {ids} GROUP BY run_uuid", ids
        ):
            counts[rid] = int(n)
        having = [r for r in ids if counts[r]]
        if len(having) > _SINGLE_STATEMENT:
            return counts, None
        if not having:
            return counts, []
        rows = self._rows(
            "SELECT key FROM params WHERE run_uuid IN {ids} GROUP BY key "
            "HAVING COUNT(*) < {n} OR MIN(value) <> MAX(value)",
            ids=having,
            n=len(having),
        )
        return counts, [r[0] for r in rows]

    def metric_keys(self, ids: Sequence[str]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {rid: set() for rid in ids}
        for rid, key in self._by_ids("SELECT run_uuid, key FROM latest_metrics WHERE run_uuid IN {ids}", ids):
            out[rid].add(key)
        return out

    def histories(self, ids: Sequence[str], keys: Sequence[str]) -> Histories:
        if not ids or not keys:
            return Histories()
        cols = "SELECT run_uuid, key, step, timestamp, CASE WHEN is_nan THEN NULL ELSE value END FROM metrics"
        if self.sqlite and len(ids) > _FULL_SCAN_ABOVE:
            # One pass over the metric primary key (it starts with `key`), then keep the selected runs.
            rows = self._rows(f"{cols} WHERE key IN {{keys}}", keys=list(keys))
            wanted = set(ids)
            rows = [r for r in rows if r[0] in wanted]
        else:
            rows = self._by_ids(f"{cols} WHERE run_uuid IN {{ids}} AND key IN {{keys}}", ids, keys=list(keys))
        return Histories(rows)


class ClientSource(Source):
    """The public MlflowClient API: for tracking servers, and as the fallback when MLflow's internals move."""

    def __init__(self, uri: str, client) -> None:
        self.uri = uri
        self.client = client
        self._runs: dict[str, Any] = {}
        self._exps: dict[str, str] | None = None

    def experiments(self) -> dict[str, str]:
        if self._exps is None:
            with mlflow_errors(self.uri, what="listing experiments"):
                exps, token = [], None
                while True:
                    page = self.client.search_experiments(max_results=1000, page_token=token)
                    exps.extend(page)
                    token = page.token
                    if not token:
                        break
            self._exps = {e.experiment_id: e.name for e in exps}
        return self._exps

    def search(
        self, experiment_ids: Sequence[str], filter_string: str = "", max_results: int | None = None
    ) -> list[str]:
        if not experiment_ids:
            return []
        ids: list[str] = []
        token = None
        with mlflow_errors(self.uri):
            while True:
                page_size = 1000 if max_results is None else min(1000, max_results - len(ids))
                page = self.client.search_runs(
                    list(experiment_ids),
                    filter_string or "",
                    max_results=page_size,
                    order_by=["attributes.start_time DESC"],
                    page_token=token,
                )
                for run in page:
                    self._runs[run.info.run_id] = run
                    ids.append(run.info.run_id)
                token = page.token
                if not token or (max_results is not None and len(ids) >= max_results):
                    break
        return ids

    def _get(self, run_id: str):
        if run_id not in self._runs:
            with mlflow_errors(self.uri):
                self._runs[run_id] = self.client.get_run(run_id)
        return self._runs[run_id]

    def _exists(self, run_id: str) -> bool:
        try:
            return self._get(run_id).info.lifecycle_stage == "active"
        except ConfigError:
            return False

    def run_names(self, experiment_ids: Sequence[str], limit: int = 2000) -> list[str]:
        ids = self.search(experiment_ids, "", max_results=limit)
        return sorted({self._runs[i].info.run_name for i in ids if self._runs[i].info.run_name})

    def infos(self, ids: Sequence[str]) -> dict[str, RunInfo]:
        exps = self.experiments()
        out = {}
        for rid in ids:
            run = self._get(rid)
            i = run.info
            out[rid] = RunInfo(
                rid,
                i.run_name or "",
                exps.get(i.experiment_id, i.experiment_id),
                i.status,
                i.start_time,
                i.end_time,
                i.artifact_uri or "",
                dict(run.data.tags),
            )
        return out

    def params(self, ids: Sequence[str], keys: Sequence[str] | None = None) -> dict[str, dict[str, str]]:
        want = None if keys is None else set(keys)
        return {rid: {k: v for k, v in self._get(rid).data.params.items() if want is None or k in want} for rid in ids}

    def metric_keys(self, ids: Sequence[str]) -> dict[str, set[str]]:
        return {rid: set(self._get(rid).data.metrics) for rid in ids}

    def histories(self, ids: Sequence[str], keys: Sequence[str]):
        from concurrent.futures import ThreadPoolExecutor

        logged = self.metric_keys(ids)
        jobs = [(rid, key) for rid in ids for key in keys if key in logged[rid]]

        def fetch(job: tuple[str, str]) -> list[tuple]:
            rid, key = job
            with mlflow_errors(self.uri, what=f"reading {key} of run {rid}"):
                return [(rid, key, m.step, m.timestamp, m.value) for m in self.client.get_metric_history(rid, key)]

        rows: list[tuple] = []
        with ThreadPoolExecutor(max_workers=8) as pool:
            for part in pool.map(fetch, jobs):
                rows.extend(part)
        return Histories(rows)
