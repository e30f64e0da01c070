"""Server-side automations the deployments rely on; ``pipeline flow setup`` creates them.

* **crash-silent-runs**: a run whose process died (host lost, worker and flow killed) stays
  ``Running`` for good and holds its work pool's slot (``gpu`` has one). Flow processes send a
  heartbeat event every ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds (prefect.yaml sets 30);
  when a run's heartbeat stops for ``within_s`` this automation marks it ``Crashed``, which
  frees the slot. The next run of ``ecg-train``/``svs-train`` resumes from its checkpoint.
* **notify-failures** (only with a notification block): every ``Failed``/``Crashed`` run and
  every ``pipeline.alert`` event (missing inbox, unusable records, CPU fallback) goes to the
  block (Slack, email, MS Teams, custom webhook... created in the UI under Blocks).

Creating is idempotent: automations of the same name are replaced.
"""

from __future__ import annotations

from datetime import timedelta

from prefect.automations import Automation
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState, SendNotification
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

from flows.alerts import EVENT

ZOMBIES = "crash-silent-runs"
NOTIFY = "notify-failures"
TERMINAL = ("Completed", "Failed", "Cancelled", "Crashed")


def zombie_automation(within_s: int = 180) -> Automation:
    """Mark a run ``Crashed`` when no heartbeat (or terminal state) follows its last heartbeat in ``within_s``."""
    return Automation(
        name=ZOMBIES,
        description="Marks flow runs Crashed when their heartbeats stop, so a dead host frees its pool slot.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *(f"prefect.flow-run.{s}" for s in TERMINAL)},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=within_s),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message=f"no heartbeat for {within_s} s: the flow process or its host died")],
    )


def notify_automation(block_document_id) -> Automation:
    """Send failed/crashed runs and ``pipeline.alert`` events to a notification block."""
    return Automation(
        name=NOTIFY,
        description="Failed or crashed runs and pipeline alerts, sent to a notification block.",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed", EVENT},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*", "pipeline.flow.*"]}),
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[SendNotification(
            block_document_id=block_document_id,
            subject="pipeline: {{ event.event }} {{ event.resource.name }}",
            body="{{ event.event }} {{ event.resource.name }}: {{ event.payload.get('title', '') }}"
                 " {{ event.payload.get('details', '') }} {{ event.resource.get('prefect.state-message', '') }}",
        )],
    )


def setup(within_s: int = 180, notify_block: str | None = None) -> list[str]:
    """Create (or replace) the automations on the server ``PREFECT_API_URL`` points at; returns their names."""
    from prefect.blocks.core import Block
    from prefect.client.orchestration import get_client

    wanted = [zombie_automation(within_s)]
    if notify_block:
        wanted.append(notify_automation(Block.load(notify_block)._block_document_id))
    with get_client(sync_client=True) as client:
        for automation in wanted:
            for old in client.read_automations_by_name(automation.name):
                client.delete_automation(old.id)
            automation.create()
    return [a.name for a in wanted]
