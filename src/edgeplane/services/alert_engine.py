"""The alert rule engine: evaluates every enabled rule of every project, opens and resolves
incidents, and queues their notifications.

For each rule and each object its series has a value for, the condition ``value comparison
threshold`` either holds or not:

- it starts to hold: the object is ``pending`` since now (``alert_states``);
- it has held for the rule's ``for_s``: it is ``firing``: an incident (an ``alerts`` row of
  kind ``rule``) opens and its ``firing`` message is queued for the rule's channels;
- it no longer holds (or the object has no value, or the rule was disabled or deleted): a
  pending state is dropped; a firing one resolves its incident, whose ``resolved`` message is
  queued.

So an incident sends one firing and one resolved message per channel, however many
evaluations it spans (de-duplication), and flapping shorter than ``for_s`` sends nothing.

Each rule is evaluated every ``window_s / 60`` seconds, at least every ``interval_s`` (the
job's period) and at most every 5 minutes: a one-hour hit ratio is read every minute, a
one-day uptime every 5 minutes, the rules of a few minutes at every pass. A pass reads in
one transaction per project and writes only when a state changes;
the series a pass reads are shared by the rules that read the same data (``series.Memo``).
"""

from __future__ import annotations

import hashlib
import logging
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from threading import Event

from sqlalchemy import select

from edgeplane.errors import InvalidInput
from edgeplane.model.alerting import AlertRule
from edgeplane.services import alert_rules, alerts, notifications, series
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.db import Database, Tx
from edgeplane.store.monitoring_tables import AlertRuleRow, AlertStateRow
from edgeplane.store.tables import AlertRow, ProjectRow, utcnow

log = logging.getLogger("edgeplane.alerts")

COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
MAX_PERIOD_S = 300.0


@dataclass
class Pass:
    fired: int = 0
    resolved: int = 0
    pending: int = 0


@dataclass
class Engine:
    """The rule engine of one control plane (``evaluate`` is its background job)."""

    db: Database
    interval_s: float = 5.0
    _last: dict[tuple[str, str], float] = field(default_factory=dict)  # (project, rule) -> t

    def evaluate(self, stopping: Event | None = None, now: datetime | None = None) -> Pass:
        outcome = Pass()
        with self.db.read(LOCAL, PLATFORM_PROJECT) as tx:
            projects = list(tx.session.scalars(select(ProjectRow.id).order_by(ProjectRow.id)))
        for project in projects:
            if stopping is not None and stopping.is_set():
                break
            self._project(project, now or utcnow(), outcome)
        return outcome

    def _due(self, project: str, rule: AlertRule, clock: float) -> bool:
        period = min(MAX_PERIOD_S, max(self.interval_s, rule.window_s / 60))
        last = self._last.get((project, rule.id))
        return last is None or clock - last >= period - 0.5 * self.interval_s

    def _project(self, project: str, now: datetime, outcome: Pass) -> None:
        clock = now.timestamp()
        with self.db.read(LOCAL, project) as tx:
            stored = set(
                tx.session.scalars(
                    select(AlertRuleRow.id).where(AlertRuleRow.project_id == project)
                )
            )
        if any(spec["id"] not in stored for spec in alert_rules.DEFAULT_RULES):
            with self.db.transaction(LOCAL, project) as tx:
                alert_rules.ensure_defaults(tx, project)
        with self.db.read(LOCAL, project) as tx:
            rules = {
                r.id: alert_rules.to_model(r)  # detached: read again after the transaction
                for r in tx.session.scalars(
                    select(AlertRuleRow).where(AlertRuleRow.project_id == project)
                )
            }
            states = {
                (s.rule_id, s.object): (s.state, s.since)
                for s in tx.session.scalars(
                    select(AlertStateRow).where(AlertStateRow.project_id == project)
                )
            }
            memo = series.Memo()
            values: dict[str, dict[str, float]] = {}
            for rule in rules.values():
                if not rule.enabled or not self._due(project, rule, clock):
                    continue
                try:
                    values[rule.id] = series.current(
                        tx, project, rule.series, rule.selector, rule.window_s, now, memo=memo
                    )
                except InvalidInput as exc:  # a series renamed since the rule was made
                    log.warning("alert rule %s/%s not evaluated: %s", project, rule.id, exc)
                    values[rule.id] = {}
                self._last[(project, rule.id)] = clock
        changes = _plan(rules, states, values, now)
        if not changes:
            return
        with self.db.transaction(LOCAL, project) as tx:
            for change in changes:
                _apply(tx, project, rules.get(change.rule_id), change, now, outcome)


