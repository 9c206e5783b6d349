"""The training-run model: metrics of runs from an experiment tracker (MLflow) or a CSV, so that waste rules
can ask whether a retraining cycle improved anything.

One row is one metric value of one run at one step (MLflow's metric history is a list of such points; a
CSV gives one row per run and metric, step 0). A run is identified by (``source``, ``run_id``); the same
point seen again (a re-exported file, a second sync) supersedes the older row, as requests do. ``model`` is
what the run (re)trains (MLflow's registered model, a ``model`` tag, or the CSV column), so runs of one model
form its retraining cycles in time order. ``workload_run`` is the value of the workloads' run label that
the run's GPU jobs carry (``llm.training_labels.run``), which is how a run's metric meets its GPU cost;
it defaults to the run id.
"""

from __future__ import annotations

RUN_METRIC_COLUMNS: dict[str, str] = {
    "run_id": "VARCHAR",
    "source": "VARCHAR",  # mlflow | csv
    "experiment": "VARCHAR",  # experiment name (MLflow experiment_id when no name is known)
    "run_name": "VARCHAR",
    "model": "VARCHAR",  # what is being (re)trained
    "workload_run": "VARCHAR",  # the run label of its GPU workloads (default: run_id)
    "status": "VARCHAR",  # FINISHED | FAILED | KILLED | RUNNING | SCHEDULED (MLflow RunStatus)
    "start_ts": "TIMESTAMP",
    "end_ts": "TIMESTAMP",
    "metric": "VARCHAR",
    "value": "DOUBLE",
    "step": "BIGINT",
    "ts": "TIMESTAMP",  # when the value was logged
    "attributes": "MAP(VARCHAR, VARCHAR)",  # params (params.<key>) and tags (tags.<key>) as text
}

#: What makes a metric point one observation.
RUN_METRIC_KEY = ("source", "run_id", "metric", "step")
