"""A participant's whole life on the rehearsal's stack, each function under its own role
(``local/rehearsal.py`` runs it once the stack, its roles, its functions and the hub are up).

Register (rate limits on) and confirm from the mail; the CREATE order mail through SES inbound
(the active rule set's rule, its SNS action) -> the orders topic -> the intake -> ``provision``
-> every task -> the hub -> the callback -> the credentials mail; log in as the student; a RESET;
the organiser API (resize, CSV, a webhook and its test, a purge); the time checks (a warm pool
topped up, the reminder, the end, the CLEANUP order, the thank-you mail, a hold nobody confirmed
released); SES's bounce of the thank-you mail, published to the mail feedback topic, marking the
registration (``mail-feedback``); the verifiable badges' published key; the readiness checks invoked as their state
machines do; a provisioning that fails (moto's ECS cannot start the appliance's Fargate task) and
is compensated. moto has no SES inbound: :meth:`Chain.deliver_inbound` does what SES would with
every mail sent to an address of the active rule set. The business clock cannot be moved inside
the functions, so the rehearsal moves a registration's times in the table instead.
"""
from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
import json
import re
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from infra import iam
from local.rehearsal_hub import LANDING, credentials_in, login

PARTICIPANT = {"first_name": "Ada", "last_name": "Lovelace", "company": "Analytical", "accept_terms": True}
ADMIN = {"X-WOD-Actor": "rehearsal"}
WARM_WORKSHOP = "WKSHP-SQL101"  # synced with a warm pool of one (local/rehearsal.py)


