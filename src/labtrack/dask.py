"""Log to a tracking server from Dask workers, as the notebook's user.

The notebook side (``DaskTracking``) reads the notebook's tracking settings: the tracking URI,
the credentials the ``mlflow`` client uses (``MLFLOW_TRACKING_TOKEN`` or
``MLFLOW_TRACKING_USERNAME``/``PASSWORD``), the active run (the parent) and its experiment. It
hands them to every worker through a Dask worker plugin (``TrackingPlugin``), which sets the
``mlflow`` environment in each worker process when it joins and restores it when the plugin is
removed. Tasks wrapped by ``DaskTracking.submit``/``map`` (or using ``child_run`` themselves)
then run as child runs of the notebook's run::

    import mlflow
    from distributed import Client
    from labtrack.dask import DaskTracking

    def train(cfg):
        mlflow.log_params(cfg)
        for epoch in range(50):
            mlflow.log_metric("loss", 1 / (epoch + 1), step=epoch)
        return 1 / 50

    client = Client()
    with mlflow.start_run(run_name="sweep"):
        with DaskTracking(client) as tracking:
            losses = client.gather(tracking.map(train, configs))

Credentials never travel as task arguments, so task graphs hold none; the plugin keeps them in
``Secret`` objects whose ``repr``/``str`` are redacted and whose pickled form (what the
scheduler stores and sends to workers) is masked with a random key, so no clear text shows up in
the dashboard, logs or spilled bytes. Against labtrack, the workers by default get a short-lived
personal access token minted for the sweep and revoked when it ends, never the notebook's own
password or token (see docs/notebooks-and-dask.md).

This module imports nothing of labtrack's server (no app, store, uvicorn or psycopg): only
``distributed`` at import time, and ``mlflow`` and ``requests`` when used.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from distributed.diagnostics.plugin import WorkerPlugin

__all__ = [
    "ChildRun",
    "DaskTracking",
    "Secret",
    "TrackingPlugin",
    "TrackingSettings",
    "child_run",
    "ERROR_TAG",
    "TRACEBACK_TAG",
]

log = logging.getLogger("labtrack.dask")

PLUGIN_NAME = "labtrack-tracking"
PARENT_TAG = "mlflow.parentRunId"
USER_TAG = "mlflow.user"
ERROR_TAG = "labtrack.error"
TRACEBACK_TAG = "labtrack.traceback"
SWEEP_TAG = "labtrack.dask.sweep"
TASK_TAG = "labtrack.dask.task"
WORKER_TAG = "labtrack.dask.worker"
# The server keeps at most 8000 characters of a tag value (MLflow's limit too).
MAX_TAG_CHARS = 8000
DEFAULT_TOKEN_TTL_S = 24 * 3600.0

# Variables the tracking client reads; the plugin sets or clears each of them on a worker.
CREDENTIAL_VARS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
# Passed through from the notebook as they are (not secret: flags and file paths).
PASSTHROUGH_VARS = (
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
)
# A worker inheriting these from whoever started it would log to the wrong run or experiment.
CLEARED_VARS = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME")


# --------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------


def _keystream(key: bytes, length: int) -> bytes:
    blocks = []
    for counter in range((length + 31) // 32):
        blocks.append(hmac.digest(key, counter.to_bytes(8, "big"), "sha256"))
    return b"".join(blocks)[:length]


def _mask(key: bytes, data: bytes) -> bytes:
    masked = bytes(a ^ b for a, b in zip(data, _keystream(key, len(data)), strict=True))
    tag = hmac.digest(key, b"labtrack-secret" + masked, "sha256")
    return masked + tag


def _unmask(key: bytes, blob: bytes) -> Secret:
    masked, tag = blob[:-32], blob[-32:]
    if not hmac.compare_digest(tag, hmac.digest(key, b"labtrack-secret" + masked, "sha256")):
        raise ValueError("corrupted secret")
    data = bytes(a ^ b for a, b in zip(masked, _keystream(key, len(masked)), strict=True))
    return Secret(data.decode())


class Secret:
    """A credential that does not show itself: ``repr``/``str`` are redacted, and its pickled
    form is masked with a fresh random key (the key travels alongside it, so this keeps clear
    text out of logs, dashboards and dumps; it does not hide it from code running on the
    cluster, which can act as the user anyway). ``reveal()`` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret holds a str")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(
            self._value.encode(), other._value.encode()
        )

    def __hash__(self) -> int:
        return hash(hashlib.sha256(self._value.encode()).digest())

    def __reduce__(self):
        key = secrets.token_bytes(32)
        return (_unmask, (key, _mask(key, self._value.encode())))


