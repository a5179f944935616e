"""Webhooks (pk ``HOOK``) and their deliveries (pk ``DELIVERY#<hook>``). A delivery still to try
carries ``delivery_state`` = ``due`` and ``delivery_due_at``: the sparse ``deliveries-due`` index
then lists exactly what the time checks must send, and nothing else."""
from __future__ import annotations

from datetime import datetime, timedelta

from pynamodb.exceptions import DeleteError, UpdateError
from pynamodb.expressions.update import Action

from chalicelib.domain.errors import NotFound
from chalicelib.domain.values import Delivery, Hook
from chalicelib.store import values
from chalicelib.store.errors import translated
from chalicelib.store.models import AdminModel
from chalicelib.store.tables import Tables

HOOK = "HOOK"
DUE = "due"
DELIVERY_PREFIX = "DELIVERY#"


def deliveries_key(hook_id: str) -> str:
    return f"{DELIVERY_PREFIX}{hook_id}"


class Webhooks:
    def __init__(self, tables: Tables):
        self.t = tables

    @translated
    def add_hook(self, hook_id: str, url: str, events: list[str], description: str, secret: str,
                 now: datetime) -> Hook:
        item = self.t.admin(HOOK, hook_id, at=now, url=url, events=events, description=description or None,
                            secret=secret)
        item.save(condition=AdminModel.sk.does_not_exist())
        return values.hook(item)

    @translated
    def hooks(self) -> list[Hook]:
        return [values.hook(h) for h in self.t.admin.query(HOOK)]

    @translated
    def get_hook(self, hook_id: str) -> Hook:
        try:
            return values.hook(self.t.admin.get(HOOK, hook_id, consistent_read=True))
        except AdminModel.DoesNotExist:
            raise NotFound("There is no webhook with this id.") from None

    @translated
    def delete_hook(self, hook_id: str) -> None:
        """Its deliveries stay (they expire); the ones still due are closed when next tried."""
        try:
            self.t.admin(HOOK, hook_id).delete(condition=AdminModel.sk.exists())
        except DeleteError as exc:
            raise NotFound("There is no webhook with this id.") from exc

    @translated
    def add_delivery(self, hook_id: str, delivery_id: str, event: str, body: str, now: datetime,
                     expires: int) -> Delivery:
        item = self.t.admin(deliveries_key(hook_id), delivery_id, at=now, hook_id=hook_id, event=event, body=body,
                            status="pending", attempts=0, delivery_state=DUE, delivery_due_at=now, expires=expires)
        item.save()
        return values.delivery(item)

    @translated
    def due(self, now: datetime, limit: int) -> list[Delivery]:
        """Keys (and due times) of deliveries whose next attempt has come: an index query, never a scan.

        The index projects keys only: each value carries ``id``, ``hook_id`` and ``due_at``, enough
        for :meth:`lease`, which returns the whole delivery."""
        found = []
        for key in self.t.admin.deliveries_due.query(DUE, AdminModel.delivery_due_at <= now, limit=limit):
            key.hook_id = key.hook_id or key.pk.removeprefix(DELIVERY_PREFIX)
            found.append(values.delivery(key))
        return found

    @translated
    def lease(self, key: Delivery, now: datetime, duration: timedelta) -> Delivery | None:
        """Take a due delivery for ``duration``; None when another sender took it first."""
        item = self.t.admin(deliveries_key(key.hook_id), key.id)
        try:
            item.update(actions=[AdminModel.delivery_due_at.set(now + duration)],
                        condition=(AdminModel.delivery_state == DUE) & (AdminModel.delivery_due_at == key.due_at))
        except UpdateError:
            return None
        return values.delivery(item)

    @translated
    def settle(self, delivery: Delivery, now: datetime, code: int | None, error: str | None, delivered: bool,
               retry_at: datetime | None) -> bool:
        """Record one attempt: delivered, due again at ``retry_at``, or failed for good. Only while
        this sender's lease holds (False otherwise: the lease ran out and another sender took over)."""
        actions: list[Action] = [AdminModel.attempts.add(1), AdminModel.last_attempt_at.set(now),
                   AdminModel.last_code.set(code) if code is not None else AdminModel.last_code.remove(),
                   AdminModel.last_error.set(error[:300]) if error else AdminModel.last_error.remove()]
        if delivered or retry_at is None:
            actions += [AdminModel.status.set("delivered" if delivered else "failed"),
                        AdminModel.delivery_state.remove(), AdminModel.delivery_due_at.remove()]
            if delivered:
                actions.append(AdminModel.delivered_at.set(now))
        else:
            actions.append(AdminModel.delivery_due_at.set(retry_at))
        try:
            self.t.admin(deliveries_key(delivery.hook_id), delivery.id).update(
                actions=actions,
                condition=(AdminModel.delivery_state == DUE) & (AdminModel.delivery_due_at == delivery.due_at))
        except UpdateError:
            return False
        return True

    @translated
    def deliveries(self, hook_id: str, limit: int) -> list[Delivery]:
        """Newest first."""
        return [values.delivery(d)
                for d in self.t.admin.query(deliveries_key(hook_id), scan_index_forward=False, limit=limit)]
