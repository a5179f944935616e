"""JupyterHub authenticator for Workshops-on-Demand students.

The participant logs in with the student name (``student207``) and the password from the
welcome email; the student item in DynamoDB decides (rules in wod_login.py, which has no
JupyterHub import so the platform's unit tests cover it).

It is a LocalAuthenticator so that, in the isolated local mode, each student is also a Linux
user with a private home (created on demand, ``/home/<student>`` mode 0700, of a fixed size, with
a uid nobody had before: student_accounts.py). Deleting the hub user kills the student's cgroups
(student_cgroups.py), proves them empty, then removes the account. Making and removing accounts
runs in a thread, never on the hub's event loop. With ``system_users = False`` (the
shared-insecure developer mode, or container spawners) it behaves like a plain Authenticator and
never touches Linux accounts.

Failed logins slow the next ones down (wod_login.Slowdown) per client and name, per name and per
client, and never refuse a correct password. The client is the address the hub's proxy appended
to ``X-Forwarded-For``: students cannot reach the hub's own port (the student firewall), so every
request the hub sees came through the proxy, or from root.
"""
from __future__ import annotations

import asyncio
import grp
import os
import pwd
import sys
import threading
from pathlib import Path

from jupyterhub.auth import Authenticator, LocalAuthenticator
from jupyterhub.utils import maybe_future
from traitlets import Any, Bool, Float, Integer, Unicode, default

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
import wod_login
from student_accounts import Accounts, Uids
from student_cgroups import StudentGroups

STUDENTS_GROUP = "wod-students"  # the firewall (student_firewall.py) matches this group


def _loggable(name: object) -> str:
    """A student name as typed, or a placeholder: people type passwords into the wrong field."""
    return repr(name) if isinstance(name, str) and wod_login.valid_username(name) else "<not a student name>"


