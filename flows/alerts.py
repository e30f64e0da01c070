"""Alerts an operator sees without watching the UI: a log line, a ``<flow>-alert`` artifact, a
``pipeline.alert`` Prefect event (an automation can forward it, see flows/automations.py) and,
when ``PIPELINE_ALERT_WEBHOOK`` is set, a JSON POST (``{"text": ...}``, Slack-compatible).

``HOOKS`` (``on_failure`` / ``on_crashed``) sends one for every failed or crashed run that can
still run Python; runs killed outright are marked Crashed by the heartbeat automation, whose
notification automation covers them.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request

from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event
from prefect.logging import get_logger

WEBHOOK_ENV = "PIPELINE_ALERT_WEBHOOK"
EVENT = "pipeline.alert"


def alert(flow_name: str, title: str, details: str = "",
          logger: logging.Logger | logging.LoggerAdapter | None = None) -> None:
    """Tell an operator about ``title``; never raises (an alert must not fail the run it reports on)."""
    from flows.tasks import artifact_key

    logger = logger or _run_logger()
    logger.warning("ALERT %s: %s", title, details)
    for send in (lambda: create_markdown_artifact(f"# {title}\n\n{details}\n", key=artifact_key(flow_name, "alert"),
                                                  description=title),
                 lambda: emit_event(EVENT, resource={"prefect.resource.id": f"pipeline.flow.{flow_name}",
                                                     "prefect.resource.name": flow_name},
                                    payload={"title": title, "details": details[:4000]}),
                 lambda: post_webhook(f"{title}\n{details}")):
        try:
            send()
        except Exception as exc:  # noqa: BLE001 - reported, never raised
            logger.warning("could not send alert %r: %s", title, exc)


def post_webhook(text: str) -> None:
    """POST ``{"text": text}`` to ``PIPELINE_ALERT_WEBHOOK`` when it is set."""
    url = os.environ.get(WEBHOOK_ENV)
    if not url:
        return
    request = urllib.request.Request(url, data=json.dumps({"text": text[:4000]}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10):
        pass


def _run_logger():
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return get_logger("pipeline.alerts")


def notify_state(flow, flow_run, state) -> None:
    """``on_failure`` / ``on_crashed`` hook: alert with the run's name, state and message."""
    alert(flow.name, f"{flow.name} run {flow_run.name} {state.name}", state.message or "")


HOOKS = {"on_failure": [notify_state], "on_crashed": [notify_state]}
