"""Webhooks (pk ``HOOK``) and their deliveries (pk ``DELIVERY#<hook>``). A delivery still to try
carries ``delivery_state`` = ``due`` and ``delivery_due_at``: the sparse ``deliveries-due`` index
then lists exactly what the time checks must send, and nothing else."""
from __future__ import annotations

from datetime import datetime, timedelta

from pynamodb.exceptions import DeleteError, UpdateError

from chalicelib.domain.errors import NotFound
from chalicelib.store.errors import translated
from chalicelib.store.models import AdminModel

HOOK = "HOOK"
DUE = "due"


def deliveries_key(hook_id: str) -> str:
    return f"DELIVERY#{hook_id}"


@translated
def add_hook(hook_id: str, url: str, events: list[str], description: str, secret: str, now: datetime) -> AdminModel:
    hook = AdminModel(HOOK, hook_id, at=now, url=url, events=events, description=description or None, secret=secret)
    hook.save(condition=AdminModel.sk.does_not_exist())
    return hook


@translated
def hooks() -> list[AdminModel]:
    return list(AdminModel.query(HOOK))


@translated
def get_hook(hook_id: str) -> AdminModel:
    try:
        return AdminModel.get(HOOK, hook_id, consistent_read=True)
    except AdminModel.DoesNotExist:
        raise NotFound("There is no webhook with this id.") from None


@translated
def delete_hook(hook_id: str) -> None:
    """Its deliveries stay (they expire); the ones still due are closed when next tried."""
    try:
        AdminModel(HOOK, hook_id).delete(condition=AdminModel.sk.exists())
    except DeleteError as exc:
        raise NotFound("There is no webhook with this id.") from exc


@translated
def add_delivery(hook_id: str, delivery_id: str, event: str, body: str, now: datetime, expires: int) -> AdminModel:
    delivery = AdminModel(deliveries_key(hook_id), delivery_id, at=now, hook_id=hook_id, event=event, body=body,
                          status="pending", attempts=0, delivery_state=DUE, delivery_due_at=now, expires=expires)
    delivery.save()
    return delivery


@translated
def due(now: datetime, limit: int) -> list[AdminModel]:
    """Keys (and due times) of deliveries whose next attempt has come: an index query, never a scan."""
    return list(AdminModel.deliveries_due.query(DUE, AdminModel.delivery_due_at <= now, limit=limit))


@translated
def lease(key: AdminModel, now: datetime, duration: timedelta) -> AdminModel | None:
    """Take a due delivery for ``duration``; None when another sender took it first."""
    delivery = AdminModel(key.pk, key.sk)
    try:
        delivery.update(actions=[AdminModel.delivery_due_at.set(now + duration)],
                        condition=(AdminModel.delivery_state == DUE) & (AdminModel.delivery_due_at == key.delivery_due_at))
    except UpdateError:
        return None
    return delivery


@translated
def settle(delivery: AdminModel, now: datetime, code: int | None, error: str | None, delivered: bool,
           retry_at: datetime | None) -> bool:
    """Record one attempt: delivered, due again at ``retry_at``, or failed for good. Only while
    this sender's lease holds (False otherwise: the lease ran out and another sender took over)."""
    actions = [AdminModel.attempts.add(1), AdminModel.last_attempt_at.set(now),
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
        delivery.update(actions=actions, condition=(AdminModel.delivery_state == DUE)
                        & (AdminModel.delivery_due_at == delivery.delivery_due_at))
    except UpdateError:
        return False
    return True


@translated
def deliveries(hook_id: str, limit: int) -> list[AdminModel]:
    """Newest first."""
    return list(AdminModel.query(deliveries_key(hook_id), scan_index_forward=False, limit=limit))