class WodAuthenticator(LocalAuthenticator):
    """Students log in with their name + emailed password, checked against DynamoDB."""

    students_table = Unicode(config=True, help="DynamoDB students table (hash key id).")
    aws_endpoint = Unicode(config=True, help="DynamoDB endpoint URL; empty means the AWS default.")
    aws_region = Unicode(config=True, help="AWS region of the students table.")

    free_failed_logins = Integer(5, config=True, help="""Failures (per client and name, per name, within
        failed_login_window) before the next attempts wait.""")
    free_failed_logins_per_address = Integer(50, config=True, help="""Failures from one client address over every
        name before its next attempts wait (a venue shares one address: keep it above a room's typos).""")
    failed_login_window = Float(300.0, config=True, help="Seconds over which failures are counted.")
    first_login_delay = Float(1.0, config=True, help="The first wait; each failure more doubles it.")
    max_login_delay = Float(15.0, config=True, help="""The longest wait: however many strangers failed before,
        the owner's correct password is checked after at most this long, and let in.""")
    session_grace_seconds = Float(300.0, config=True, help="""While the students table cannot be read, an open
        session goes on this long after the student was last confirmed active, then ends (fails closed).""")

    system_users = Bool(True, config=True, help="""Map each student to a Linux user (isolated local mode).
        False: never look up, create or delete Linux users (shared-insecure mode, container spawners).""")
    min_system_uid = Integer(1000, config=True, help="""Never map a hub user onto a Linux account below this uid
        (root, daemon, www-data ... all match the student name pattern).""")
    delete_system_users = Bool(False, config=True, help="""Remove the Linux user and its home (userdel -r)
        when the hub user is deleted, so a recycled student name starts with an empty home.""")
    home_mode = Integer(0o700, config=True, help="Mode enforced on a student's home after creation.")
    accounts_dir = Unicode("", config=True, help="""Where this hub's state records the Linux accounts it created
        (one empty file per account). A student account it did not create (left by an earlier state, a crashed
        stack) is removed with its home before the name is used again, so a seat always starts empty.""")
    hub_id = Unicode("", config=True, help="This hub's id (made once per hub state): part of its cgroups' names.")
    uids_file = Unicode("", config=True, help="Where this hub's state keeps the uids it handed out (never twice).")
    homes_dir = Unicode("", config=True, help="Where the students' home images are kept (with disk_mb).")
    disk_mb = Integer(0, config=True, help="Size of a student's home (an image of its own); 0: a plain directory.")

    lookup = Any(help="""Callable(username) -> student item dict | None; raises on storage errors.
        Default: a consistent GetItem on students_table. Inject a fake in tests.""").tag(config=True)

    @default("students_table")
    def _default_table(self):
        return os.environ.get("WOD_STUDENTS_TABLE", "wod-students")

    @default("aws_endpoint")
    def _default_endpoint(self):
        return os.environ.get("WOD_AWS_ENDPOINT", "")

    @default("aws_region")
    def _default_region(self):
        return os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"

    @default("username_pattern")
    def _default_username_pattern(self):
        return wod_login.USERNAME_PATTERN

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._lookup_lock = threading.Lock()
        self.slowdown = wod_login.Slowdown(self.free_failed_logins, self.failed_login_window, self.first_login_delay,
                                           self.max_login_delay)
        self.address_slowdown = wod_login.Slowdown(self.free_failed_logins_per_address, self.failed_login_window,
                                                   self.first_login_delay, self.max_login_delay)
        self.sessions = wod_login.Sessions(self.session_grace_seconds)
        self._accounts = None

    def _get_lookup(self):
        with self._lookup_lock:
            if self.lookup is None:
                self.lookup = wod_login.DynamoStudents(self.students_table, self.aws_endpoint, self.aws_region)
            return self.lookup

    def _check(self, username, password):
        try:
            lookup = self._get_lookup()
        except Exception as exc:  # boto3 missing, bad endpoint ...
            return wod_login.Decision(False, f"student lookup unavailable: {type(exc).__name__}: {exc}")
        return wod_login.login(username, password, lookup)

    @staticmethod
    def _client(handler):
        """The address the proxy saw (tornado's remote_ip would believe a client's X-Real-Ip)."""
        request = getattr(handler, "request", None)
        if request is None:
            return "-"
        forwarded = ",".join(request.headers.get_list("X-Forwarded-For")) if hasattr(request, "headers") else ""
        peer = getattr(getattr(request, "connection", None), "context", None)
        address = getattr(peer, "address", None)
        return wod_login.client_address(forwarded, address[0] if isinstance(address, tuple) else None)

    async def authenticate(self, handler, data):
        data = data or {}
        username, password = data.get("username"), data.get("password")
        if isinstance(username, str):
            username = username.strip().lower()
        remote = self._client(handler)
        if not wod_login.valid_username(username):
            self.log.warning("WoD login refused for %s from %s: invalid username", _loggable(username), remote)
            return None
        keys, address = [("pair", remote, username), ("name", username)], [("client", remote)]
        wait = max(self.slowdown.attempt(keys), self.address_slowdown.attempt(address))
        failed = True
        try:
            if wait:
                self.log.warning("WoD login for %s from %s waits %.1fs (failed logins before it)", username, remote,
                                 wait)
                await asyncio.sleep(wait)
            decision = await asyncio.to_thread(self._check, username, password)
            failed = not decision.ok and "lookup" not in decision.reason  # an outage is nobody's failure
        finally:
            self.slowdown.done(keys, failed, cleared=() if failed else tuple(keys))
            self.address_slowdown.done(address, failed)
        if decision.ok:
            self.sessions.opened(username, decision)
            self.log.info("WoD login ok for %s from %s", username, remote)
            return username
        log = self.log.error if "lookup" in decision.reason else self.log.warning
        log("WoD login refused for %s from %s: %s", _loggable(username), remote, decision.reason)
        return None

    async def refresh_user(self, user, handler=None):
        """Called by the hub every auth_refresh_age seconds on the student's own requests and
        before a spawn (refresh_pre_spawn): a session ends when the student item stops being
        active or expires, even though the hub cookie is still valid."""
        acting = getattr(handler, "_jupyterhub_user", user) if handler is not None else user
        if acting is not user:
            return True  # the platform (service) acting on the student: nothing to re-check
        try:
            lookup = self._get_lookup()
        except Exception as exc:
            def lookup(name, error=exc):  # the failure, reported by the session check
                raise error
        decision = await asyncio.to_thread(self.sessions.check, user.name, lookup)
        if decision.ok:
            if decision.reason != "ok":
                self.log.error("WoD session of %s: %s", user.name, decision.reason)
            return True
        self.log.warning("WoD session of %s ended: %s", user.name, decision.reason)
        # JupyterHub 6.1.1 bug: BaseHandler.refresh_auth reads self._token_authenticated, which is
        # only ever set on token-authenticated requests, so a refused refresh of a cookie session
        # raised AttributeError (HTTP 500) instead of sending the student to the login page.
        if handler is not None and not hasattr(handler, "_token_authenticated"):
            handler._token_authenticated = False
        return False

    # ---- Linux users (isolated mode) ---------------------------------------------------

    @property
    def accounts(self):
        if self._accounts is None:
            self._accounts = Accounts(Uids(Path(self.uids_file)), STUDENTS_GROUP,
                                      Path(self.homes_dir) if self.homes_dir else None, self.disk_mb, self.log)
        return self._accounts

    def _system_account(self, name):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            return None

    def _guard_account(self, name):
        account = self._system_account(name)
        if account is not None and account.pw_uid < self.min_system_uid:
            raise ValueError(f"refusing hub user {name!r}: Linux account uid {account.pw_uid} < {self.min_system_uid}")
        return account

    def system_user_exists(self, user):
        return self._system_account(user.name) is not None

    def _record(self, name):
        return Path(self.accounts_dir) / name if self.accounts_dir else None

    def _owned(self, name):
        record = self._record(name)
        return record is None or record.exists()

    def _teardown(self, name):
        """(In a thread.) Kill the student's cgroups and prove them empty, then remove the account
        with everything of its uid; RuntimeError keeps the account (the deletion is retried)."""
        StudentGroups(self.hub_id).kill(name)
        self.accounts.remove(name)
        record = self._record(name)
        if record is not None:
            record.unlink(missing_ok=True)

    def _create(self, name):
        """(In a thread.) A new account, recorded as this state's."""
        account = self.accounts.create(name)
        record = self._record(name)
        if record is not None:
            record.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            record.touch()
        self._private_home(account)
        return account

    async def add_user(self, user):
        if not self.system_users:
            return await maybe_future(Authenticator.add_user(self, user))
        if not self.validate_username(user.name):
            raise ValueError(f"Invalid username: {user.name}")
        account = self._guard_account(user.name)
        if account is not None and not self._owned(user.name):
            try:
                members = grp.getgrnam(STUDENTS_GROUP).gr_mem
            except KeyError:
                members = []
            if user.name not in members:
                raise ValueError(f"refusing hub user {user.name!r}: a Linux account of that name exists and is "
                                 f"not a student account ({STUDENTS_GROUP})")
            await asyncio.to_thread(self._teardown, user.name)  # an earlier state's participant: all goes
            self.log.warning("removed Linux user %s and its home, left by an earlier state", user.name)
            account = None
        if account is None:
            account = await asyncio.to_thread(self._create, user.name)
            self.log.info("created Linux user %s (uid %s)", user.name, account.pw_uid)
        await maybe_future(Authenticator.add_user(self, user))

    def add_system_user(self, user):
        raise NotImplementedError("students' accounts are made by add_user, off the event loop")

    def _private_home(self, account):
        home = Path(account.pw_dir)
        try:
            st = home.stat()
        except FileNotFoundError:
            self.log.warning("home of %s (%s) does not exist", account.pw_name, home)
            return
        if st.st_uid == account.pw_uid and (st.st_mode & 0o777) != self.home_mode:
            os.chmod(home, self.home_mode)
            self.log.info("home of %s set to mode %o", account.pw_name, self.home_mode)

    async def pre_spawn_start(self, user, spawner):
        if self.system_users:
            account = self._guard_account(user.name)
            if account is None:
                raise ValueError(f"no Linux user for {user.name!r}")
            await asyncio.to_thread(self.accounts.mount_home, account)  # after a reboot: not mounted yet

    async def delete_user(self, user):
        super().delete_user(user)
        if not (self.system_users and self.delete_system_users and wod_login.valid_username(user.name)):
            return
        account = self._system_account(user.name)
        if account is None or account.pw_uid < self.min_system_uid:
            return
        # Nothing of the student's may pass to the seat's next holder: their groups are killed and
        # proven empty, then the account goes with everything of its uid.
        try:
            await asyncio.to_thread(self._teardown, user.name)
        except RuntimeError as exc:
            self.log.error("Linux user %s kept: %s", user.name, exc)
            raise RuntimeError(f"the Linux account {user.name} could not be removed; the deletion is retried") from exc
        self.log.info("removed Linux user %s and its home", user.name)
