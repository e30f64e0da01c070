"""Prefect flows over the ``pipeline`` library (thin: tasks wrap library functions).

Importing this package sets defaults that must be in place before Prefect is imported:
a generous ephemeral-server start-up timeout (cold starts exceed Prefect's 20 s default on
small machines) and no telemetry. Explicit settings in the environment win.
"""

import os

for _name, _value in (
    ("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90"),
    ("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
    ("PREFECT_LOGGING_EXTRA_LOGGERS", "pipeline"),
):
    os.environ.setdefault(_name, _value)

#: Flow name -> "module:function" (modules under ``flows/``); used by ``pipeline flow run``.
FLOWS = {
    "ecg-train": "flows.ecg_train:ecg_train",
    "ecg-features": "flows.features:ecg_features",
    "svs-train": "flows.svs_train:svs_train",
    "ecg-predict-batch": "flows.ecg_predict_batch:ecg_predict_batch",
    "separate-inbox": "flows.separate_inbox:separate_inbox",
}