@dataclass(frozen=True)
class Change:
    rule_id: str
    object: str
    to: str  # "pending", "firing" (from pending or at once), "gone" (drop / resolve)
    value: float | None = None


def _plan(
    rules: dict[str, AlertRule],
    states: dict[tuple[str, str], tuple[str, datetime]],
    values: dict[str, dict[str, float]],
    now: datetime,
) -> list[Change]:
    """What changes, from the rules, their states and the values read (pure)."""
    changes: list[Change] = []
    for rule_id, per_object in values.items():
        rule = rules[rule_id]
        holds = COMPARE[rule.comparison]
        for obj, value in per_object.items():
            state = states.get((rule_id, obj))
            if not holds(value, rule.threshold):
                continue
            if state is None:
                to = "firing" if rule.for_s <= 0 else "pending"
                changes.append(Change(rule_id, obj, to, value))
            elif state[0] == "pending" and (now - state[1]).total_seconds() >= rule.for_s:
                changes.append(Change(rule_id, obj, "firing", value))
        for (state_rule, obj), _state in states.items():
            now_value = per_object.get(obj)
            if state_rule == rule_id and (
                now_value is None or not holds(now_value, rule.threshold)
            ):
                changes.append(Change(rule_id, obj, "gone", now_value))
    for (state_rule, obj), _state in states.items():
        owner = rules.get(state_rule)
        if owner is None or not owner.enabled:
            changes.append(Change(state_rule, obj, "gone"))
    return changes


def _key(rule_id: str, since: datetime) -> str:
    return f"{int(since.timestamp())}-{hashlib.sha1(rule_id.encode()).hexdigest()[:10]}"


def _message(rule: AlertRule, obj: str, value: float | None) -> str:
    info = series.CATALOG.get(rule.series)
    unit = {"percent": " %", "ms": " ms", "days": " days", "bytes": " bytes"}.get(
        info.unit if info else "", ""
    )
    shown = "no value" if value is None else f"{value:g}{unit}"
    return f"{rule.name}: {obj}: {rule.series} is {shown} ({rule.comparison} {rule.threshold:g})"


def _apply(
    tx: Tx,
    project: str,
    rule: AlertRule | None,
    change: Change,
    now: datetime,
    outcome: Pass,
) -> None:
    state = tx.session.get(AlertStateRow, (project, change.rule_id, change.object))
    if change.to == "gone":
        if state is None:
            return
        if state.state == "firing" and state.alert_id:
            incident = tx.session.get(AlertRow, state.alert_id)
            if incident is not None and incident.state == "firing":
                incident.state = "resolved"
                incident.resolved_at = now
                if change.value is not None:
                    incident.value = change.value
                tx.session.flush()
                name = rule.name if rule is not None else change.rule_id
                notifications.enqueue(
                    tx,
                    incident,
                    "resolved",
                    rule_name=name,
                    channel_ids=(rule.channels or []) if rule is not None else (),
                    now=now,
                )
                outcome.resolved += 1
                log.info("alert resolved: %s", incident.message)
        tx.session.delete(state)
        return
    if rule is None:
        return
    if change.to == "pending":
        if state is None:
            tx.session.add(
                AlertStateRow(
                    project_id=project,
                    rule_id=rule.id,
                    object=change.object,
                    state="pending",
                    since=now,
                    value=change.value,
                    evaluated_at=now,
                )
            )
            outcome.pending += 1
        return
    since = state.since if state is not None else now
    incident = AlertRow(
        id=alerts.new_id(),
        project_id=project,
        kind="rule",
        object_id=change.object,
        key=_key(rule.id, since),
        severity=rule.severity,
        message=_message(rule, change.object, change.value),
        details={
            "series": rule.series,
            "selector": dict(rule.selector or {}),
            "window_s": rule.window_s,
            "for_s": rule.for_s,
        },
        created_at=now,
        rule_id=rule.id,
        state="firing",
        value=change.value,
        threshold=rule.threshold,
        started_at=since,
    )
    tx.session.add(incident)
    if state is None:
        state = AlertStateRow(
            project_id=project, rule_id=rule.id, object=change.object, since=since
        )
        tx.session.add(state)
    state.state, state.value, state.alert_id, state.evaluated_at = (
        "firing",
        change.value,
        incident.id,
        now,
    )
    tx.session.flush()
    notifications.enqueue(
        tx, incident, "firing", rule_name=rule.name, channel_ids=rule.channels or [], now=now
    )
    outcome.fired += 1
    log.warning("alert firing (%s): %s", rule.severity, incident.message)
