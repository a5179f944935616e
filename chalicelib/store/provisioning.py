"""Provisioning's own records: the nonces of orders and callbacks already taken (a replay is
refused), and the student's password hash and hub. A registration's provisioning states are
written by :mod:`chalicelib.store.registrations`."""
from __future__ import annotations

from datetime import datetime

from pynamodb.exceptions import PutError

from chalicelib.store.errors import translated
from chalicelib.store.models import NonceModel, StudentModel
from chalicelib.store.tables import Tables


class Provisioning:
    def __init__(self, tables: Tables):
        self.t = tables

    @translated
    def remember_nonce(self, nonce: str, expires: datetime) -> bool:
        """True the first time a nonce is seen, False for a replay."""
        try:
            self.t.nonces(nonce, expires=int(expires.timestamp())).save(condition=NonceModel.nonce.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    @translated
    def store_password_hash(self, student_id: str, registration_id: str, password_hash: str, hub_url: str) -> None:
        self.t.students(student_id).update(
            actions=[StudentModel.password_hash.set(password_hash), StudentModel.hub_url.set(hub_url)],
            condition=StudentModel.registration_id == registration_id,
        )
