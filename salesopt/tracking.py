"""MLflow tracking of every refresh: one parent run per refresh, a child run per model stage.

With MLflow installed (`salesopt[mlflow]`) and `tracking.enabled` not false, a refresh opens a
parent run named `refresh <as_of>` tagged with the salesopt run id, the as_of and, as stages
finish, the Delta version of every table written. Slices of one run (the bundle's tasks, which
share `--run-id`) add to the same parent run. Each model stage (segment, recommend,
forecast, optimize, strategy) gets a child run:

- params: the stage's settings section (k sweep bounds, ALS grid, forecast families, ...);
- metrics: every number of the stage summary (silhouette, precision@k of the served method
  and of each baseline, backtest MASE and coverage, elasticity counts, ...);
- tags: the Delta versions of the tables the stage read (`input.<layer>/<name>`) and wrote
  (`output.<layer>/<name>`);
- artifacts: `summary.json` (for forecast: the status counts and backtest figures), and the
  Spark ML models (`segmentation`: the scaler + KMeans pipeline, `als`) in MLflow's Spark
  flavour: `mlflow.spark.load_model("runs:/<child run id>/als")`.

With `tracking.register_models`, the models are registered as `<model_prefix>_<name>` with the alias
`as_of_YYYY_MM_DD`: `mlflow.spark.load_model("models:/salesopt_als@as_of_2025_06_30")`.
`salesopt report` adds the report to the parent run of its as_of.

Where: `tracking.uri`, else `$MLFLOW_TRACKING_URI`, else the workspace's server on Databricks,
else a SQLite store in `<warehouse>/_mlflow` for a local warehouse (no server, no network);
on any other storage without a URI tracking stays off. Tracking is lineage, not the refresh:
an MLflow error is logged as a warning and the refresh goes on.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from salesopt import ops
from salesopt.config import Settings
from salesopt.context import StageContext, StageResult
from salesopt.io.delta import is_connect
from salesopt.summary import StageReport

log = logging.getLogger(__name__)

# model stages and the settings section that holds their parameters
MODEL_STAGES = {
    "segment": "segmentation",
    "recommend": "recommend",
    "forecast": "forecast",
    "optimize": "optimize",
    "strategy": "strategy",
}
AS_OF_TAG, RUN_TAG, KIND_TAG = "salesopt.as_of", "salesopt.run_id", "salesopt.kind"
_BAD_NAME = re.compile(r"[^\w\-. /]")
_BATCH = 100  # MLflow takes at most 100 params per batch


def store_uri(settings: Settings) -> str | None:
    """Where runs are tracked (module docstring); None: nowhere configured."""
    if settings.tracking.uri:
        return settings.tracking.uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        return "databricks"
    root = ops.local_root(settings.paths.warehouse)
    if root is None:
        return None
    return f"sqlite:///{(root / '_mlflow' / 'mlflow.db').resolve()}"


def _artifact_location(settings: Settings, uri: str) -> str | None:
    """The experiment's artifact folder beside a local SQLite store (None: the server's)."""
    root = ops.local_root(settings.paths.warehouse)
    if root is None or not uri.startswith("sqlite:"):
        return None
    return (root / "_mlflow" / "artifacts").resolve().as_uri()


def metrics_of(summary: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Every number in a stage summary, by its dotted path (booleans and text left out)."""
    found: dict[str, float] = {}
    for key, value in summary.items():
        name = _BAD_NAME.sub("_", f"{prefix}{key}")
        if isinstance(value, dict):
            found.update(metrics_of(value, f"{name}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found[name] = float(value)
    return found


def params_of(section: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A settings section as MLflow params: dotted names, values as text."""
    found: dict[str, str] = {}
    for key, value in section.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            found.update(params_of(value, f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            found[name] = text[:6000]
    return found


class Tracker:
    """Logs one refresh to MLflow; every method is a no-op when tracking is off."""

    def __init__(self, client: Any = None, ctx: StageContext | None = None, parent: str = ""):
        self.client, self.ctx, self.parent = client, ctx, parent

    @property
    def on(self) -> bool:
        return self.client is not None

    def stage(self, name: str, report: StageReport, result: StageResult, inputs: set) -> None:
        """Records a finished stage: table versions on the parent, a child run for a model."""
        if not self.on:
            return
        try:
            self._stage(name, report, result, inputs)
        except Exception as exc:  # lineage must not fail the refresh
            log.warning("MLflow tracking of stage %s failed: %s", name, _first_line(exc))

    def _stage(self, name: str, report: StageReport, result: StageResult, inputs: set) -> None:
        from mlflow.entities import RunTag

        ctx, client = self.ctx, self.client
        assert ctx is not None
        written = {t: v for t, v in report.tables.items() if v is not None}
        client.log_batch(
            self.parent, tags=[RunTag(f"salesopt.tables.{t}", str(v)) for t, v in written.items()]
        )
        if name not in MODEL_STAGES:
            return
        tags = {**self._tags(), KIND_TAG: "stage", "salesopt.stage": name}
        tags["mlflow.parentRunId"] = self.parent
        for layer, table in sorted(inputs):
            if f"{layer}/{table}" not in written:
                version = ctx.warehouse.version(ctx.spark, layer, table)
                tags[f"input.{layer}/{table}"] = str(version)
        tags.update({f"output.{t}": str(v) for t, v in written.items()})
        experiment = client.get_run(self.parent).info.experiment_id
        run = client.create_run(experiment, run_name=name, tags=tags).info.run_id
        try:
            self._log_child(run, name, report, result)
        except BaseException:
            client.set_terminated(run, "FAILED")
            raise
        client.set_terminated(run, "FINISHED")

    def _log_child(self, run: str, name: str, report: StageReport, result: StageResult) -> None:
        from mlflow.entities import Metric, Param
        from mlflow.utils.time import get_current_time_millis

        ctx, client = self.ctx, self.client
        assert ctx is not None
        section = getattr(ctx.settings, MODEL_STAGES[name]).model_dump(mode="json")
        params = [Param(k, v) for k, v in params_of(section).items()]
        now = get_current_time_millis()
        numbers = {"seconds": report.seconds, **metrics_of(report.summary)}
        metrics = [Metric(k, v, now, 0) for k, v in numbers.items()]
        for i in range(0, max(len(params), len(metrics)), _BATCH):
            client.log_batch(run, metrics=metrics[i : i + _BATCH], params=params[i : i + _BATCH])
        client.log_dict(run, report.summary, "summary.json")
        for model_name, model in result.models.items():
            self._log_model(run, model_name, model)

    def _tags(self) -> dict[str, str]:
        assert self.ctx is not None
        return {
            RUN_TAG: self.ctx.run_id,
            AS_OF_TAG: self.ctx.as_of.isoformat(),
            KIND_TAG: "refresh",
        }

    def _log_model(self, run: str, name: str, model: Any) -> None:
        """The model in MLflow's Spark flavour under the run's `<name>/`; registered when set."""
        import mlflow.spark
        import pyspark

        assert self.ctx is not None
        if is_connect(self.ctx.spark):  # MLflow's Spark flavour saves through the JVM
            self.client.set_tag(run, f"salesopt.model.{name}", CONNECT_MODEL_NOTE)
            log.info("%s model not logged to MLflow: %s", name, CONNECT_MODEL_NOTE)
            return
        with tempfile.TemporaryDirectory() as tmp:
            local = str(Path(tmp) / name)
            # the requirement is given, so MLflow does not load the model to infer it
            mlflow.spark.save_model(
                model, local, pip_requirements=[f"pyspark=={pyspark.__version__}"]
            )
            self.client.log_artifacts(run, local, name)
        settings = self.ctx.settings.tracking
        if not settings.register_models:
            return
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        registry = MlflowClient(
            tracking_uri=self.client.tracking_uri, registry_uri=settings.registry_uri
        )
        registered = f"{settings.model_prefix}_{name}"
        with contextlib.suppress(MlflowException):  # already registered
            registry.create_registered_model(registered)
        source = f"{self.client.get_run(run).info.artifact_uri}/{name}"
        version = registry.create_model_version(registered, source, run_id=run)
        alias = f"as_of_{self.ctx.as_of.isoformat().replace('-', '_')}"
        registry.set_registered_model_alias(registered, alias, version.version)
        log.info("registered %s version %s as @%s", registered, version.version, alias)


# why a model stage's child run has no model over Spark Connect (its params and metrics are there)
CONNECT_MODEL_NOTE = (
    "not logged on a Spark Connect session (MLflow's Spark flavour needs a classic session); "
    "the stage keeps its own copy under <warehouse>/models/<stage>/as_of=<date>"
)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def mlflow_installed() -> bool:
    return importlib.util.find_spec("mlflow") is not None


def _client(settings: Settings) -> Any:
    """An MlflowClient on the configured store, or None (with one line saying why) when off."""
    wanted = settings.tracking.enabled
    if wanted is False:
        return None
    if not mlflow_installed():
        if wanted:
            log.warning("tracking.enabled is on but MLflow is not installed: pip install "
                        "'salesopt[mlflow]'; runs are not tracked")  # fmt: skip
        else:
            log.info("MLflow is not installed: runs are not tracked (pip install "
                     "'salesopt[mlflow]' to track them)")  # fmt: skip
        return None
    uri = store_uri(settings)
    if uri is None:
        log.info(
            "MLflow tracking off: the warehouse is not local and no tracking.uri or "
            "MLFLOW_TRACKING_URI is set"
        )
        return None
    from mlflow.tracking import MlflowClient

    for chatty in ("mlflow.store.db.utils", "alembic"):  # "Creating initial MLflow database..."
        logging.getLogger(chatty).setLevel(logging.WARNING)
    root = ops.local_root(settings.paths.warehouse)
    if uri.startswith("sqlite:") and root is not None:
        (root / "_mlflow").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return MlflowClient(tracking_uri=uri, registry_uri=settings.tracking.registry_uri)


def _experiment(client: Any, settings: Settings) -> str:
    name = settings.tracking.experiment
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = _artifact_location(settings, client.tracking_uri)
    return str(client.create_experiment(name, artifact_location=location))


def _parent(client: Any, experiment: str, tracker: Tracker, stages: list[str]) -> str:
    """The parent run of this salesopt run id: the one an earlier slice of the same run opened
    (a scheduler running the stages as separate tasks with one `--run-id`), else a new one."""
    tags = tracker._tags()
    found = client.search_runs(
        [experiment],
        filter_string=f"tags.`{RUN_TAG}` = '{tags[RUN_TAG]}' and tags.`{KIND_TAG}` = 'refresh'",
        max_results=1,
    )
    if found:
        run = found[0]
        done = run.data.tags.get("salesopt.stages", "")
        client.set_tag(run.info.run_id, "salesopt.stages", ",".join(filter(None, [done, *stages])))
        client.update_run(run.info.run_id, status="RUNNING")
        return str(run.info.run_id)
    tags["salesopt.stages"] = ",".join(stages)
    as_of = tags[AS_OF_TAG]
    return str(client.create_run(experiment, run_name=f"refresh {as_of}", tags=tags).info.run_id)


@contextmanager
def refresh_run(ctx: StageContext, stages: list[str]) -> Iterator[Tracker]:
    """The parent run of one refresh (a no-op `Tracker` when tracking is off or fails to
    start); it ends FINISHED, or FAILED when a stage raised."""
    try:
        client = _client(ctx.settings)
        if client is not None:
            tracker = Tracker(client, ctx)
            tracker.parent = _parent(client, _experiment(client, ctx.settings), tracker, stages)
            log.info("MLflow: tracking run %s in %s", tracker.parent, client.tracking_uri)
        else:
            tracker = Tracker()
    except Exception as exc:
        log.warning("MLflow tracking could not start (%s); the refresh goes on untracked",
                    _first_line(exc))  # fmt: skip
        tracker = Tracker()
    try:
        yield tracker
    except BaseException:
        _end(tracker, "FAILED")
        raise
    _end(tracker, "FINISHED")


def _end(tracker: Tracker, status: str) -> None:
    if tracker.on:
        try:
            tracker.client.set_terminated(tracker.parent, status)
        except Exception as exc:
            log.warning("MLflow: could not end run %s: %s", tracker.parent, _first_line(exc))


def report_files(report: Path) -> list[Path]:
    """The report and the files it links to (its CSVs), never the rest of its folder."""
    linked = re.findall(r'href="([\w.-]+\.csv)"', report.read_text())
    return [report, *(report.parent / name for name in sorted(set(linked)))]


def log_report(settings: Settings, as_of: date, report: Path) -> str | None:
    """Adds the report (`report_files`) to the latest refresh run of `as_of`; returns that
    run's id, or None when nothing was logged."""
    try:
        client = _client(settings)
        if client is None:
            return None
        found = client.get_experiment_by_name(settings.tracking.experiment)
        if found is None:
            return None
        runs = client.search_runs(
            [found.experiment_id],
            filter_string=f"tags.`{AS_OF_TAG}` = '{as_of.isoformat()}' "
            f"and tags.`{KIND_TAG}` = 'refresh'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not runs:
            return None
        run_id = str(runs[0].info.run_id)
        for path in report_files(report):
            if path.is_file():
                client.log_artifact(run_id, str(path), "report")
        return run_id
    except Exception as exc:
        log.warning("MLflow: the report was not logged: %s", _first_line(exc))
        return None