def _secret(value: str | Secret | None) -> Secret | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, Secret) else Secret(value)


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackingSettings:
    """Where and as whom workers log. ``TrackingSettings.from_environment()`` reads the
    notebook's; the fields can also be given by hand (``password``/``token`` as str or Secret)."""

    tracking_uri: str
    experiment_id: str | None = None
    parent_run_id: str | None = None
    username: str | None = None
    password: Secret | None = None
    token: Secret | None = None
    # The ``mlflow.user`` tag children get (default: the parent's, else the username).
    user: str | None = None
    # Non-secret client settings passed through to the workers (TLS options, timeouts).
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        uri = self.tracking_uri
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https"):
            raise ValueError(
                f"Dask workers need a tracking server: the tracking URI must be http(s)://..., "
                f"not {_strip_userinfo(uri)!r} (set MLFLOW_TRACKING_URI or "
                "mlflow.set_tracking_uri())."
            )
        # Credentials written into the URI move to the credential fields, out of sight.
        if parts.username is not None or parts.password is not None:
            object.__setattr__(self, "tracking_uri", _strip_userinfo(uri))
            if self.username is None and parts.username:
                object.__setattr__(self, "username", unquote(parts.username))
            if self.password is None and parts.password:
                object.__setattr__(self, "password", Secret(unquote(parts.password)))
        object.__setattr__(self, "password", _secret(self.password))
        object.__setattr__(self, "token", _secret(self.token))
        object.__setattr__(self, "extra_env", dict(self.extra_env))
        if self.password is not None and not self.username:
            raise ValueError("a password needs a username")

    @classmethod
    def from_environment(cls, **overrides: Any) -> TrackingSettings:
        """The notebook's settings, as the ``mlflow`` client in this process would use them:
        ``mlflow.get_tracking_uri()``, the credentials from the environment (or
        ``~/.mlflow/credentials``), and the active run as parent, with its experiment (else the
        current experiment). Keyword arguments override any field."""
        import mlflow
        from mlflow.utils.credentials import read_mlflow_creds

        creds = read_mlflow_creds()
        run = mlflow.active_run()
        experiment_id = run.info.experiment_id if run else _current_experiment_id()
        fields: dict[str, Any] = {
            "tracking_uri": mlflow.get_tracking_uri(),
            "experiment_id": experiment_id,
            "parent_run_id": run.info.run_id if run else None,
            "username": creds.username or None,
            "password": creds.password or None,
            "token": os.environ.get("MLFLOW_TRACKING_TOKEN") or None,
            "user": (run.data.tags.get(USER_TAG) if run else None) or creds.username or None,
            "extra_env": {k: os.environ[k] for k in PASSTHROUGH_VARS if os.environ.get(k)},
        }
        fields.update(overrides)
        return cls(**fields)

    @property
    def auth(self) -> str:
        """How the workers sign in: ``basic``, ``token`` or ``none``."""
        if self.username and self.password:
            return "basic"
        return "token" if self.token else "none"

    def worker_env(self) -> dict[str, str | None]:
        """The environment a worker gets (None: the variable is removed)."""
        env: dict[str, str | None] = {name: None for name in (*CREDENTIAL_VARS, *CLEARED_VARS)}
        env["MLFLOW_TRACKING_URI"] = self.tracking_uri
        if self.experiment_id is not None:
            env["MLFLOW_EXPERIMENT_ID"] = str(self.experiment_id)
        if self.auth == "basic":
            env["MLFLOW_TRACKING_USERNAME"] = self.username
            env["MLFLOW_TRACKING_PASSWORD"] = self.password.reveal()  # type: ignore[union-attr]
        elif self.auth == "token":
            env["MLFLOW_TRACKING_TOKEN"] = self.token.reveal()  # type: ignore[union-attr]
        # Each child run would print its URL to the worker's stdout.
        env["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
        env.update(self.extra_env)
        return env

    def secret_values(self) -> list[str]:
        return [s.reveal() for s in (self.password, self.token) if s]

    def __repr__(self) -> str:
        return (
            f"TrackingSettings(tracking_uri={self.tracking_uri!r}, "
            f"experiment_id={self.experiment_id!r}, parent_run_id={self.parent_run_id!r}, "
            f"auth={self.auth!r}, user={self.user!r})"
        )


def _strip_userinfo(uri: str) -> str:
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _current_experiment_id() -> str | None:
    experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
    if experiment_id:
        return experiment_id
    try:  # What mlflow.start_run() would use: set_experiment() or MLFLOW_EXPERIMENT_NAME.
        from mlflow.tracking.fluent import _get_experiment_id

        return _get_experiment_id()
    except Exception:  # pragma: no cover - private API moved; children then use the default
        return None


# --------------------------------------------------------------------------------------------
# Worker side
# --------------------------------------------------------------------------------------------

_state_lock = threading.Lock()
_worker_settings: TrackingSettings | None = None
# Child runs open in this process; ended as KILLED if the plugin goes away.
_open_runs: set[str] = set()


class TrackingPlugin(WorkerPlugin):
    """Gives each worker process the tracking settings: sets the ``MLFLOW_*`` environment on
    setup (for the worker's lifetime, new workers included) and restores it on teardown, ending
    child runs still open in that worker as KILLED."""

    name = PLUGIN_NAME
    idempotent = False  # registering again replaces the settings

    def __init__(self, settings: TrackingSettings) -> None:
        self.settings = settings
        self._saved: dict[str, str | None] = {}

    def __repr__(self) -> str:
        return f"TrackingPlugin({self.settings!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"settings": self.settings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.settings = state["settings"]
        self._saved = {}

    def setup(self, worker: Any = None) -> None:
        global _worker_settings
        env = self.settings.worker_env()
        with _state_lock:
            self._saved = {name: os.environ.get(name) for name in env}
            _apply_env(env)
            _worker_settings = self.settings
        _reset_mlflow_uri(self.settings.tracking_uri)

    def teardown(self, worker: Any = None) -> None:
        global _worker_settings
        with _state_lock:
            open_runs = list(_open_runs)
            _open_runs.clear()
        for run_id in open_runs:
            _terminate(run_id, "KILLED", "the Dask worker plugin was removed or the worker closed")
        # First: mlflow.set_tracking_uri(None) also removes MLFLOW_TRACKING_URI from the env.
        _reset_mlflow_uri(None)
        with _state_lock:
            if _worker_settings is self.settings:
                _worker_settings = None
            _apply_env(self._saved)
            self._saved = {}


def _apply_env(env: Mapping[str, str | None]) -> None:
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _reset_mlflow_uri(uri: str | None) -> None:
    """A tracking URI set in-process wins over the environment; align it if mlflow is loaded."""
    if "mlflow" in sys.modules:
        sys.modules["mlflow"].set_tracking_uri(uri)


def current_settings() -> TrackingSettings | None:
    """The settings the plugin gave this worker process (None outside a tracked worker)."""
    return _worker_settings


def _task_tags() -> dict[str, str]:
    tags: dict[str, str] = {}
    try:
        from distributed import get_worker
        from distributed.worker import thread_state

        key = getattr(thread_state, "key", None)
        if key is not None:
            tags[TASK_TAG] = str(key)[:250]
        tags[WORKER_TAG] = get_worker().address
    except Exception:  # not inside a Dask task
        pass
    return tags


def _redact(text: str, secret_values: Iterable[str]) -> str:
    for value in secret_values:
        if value:
            text = text.replace(value, "***")
    return text


def _terminate(run_id: str, status: str, reason: str | None = None) -> None:
    """End a run by id, best effort (the worker may be going away)."""
    try:
        from mlflow import MlflowClient
        from mlflow.entities import RunTag

        client = MlflowClient()
        if reason:
            client.log_batch(run_id, tags=[RunTag(ERROR_TAG, reason)])
        client.set_terminated(run_id, status)
    except Exception as exc:  # pragma: no cover - server unreachable while shutting down
        log.warning("could not mark run %s %s: %s", run_id, status, type(exc).__name__)


def _record_failure(run_id: str, exc: BaseException, secret_values: list[str]) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import RunTag

    message = _redact(f"{type(exc).__name__}: {exc}", secret_values)
    trace = _redact("".join(traceback.format_exception(exc)), secret_values)
    if len(message) > MAX_TAG_CHARS:
        message = message[: MAX_TAG_CHARS - 3] + "..."
    if len(trace) > MAX_TAG_CHARS:  # keep the end: the innermost frames and the error
        trace = "..." + trace[-(MAX_TAG_CHARS - 3) :]
    MlflowClient().log_batch(
        run_id, tags=[RunTag(ERROR_TAG, message), RunTag(TRACEBACK_TAG, trace)]
    )


@contextlib.contextmanager
def child_run(
    run_name: str | None = None,
    *,
    tags: Mapping[str, Any] | None = None,
    parent_run_id: str | None = None,
    experiment_id: str | None = None,
    sweep_id: str | None = None,
) -> Iterator[Any]:
    """Run the body as a child run (use inside a Dask task; yields ``mlflow.ActiveRun``).

    The parent and experiment default to the ones the plugin gave this worker. The run ends
    FINISHED; if the body raises, the error (``labtrack.error``) and its traceback
    (``labtrack.traceback``) are stored as tags, the run ends FAILED and the exception
    propagates (so Dask reports the task as failed). KeyboardInterrupt and the like end it KILLED.
    """
    import mlflow

    settings = _worker_settings
    parent = parent_run_id or (settings.parent_run_id if settings else None)
    experiment = experiment_id or (settings.experiment_id if settings else None)
    all_tags: dict[str, str] = _task_tags()
    if settings is not None and settings.user:
        all_tags[USER_TAG] = settings.user
    if sweep_id:
        all_tags[SWEEP_TAG] = sweep_id
    all_tags.update({k: str(v) for k, v in (tags or {}).items()})
    outer = mlflow.active_run()
    if outer is None and parent:
        # Tag the parent directly instead of start_run(parent_run_id=...), which would first
        # fetch the parent run: one request per task saved; DaskTracking.start() checked it.
        all_tags[PARENT_TAG] = parent
        active = mlflow.start_run(run_name=run_name, experiment_id=experiment, tags=all_tags)
    else:  # inside a run the task opened itself: nest under it
        active = mlflow.start_run(
            run_name=run_name,
            experiment_id=experiment if outer is None else outer.info.experiment_id,
            tags=all_tags,
            nested=outer is not None,
        )
    run_id = active.info.run_id
    with _state_lock:
        _open_runs.add(run_id)
    status = "FINISHED"
    try:
        yield active
    except Exception as exc:
        status = "FAILED"
        try:
            _record_failure(run_id, exc, settings.secret_values() if settings else [])
        except Exception as record_exc:  # keep the task's own error; say why the tag is missing
            log.warning("could not record the error of run %s: %r", run_id, record_exc)
        raise
    except BaseException:
        status = "KILLED"
        raise
    finally:
        with _state_lock:
            _open_runs.discard(run_id)
        try:
            _end(run_id, status)
        except Exception as end_exc:
            if status == "FINISHED":
                raise  # the body succeeded: a run that cannot be ended is the task's error
            log.warning("could not end run %s as %s: %r", run_id, status, end_exc)


def _end(run_id: str, status: str) -> None:
    """End our run, and runs the body left open above it on this thread's stack."""
    import mlflow

    stack_ids = []
    run = mlflow.active_run()
    while run is not None and run.info.run_id != run_id and run.info.run_id not in stack_ids:
        stack_ids.append(run.info.run_id)
        mlflow.end_run(status)
        run = mlflow.active_run()
    if run is not None and run.info.run_id == run_id:
        mlflow.end_run(status)
    else:  # the body ended it itself, or it is not on this thread's stack
        from mlflow import MlflowClient

        if MlflowClient().get_run(run_id).info.status == "RUNNING":
            MlflowClient().set_terminated(run_id, status)


class ChildRun:
    """``fn`` wrapped to run as a child run when called: ``client.submit(ChildRun(fn), x)``.

    ``run_name`` is a string, or a callable given the task's arguments that returns one.
    Picklable if ``fn`` is. Holds no credentials."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        run_name: str | Callable[..., str] | None = None,
        tags: Mapping[str, Any] | None = None,
        parent_run_id: str | None = None,
        experiment_id: str | None = None,
        sweep_id: str | None = None,
    ) -> None:
        self.fn = fn
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.parent_run_id = parent_run_id
        self.experiment_id = experiment_id
        self.sweep_id = sweep_id
        # Dask names tasks after __name__.
        self.__name__ = getattr(fn, "__name__", "child_run")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        name = self.run_name(*args, **kwargs) if callable(self.run_name) else self.run_name
        with child_run(
            name,
            tags=self.tags,
            parent_run_id=self.parent_run_id,
            experiment_id=self.experiment_id,
            sweep_id=self.sweep_id,
        ):
            return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"ChildRun({self.__name__}, parent_run_id={self.parent_run_id!r})"


# --------------------------------------------------------------------------------------------
# Notebook side
# --------------------------------------------------------------------------------------------


class DaskTracking:
    """Connect a Dask client's workers to the notebook's tracking settings for a sweep.

    ``start()`` (or entering the ``with`` block) registers the worker plugin; ``submit``/``map``
    run functions as child runs of ``settings.parent_run_id``. ``close()`` (leaving the block)
    waits for the sweep's tasks (cancels them if the block raised), removes the plugin from the
    workers, marks children still RUNNING (their worker was lost) KILLED, and revokes the
    delegated token.

    ``delegate``: ``"auto"`` (default) gives the workers a personal access token minted for the
    sweep when the server is labtrack with authentication on (expires after ``token_ttl_s``,
    revoked by ``close()``), and otherwise the notebook's own credentials; ``True`` requires a
    minted token; ``False`` always passes the notebook's credentials.
    """

    def __init__(
        self,
        client: Any,
        settings: TrackingSettings | None = None,
        *,
        delegate: bool | str = "auto",
        token_ttl_s: float = DEFAULT_TOKEN_TTL_S,
        plugin_name: str = PLUGIN_NAME,
    ) -> None:
        if delegate not in (True, False, "auto"):
            raise ValueError("delegate is True, False or 'auto'")
        self.client = client
        self.settings = settings or TrackingSettings.from_environment()
        self.delegate = delegate
        self.token_ttl_s = token_ttl_s
        self.plugin_name = plugin_name
        self.sweep_id = uuid.uuid4().hex
        self.worker_settings: TrackingSettings | None = None
        self._token_id: str | None = None
        self._futures: list[Any] = []
        self._started = False

    def __repr__(self) -> str:
        return f"DaskTracking({self.settings!r}, sweep_id={self.sweep_id!r})"

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> DaskTracking:
        if self._started:
            return self
        settings = self.settings
        if settings.parent_run_id:
            # Once here instead of once per task: the parent exists, is live, and we may read it
            # (this also fails early, with a clear answer, on wrong credentials).
            run = self._request(
                "GET", "/api/2.0/mlflow/runs/get", params={"run_id": settings.parent_run_id}
            )["run"]["info"]
            if run.get("lifecycle_stage") == "deleted":
                raise ValueError(f"the parent run {settings.parent_run_id} is deleted")
            if not settings.experiment_id:
                settings = replace(settings, experiment_id=run["experiment_id"])
                self.settings = settings
        worker_settings = settings
        if settings.auth != "none" and self.delegate:
            token = self._mint_token()
            if token is not None:
                worker_settings = replace(settings, username=None, password=None, token=token)
        self.worker_settings = worker_settings
        try:
            self.client.register_plugin(TrackingPlugin(worker_settings), name=self.plugin_name)
        except BaseException:
            self._revoke_token()
            raise
        self._started = True
        log.info(
            "workers log to %s as %s (%s)",
            settings.tracking_uri,
            settings.user,
            worker_settings.auth,
        )
        return self

    def close(self, *, cancel: bool = False) -> None:
        if not self._started:
            return
        self._started = False
        try:
            pending = [f for f in self._futures if not f.done()]
            if pending:
                if cancel:
                    self.client.cancel(pending)
                else:
                    from distributed import wait

                    wait(pending)
            with contextlib.suppress(Exception):
                self.client.unregister_worker_plugin(self.plugin_name)
            self._kill_orphans()
        finally:
            self._futures.clear()
            self._revoke_token()

    def __enter__(self) -> DaskTracking:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(cancel=exc_type is not None)

    # -- tasks -------------------------------------------------------------------------------
    def child(
        self,
        fn: Callable[..., Any],
        *,
        run_name: str | Callable[..., str] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> ChildRun:
        """``fn`` wrapped to run as a child run of this sweep's parent."""
        return ChildRun(
            fn,
            run_name=run_name,
            tags=tags,
            parent_run_id=self.settings.parent_run_id,
            experiment_id=self.settings.experiment_id,
            sweep_id=self.sweep_id,
        )

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        run_name: str | Callable[..., str] | None = None,
        tags: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """``client.submit`` of ``fn`` as a child run; other keyword arguments go to
        ``client.submit`` (and through it to ``fn``). Tasks are impure by default (``pure=False``):
        every call makes its own run."""
        self._require_started()
        kwargs.setdefault("pure", False)
        future = self.client.submit(self.child(fn, run_name=run_name, tags=tags), *args, **kwargs)
        self._futures.append(future)
        return future

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        run_name: str | Callable[..., str] | None = None,
        tags: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Any]:
        """``client.map`` of ``fn`` over ``iterables``, each call a child run."""
        self._require_started()
        kwargs.setdefault("pure", False)
        futures = self.client.map(
            self.child(fn, run_name=run_name, tags=tags), *iterables, **kwargs
        )
        self._futures.extend(futures)
        return futures

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("call start() or use `with DaskTracking(client) as tracking:` first")

    # -- server calls (from the notebook, with the notebook's own credentials) ----------------
    def _request(self, method: str, path: str, **kwargs: Any) -> dict:
        import requests

        s = self.settings
        kwargs.setdefault("timeout", 30)
        if s.auth == "basic":
            kwargs["auth"] = (s.username, s.password.reveal())  # type: ignore[union-attr]
        elif s.auth == "token":
            kwargs["headers"] = {"Authorization": f"Bearer {s.token.reveal()}"}  # type: ignore[union-attr]
        env = s.extra_env
        if env.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
            kwargs["verify"] = False
        elif env.get("MLFLOW_TRACKING_SERVER_CERT_PATH"):
            kwargs["verify"] = env["MLFLOW_TRACKING_SERVER_CERT_PATH"]
        if env.get("MLFLOW_TRACKING_CLIENT_CERT_PATH"):
            kwargs["cert"] = env["MLFLOW_TRACKING_CLIENT_CERT_PATH"]
        r = requests.request(method, s.tracking_uri.rstrip("/") + path, **kwargs)
        if r.status_code != 200:
            raise _HttpError(
                r.status_code, _error_code(r), f"{method} {path} -> HTTP {r.status_code}"
            )
        return r.json() if r.content else {}

    def _mint_token(self) -> Secret | None:
        name = f"dask sweep {self.sweep_id[:12]}"
        if self.settings.parent_run_id:
            name += f" (run {self.settings.parent_run_id})"
        body = {"name": name, "expires_at": _now_ms() + int(self.token_ttl_s * 1000)}
        try:
            answer = self._request("POST", "/api/2.0/labtrack/tokens/create", json=body)
        except _HttpError as exc:
            if exc.status == 404 and self.delegate == "auto":
                # Not labtrack, or authentication is off: workers get the notebook's credentials.
                log.info("no token endpoint on the server; workers use the notebook's credentials")
                return None
            raise RuntimeError(f"could not create a token for the Dask workers: {exc}") from None
        self._token_id = str(answer["token_info"]["token_id"])
        return Secret(answer["token"])

    def _revoke_token(self) -> None:
        if self._token_id is None:
            return
        token_id, self._token_id = self._token_id, None
        try:
            self._request("POST", "/api/2.0/labtrack/tokens/revoke", json={"token_id": token_id})
        except Exception as exc:  # it still expires on its own
            log.warning("could not revoke the workers' token %s: %s", token_id, exc)

    def _kill_orphans(self) -> None:
        """Children of this sweep still RUNNING after every task ended lost their worker."""
        if not self.settings.experiment_id:
            return
        body = {
            "experiment_ids": [self.settings.experiment_id],
            "filter": f"tags.`{SWEEP_TAG}` = '{self.sweep_id}' AND attributes.status = 'RUNNING'",
            "max_results": 1000,
        }
        reason = "abandoned: its Dask task was cancelled or its worker was lost"
        try:
            # Ended runs drop out of the search, so always read the first page again.
            for _ in range(1000):
                runs = self._request("POST", "/api/2.0/mlflow/runs/search", json=body).get("runs")
                if not runs:
                    break
                for run in runs:
                    run_id = run["info"]["run_id"]
                    tag = {"run_id": run_id, "key": ERROR_TAG, "value": reason}
                    self._request("POST", "/api/2.0/mlflow/runs/set-tag", json=tag)
                    end = {"run_id": run_id, "status": "KILLED", "end_time": _now_ms()}
                    self._request("POST", "/api/2.0/mlflow/runs/update", json=end)
        except Exception as exc:
            log.warning("could not end the sweep's abandoned runs: %s", exc)


def _now_ms() -> int:
    return int(time.time() * 1000)


class _HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} {code}".strip())
        self.status = status


def _error_code(response: Any) -> str:
    try:
        return str(response.json().get("error_code") or "")
    except Exception:
        return ""