def utc_text(moment: datetime) -> str:
    """A time as pynamodb's UTCDateTimeAttribute stores it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+0000")


class Chain:
    def __init__(self, rehearsal: Any, context: ssl.SSLContext):
        self.r, self.context = rehearsal, context
        self.api = f"https://localhost:{rehearsal.ports['api']}"
        self.delivered = 0
        self.inbound: list[str] = []  # subjects of the mail SES received and handed to SNS
        self.waited: list[tuple[str, float]] = []  # what the chain waited for, and how many seconds

    # ---- mail ------------------------------------------------------------------------------------

    def sent(self) -> list[Any]:
        from moto.ses.models import ses_backends

        return ses_backends[self.r.account][self.r.region].sent_messages

    def all_mails(self) -> list[email.message.EmailMessage]:
        return [email.message_from_string(m.raw_data, policy=email.policy.default)
                for m in list(self.sent()) if hasattr(m, "raw_data")]

    def mails(self, to: str, subject: str) -> list[email.message.EmailMessage]:
        return [m for m in self.all_mails()
                if to in str(m["To"] or "") and " ".join(str(m["Subject"] or "").split()).startswith(subject)]

    @staticmethod
    def text(message: email.message.EmailMessage) -> str:
        body = message.get_body(("plain",))
        return body.get_content() if body is not None else ""

    def deliver_inbound(self) -> None:
        """SES inbound: each mail sent since to a recipient of the active rule set's rules is handed
        to the rule's SNS action, as a "Received" notification with its raw MIME (Base64) and
        passing verdicts, published as SES would: allowed by the topic's policy for ses.amazonaws.com."""
        ses, sns = self.r.client("ses"), self.r.client("sns")
        rules = ses.describe_active_receipt_rule_set().get("Rules", [])
        messages = list(self.sent())
        for message in messages[self.delivered:]:
            if not hasattr(message, "raw_data"):
                continue
            recipients = [d.lower() for d in (getattr(message, "destinations", None) or [])]
            parsed = email.message_from_string(message.raw_data, policy=email.policy.default)
            recipients = recipients or [a.lower() for a in re.findall(r"[\w.+-]+@[\w.-]+", str(parsed["To"] or ""))]
            for rule in rules:
                wanted = [r.lower() for r in rule.get("Recipients", [])]
                if not rule.get("Enabled") or not set(recipients) & set(wanted):
                    continue
                for action in rule.get("Actions", []):
                    topic = action.get("SNSAction", {}).get("TopicArn")
                    if topic:
                        self.publish_as_ses(sns, topic, rule, message.raw_data, recipients, parsed)
        self.delivered = len(messages)

    def publish_as_ses(self, sns: Any, topic: str, rule: dict, raw: str, recipients: list[str],
                       parsed: email.message.EmailMessage) -> None:
        if not self.ses_may_publish(sns, topic):
            raise RuntimeError(f"the policy of {topic} does not let SES publish to it: SES would drop the order")
        verdict = {"status": "PASS"}
        notification = {"notificationType": "Received", "content": base64.b64encode(raw.encode()).decode(),
                        "mail": {"source": str(parsed["From"] or ""), "destination": recipients,
                                 "commonHeaders": {"subject": str(parsed["Subject"] or "")}},
                        "receipt": {"recipients": recipients, "spamVerdict": verdict, "virusVerdict": verdict,
                                    "spfVerdict": verdict, "dkimVerdict": verdict, "dmarcVerdict": verdict,
                                    "action": {"type": "SNS", "topicArn": topic, "encoding": "BASE64"}}}
        sns.publish(TopicArn=topic, Message=json.dumps(notification), Subject="Amazon SES Email Receipt Notification")
        self.inbound.append(str(parsed["Subject"] or ""))
        self.r.out(f"      SES received \"{parsed['Subject']}\": published to {topic.rsplit(':', 1)[-1]}")

    def ses_may_publish(self, sns: Any, topic: str) -> bool:
        """Whether the topic's policy lets SES (of this account) publish to it."""
        policy = json.loads(sns.get_topic_attributes(TopicArn=topic)["Attributes"].get("Policy") or "{}")
        allowed = iam.Policy(policy).decide(iam.Request("sns:Publish", topic, {
            "aws:PrincipalServiceName": ("ses.amazonaws.com",), "AWS:SourceAccount": (self.r.account,)}))
        return allowed.allowed and any(s.get("Principal", {}).get("Service") == "ses.amazonaws.com"
                                       for s in policy.get("Statement", []) if s.get("Sid") == allowed.statement)

    def bounce(self, to: str, subject: str) -> str:
        """What SES's configuration set publishes when a mail bounces: a Bounce record with the
        mail's headers, to the mail feedback topic (SNS invokes ``mail-feedback``); the mark the
        registration the mail named gets."""
        from chalicelib.domain.mail import REGISTRATION_HEADER

        sent = self.mails(to, subject)[-1]
        registration = str(sent[REGISTRATION_HEADER])
        record = {"eventType": "Bounce",
                  "bounce": {"bounceType": "Permanent", "bounceSubType": "General", "reportingMTA": "dsn; rehearsal",
                             "bouncedRecipients": [{"emailAddress": to, "action": "failed", "status": "5.1.1"}],
                             "timestamp": utc_text(datetime.now(UTC)), "feedbackId": "rehearsal"},
                  "mail": {"timestamp": utc_text(datetime.now(UTC)), "messageId": str(sent["Message-ID"]),
                           "destination": [to], "headersTruncated": False,
                           "headers": [{"name": name, "value": str(value)} for name, value in sent.items()]}}
        sns, topic = self.r.client("sns"), self.r.report["resources"]["MailFeedbackTopic"]["id"]
        if not self.ses_may_publish(sns, topic):
            raise RuntimeError(f"the policy of {topic} does not let SES publish to it: bounces would be lost")
        sns.publish(TopicArn=topic, Message=json.dumps(record))
        table, key = self.r.table("customers"), {"id": {"S": registration}}
        return self.wait("the bounce marked on the registration", lambda: self.r.client("dynamodb").get_item(
            TableName=table, Key=key, ConsistentRead=True)["Item"].get("mail_bounce", {}).get("S"), 60)

    def wait(self, what: str, found: Callable[[], Any], timeout: float = 240.0, tick_every: float = 0.0) -> Any:
        """Until ``found()`` says so, SES receiving what was sent meanwhile; ``tick_every``: the time
        checks run that often too (the schedule's every minute, sooner: mail the pacer deferred
        waits in the outbox for them)."""
        started = time.monotonic()
        deadline, ticked = started + timeout, started
        while time.monotonic() < deadline:
            self.deliver_inbound()
            value = found()
            if value:
                self.waited.append((what, round(time.monotonic() - started, 1)))
                return value
            if tick_every and time.monotonic() - ticked > tick_every:
                self.tick()
                ticked = time.monotonic()
            time.sleep(0.5)
        last = [(str(m["To"]), str(m["Subject"])[:40]) for m in self.all_mails()[-4:]]
        raise RuntimeError(f"{what}: not within {timeout:.0f}s (the last mail sent: {last})")

    def notebook_events(self, student: str) -> dict:
        """A batch of the participant's notebook events, signed with the location's events key as the
        hub's relay signs it (infra/jupyterhub/wod_events.py): the API function reads that key (and never
        the hub token)."""
        events_key = self.r.client("secretsmanager").get_secret_value(
            SecretId=f"{self.r.secrets_prefix}/events-key/{self.r.parameters['Location']}")["SecretString"]
        batch = {"student": student, "seq": time.time_ns() // 1000, "issued_at": int(time.time()),
                 "events": [{"kind": "executed", "at": time.time(), "notebook": LANDING, "cell": 1}]}
        signature = "v1=" + hmac.new(events_key.encode(), json.dumps(batch).encode(), hashlib.sha256).hexdigest()
        return json.loads(self.expect(200, "POST", "/api/events", batch, {"X-WOD-Signature": signature}))

    # ---- HTTP --------------------------------------------------------------------------------------

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
             ) -> tuple[int, str, dict[str, str]]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.api}{path}", data=data, method=method, headers={
            "Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=60, context=self.context) as answer:
                return answer.status, answer.read().decode(), dict(answer.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), dict(exc.headers)

    def expect(self, status: int, method: str, path: str, body: Any = None, headers: dict | None = None) -> str:
        got, text, _ = self.call(method, path, body, headers)
        if got != status:
            raise RuntimeError(f"{method} {path} answered {got} (expected {status}): {text[:300]}")
        return text

    # ---- the participant ---------------------------------------------------------------------------

    def hold(self, address: str, workshop: str) -> str:
        """Register: the action token of the "Confirm your seat" mail's link."""
        self.expect(202, "POST", "/api/registrations", {**PARTICIPANT, "email": address, "workshop": workshop})
        mail = self.wait(f"the confirmation mail to {address}", lambda: self.mails(address, "Confirm your seat"), 90,
                         tick_every=10)
        link = re.search(r"\S+/confirm/([A-Za-z0-9_.-]+)", self.text(mail[0]))
        if not link:
            raise RuntimeError("no confirmation link in the confirmation mail")
        return link.group(1)

    def register(self, address: str, workshop: str) -> tuple[str, dict]:
        """Register and confirm from the "Confirm your seat" mail: (action token, registration)."""
        token = self.hold(address, workshop)
        registration = json.loads(self.expect(200, "POST", f"/api/registrations/{token}/confirm"))
        return token, registration

    def credentials(self, address: str, count: int = 1) -> tuple[str, str]:
        mails = self.wait(f"credentials mail #{count} to {address}",
                          lambda: (m := self.mails(address, "Your workshop is ready")) and len(m) >= count and m)
        return credentials_in(self.text(mails[count - 1]))

    def invoke(self, logical: str, event: dict) -> Any:
        """A function invoked with ``event``, as the service that triggers it would."""
        port, name = self.r.functions.port(logical), self.r.report["resources"][logical]["id"]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/2015-03-31/functions/{name}/invocations",
                                         data=json.dumps(event).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=120) as answer:
            payload = answer.read().decode()
            if answer.headers.get("X-Amz-Function-Error"):
                raise RuntimeError(f"{logical} failed: {payload[:500]}")
        return json.loads(payload)

    def invoke_as_machine(self, logical: str, event: dict) -> Any:
        """A task function invoked as its state machine invokes it: Lambda's Invoke API, with the
        state machines' role's credentials."""
        client = self.r.machine_client(self.r.region, "lambda")
        answer = client.invoke(FunctionName=self.r.report["resources"][logical]["id"], Payload=json.dumps(event))
        payload = answer["Payload"].read().decode()
        if answer.get("FunctionError"):
            raise RuntimeError(f"{logical} failed: {payload[:500]}")
        return json.loads(payload)

    def tick(self) -> dict:
        """The time checks, invoked as the EventBridge schedule does."""
        from local.workers import scheduled_event

        return self.invoke("TimeChecks", scheduled_event(self.r.region))

    def move_clock(self, registration: str, **times: datetime) -> None:
        """Bring a registration's deadlines to ``times`` (``due_at``, ``ends_at``)."""
        names = {f"#{k}": k for k in times}
        values = {f":{k}": {"S": utc_text(v)} for k, v in times.items()}
        self.r.client("dynamodb").update_item(
            TableName=self.r.table("customers"), Key={"id": {"S": registration}},
            UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in times),
            ExpressionAttributeNames=names, ExpressionAttributeValues=values)

    def executions(self, machine: str) -> list[dict]:
        client = self.r.client("stepfunctions")
        arn = self.r.report["resources"][machine]["id"]
        return client.list_executions(stateMachineArn=arn)["executions"]

    def finished(self, machine: str, count: int = 1) -> bool:
        done = [e for e in self.executions(machine) if e["status"] != "RUNNING"]
        failed = [e for e in done if e["status"] != "SUCCEEDED"]
        if failed:
            raise RuntimeError(f"{machine}: execution {failed[0]['name']} {failed[0]['status']}")
        return len(done) >= count

    # ---- the whole life ------------------------------------------------------------------------------

    def run(self, out: Callable[[str], None]) -> dict[str, Any]:
        report: dict[str, Any] = {}
        now = lambda: datetime.now(UTC)  # noqa: E731
        who, workshop = "ada@example.com", self.r.workshop

        token, registration = self.register(who, workshop)
        out(f"    registered and confirmed from the mail: {registration['status']}")
        report["registration"] = registration["status"]
        student, password = self.credentials(who)
        out(f"    order mail -> SES inbound -> SNS -> intake -> provision -> hub -> callback: "
            f"credentials for {student}")
        landed = login(self.r.hub_url, student, password, self.context)
        if not landed.endswith(f"/user/{student}/{LANDING}"):
            raise RuntimeError(f"logging in as {student} ended at {landed}")
        out(f"    logged in to the hub as {student}: {landed.split('/user/', 1)[1]}")
        report["login"] = landed.split("/user/", 1)[1]
        # the readiness checks (provision's, warm's) run when a server is slower to start than the hub's
        # answer: once each here, as their state machines invoke them (the hub may have answered at once)
        order = {"action": "CREATE", "workshop": workshop, "student": student, "registration": registration["id"]}
        checked = {"order": order, "ctx": {"deadline": time.time() + 60}}
        report["check_ready"] = self.invoke_as_machine("ProvisionCheckReady", checked)
        report["warm_check_ready"] = self.invoke_as_machine("WarmCheckReady", checked)

        self.expect(200, "POST", f"/api/registrations/{token}/reset")
        student, password = self.credentials(who, 2)
        landed = login(self.r.hub_url, student, password, self.context)
        out(f"    RESET: new notebooks and a new password, logged in again ({landed.endswith(LANDING)})")
        report["live_events"] = self.notebook_events(student)
        out(f"    notebook events as the hub relays them, signed with its token: {report['live_events']}")

        token_admin = self.r.client("secretsmanager").get_secret_value(
            SecretId=f"{self.r.secrets_prefix}/admin-token")["SecretString"]
        admin = {**ADMIN, "Authorization": f"Bearer {token_admin}"}
        report["organiser"] = self.organiser(admin, workshop, registration["id"], out)

        first = self.tick()  # the warm pool of the warm workshop: a WARM order
        self.move_clock(registration["id"], due_at=now() - timedelta(seconds=1))
        reminded = self.tick()
        self.wait("the reminder mail", lambda: self.mails(who, "One hour left"), 90, tick_every=10)
        out(f"    time checks: {first.get('warming', 0)} warm order(s); the reminder sent ({reminded['reminders']})")
        self.move_clock(registration["id"], ends_at=now() - timedelta(seconds=1), due_at=now() - timedelta(seconds=1))
        ended = self.tick()
        self.wait("the thank-you mail after the cleanup", lambda: self.mails(who, "Thank you for taking"), 180,
                  tick_every=10)
        out(f"    time checks: the session ended ({ended['expired']}), CLEANUP ordered, cleaned, thanked")
        report["mail_bounce"] = self.bounce(who, "Thank you for taking")
        out(f"    the thank-you mail bounced: SES -> mail feedback topic -> mail-feedback, the registration marked "
            f"{report['mail_bounce']}")
        key_set = json.loads(self.expect(200, "GET", "/openbadges/jwks"))  # the API signs with the badge key
        report["badge_key"] = [key["crv"] for key in key_set["keys"]]
        out(f"    verifiable badges: the issuer's key published ({', '.join(report['badge_key'])})")
        self.wait("the warm pool's WARM execution", lambda: self.finished("WarmStateMachine"), 180)
        report["time_checks"] = {"warming": first.get("warming", 0), "reminders": reminded["reminders"],
                                 "expired": ended["expired"]}

        warm, alan = self.warm_student(), "alan@example.com"
        self.register(alan, WARM_WORKSHOP)
        student, _ = self.credentials(alan)
        report["warm_taken"] = student == warm
        self.expect(200, "POST", f"/api/admin/students/{student}/purge", {}, admin)
        self.wait("the PURGE execution", lambda: self.finished("PurgeStateMachine"), 120)
        self.wait("the apology after the purge", lambda: self.mails(alan, "We could not prepare your workshop"), 90,
                  tick_every=10)
        out(f"    {WARM_WORKSHOP}: the registration took the warm {student} ({student == warm}); "
            "the organiser purged it (PURGE executed, apology sent)")

        report["hold_released"] = self.lapse(workshop, now() - timedelta(seconds=1))
        out(f"    time checks: a hold nobody confirmed released ({report['hold_released']}), its seat and "
            "address given back")

        failing = "grace@example.com"
        self.register(failing, "WKSHP-API101")
        self.wait("the apology after a failed provisioning",
                  lambda: self.mails(failing, "We could not prepare your workshop"), 240, tick_every=10)
        out("    WKSHP-API101: its appliance's task cannot start (moto's ECS fails a Fargate task in a VPC, its "
            "traceback in aws.log): provisioning compensated, apology sent")
        report["machines"] = {m: sorted(e["status"] for e in self.executions(m)) for m in (
            "ProvisionStateMachine", "ResetStateMachine", "CleanupStateMachine", "WarmStateMachine",
            "PurgeStateMachine")}
        report["failed_executions"] = self.failures(report["machines"])
        report["inbound"] = len(self.inbound)
        report["waited"] = dict(self.waited)
        longest = sorted(self.waited, key=lambda waited: -waited[1])[:3]
        out("    the longest waits: " + "; ".join(f"{what} {seconds:.0f} s" for what, seconds in longest))
        return report

    def failures(self, machines: dict[str, list[str]]) -> dict[str, list[str]]:
        """Why each execution that did not succeed ended so (its error and the start of its cause)."""
        client = self.r.client("stepfunctions")
        found: dict[str, list[str]] = {}
        for machine, statuses in machines.items():
            for execution in self.executions(machine) if set(statuses) - {"SUCCEEDED"} else []:
                if execution["status"] != "SUCCEEDED":
                    described = client.describe_execution(executionArn=execution["executionArn"])
                    found.setdefault(machine, []).append(
                        f"{execution['name']}: {described.get('error')}: {str(described.get('cause'))[:400]}")
        return found

    def lapse(self, workshop: str, past: datetime) -> str:
        """A registration nobody confirms, past its confirmation time: the time checks release it."""
        token = self.hold("lin@example.com", workshop)
        held = json.loads(self.expect(200, "GET", f"/api/registrations/{token}"))
        self.move_clock(held["id"], due_at=past, confirm_by=past)
        released = self.tick()["unconfirmed"]
        status = json.loads(self.expect(200, "GET", f"/api/registrations/{token}"))["status"]
        if released != 1 or status != "expired":
            raise RuntimeError(f"an unconfirmed hold past its time: {released} released, the registration {status}")
        return status

    def organiser(self, admin: dict, workshop: str, registration: str, out: Callable[[str], None]) -> dict:
        workshops = json.loads(self.expect(200, "GET", "/api/admin/workshops", headers=admin))
        seats = next(w for w in workshops if w["id"] == workshop)["seats_total"]
        grown = json.loads(self.expect(200, "PATCH", f"/api/admin/workshops/{workshop}",
                                       {"capacity": seats + 1}, admin))
        resized = json.loads(self.expect(200, "PATCH", f"/api/admin/workshops/{workshop}",  # the free seat again
                                         {"capacity": seats}, admin))
        status, csv, headers = self.call("GET", "/api/admin/registrations.csv", headers=admin)
        if status != 200 or registration not in csv:
            raise RuntimeError(f"the CSV export answered {status} without the registration")
        hook = json.loads(self.expect(201, "POST", "/api/admin/webhooks",
                                      {"url": "https://hooks.example.org/wod", "events": ["finished"]}, admin))
        tested = json.loads(self.expect(200, "POST", f"/api/admin/webhooks/{hook['id']}/test", {}, admin))
        attempt = tested["deliveries"][0] if tested.get("deliveries") else {}
        out(f"    organiser: capacity {seats} -> {grown.get('seats_total')} -> {resized.get('seats_total')}, CSV "
            f"({headers.get('Content-Type', '')}), webhook test: {attempt.get('status')} "
            f"({str(attempt.get('last_error') or attempt.get('error') or '')[:80]})")
        return {"resized": [seats, grown.get("seats_total"), resized.get("seats_total")], "csv": True,
                "webhook_test": attempt.get("status")}

    def warm_student(self) -> str:
        items = self.r.client("dynamodb").scan(TableName=self.r.table("students"))["Items"]
        warm = [i["id"]["S"] for i in items if i.get("warm", {}).get("BOOL")]
        if not warm:
            raise RuntimeError("no warm student after the WARM execution")
        return warm[0]
