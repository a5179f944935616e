"""Rehearse ``make deploy`` without an AWS account: ``python -m infra.rehearsal [--package dist/package]``.

Runs the deploy's own commands (:mod:`infra.deploy`: ``aws cloudformation package`` and
``aws cloudformation deploy`` through an artifact bucket) with the AWS CLI pointed at an embedded
AWS (moto's server, as local mode runs it), deploys a second time with nothing changed, lists
what the stack created, and runs a smoke flow on it: the catalog sync of ``workshops/`` into the
stack's tables and bucket, then one registration through the API function with the environment
the stack gave it, checking a seat was claimed and the welcome mail went out through SES.

moto's CloudFormation does not run the SAM transform and cannot create every resource type:
the transform is done here (``aws-sam-translator``), and what moto cannot create is left out of
what is deployed and named in the output; where moto has the service's API (secrets, SES),
the rehearsal creates those resources itself after the deploy, as the template describes them.
Each step prints its progress; a failure names its step and exits 1. Nothing leaves this machine:
the CLI and the app get placeholder credentials and the embedded AWS's address.
"""
from __future__ import annotations

import argparse
import email
import email.policy
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from infra import deploy as commands
from infra import standins

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"  # moto's account
PARAMETERS = {
    "PublicUrl": "https://workshops.example.org", "MailDomain": "example.org",
    "MailFrom": "Workshops-on-Demand <noreply@example.org>", "OrdersAddress": "orders@example.org",
    "HubUrl": "https://hub.example.org", "Location": "paris", "Locations": json.dumps({"paris": "orders@example.org"}),
    "AlarmEmail": "ops@example.org", "EcsCluster": "wod-appliances", "EcsSubnets": "subnet-0a",
    "EcsSecurityGroups": "sg-0a",
}
PARTICIPANT = {"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace", "company": "Analytical",
               "accept_terms": True}


class StepFailed(RuntimeError):
    pass


class Rehearsal:
    def __init__(self, package: Path, workshops: Path, stack: str, region: str, workshop: str,
                 out: Callable[[str], None] = print):
        self.package, self.workshops, self.stack, self.region = package, workshops, stack, region
        self.workshop, self.out = workshop, out
        self.bucket = f"{stack}-artifacts"
        self.steps = 0
        self.aws: Any = None
        self.endpoint = ""
        self.home = Path(tempfile.mkdtemp(prefix="wod-rehearsal-"))
        self.skipped: dict[str, str] = {}
        self.deployed: dict = {}
        self.report: dict[str, Any] = {"stack": stack, "skipped": {}, "stood_in": [], "resources": {}}

    # ---- plumbing ------------------------------------------------------------------------------------

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.steps += 1
        self.out(f"[{self.steps}] {title} ...")
        started = time.monotonic()
        try:
            yield
        except Exception as exc:
            raise StepFailed(f"step {self.steps} ({title}) failed: {exc}") from exc
        self.out(f"    ok ({time.monotonic() - started:.1f} s)")

    def env(self) -> dict[str, str]:
        """The CLI's and the app's environment: this machine's, less any AWS identity or setting,
        plus placeholder credentials and the embedded AWS as every service's endpoint."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WOD_", "POWERTOOLS_"))}
        none = str(self.home / "none")
        env.update(HOME=str(self.home), AWS_CONFIG_FILE=none, AWS_SHARED_CREDENTIALS_FILE=none,
                   AWS_ACCESS_KEY_ID="rehearsal", AWS_SECRET_ACCESS_KEY="rehearsal", AWS_DEFAULT_REGION=self.region,
                   AWS_REGION=self.region, AWS_ENDPOINT_URL=self.endpoint, MOTO_PORT=str(self.aws.port))
        return env

    def run(self, command: list[str]) -> None:
        done = subprocess.run(command, env=self.env(), cwd=ROOT, capture_output=True, text=True, timeout=600)
        for line in (done.stdout + done.stderr).replace("\r", "\n").strip().splitlines():
            if line.strip() and ("Uploading to" not in line or line.endswith("(100.00%)")):  # no progress meter
                self.out(f"    | {line.strip()}")
        if done.returncode != 0:
            raise RuntimeError(f"`aws {' '.join(command[3:5])}` exited {done.returncode}")

    def query(self, command: list[str]) -> str | None:
        return commands.query_command(command, self.env())

    def client(self, service: str):
        import boto3

        return boto3.session.Session(aws_access_key_id="rehearsal", aws_secret_access_key="rehearsal").client(
            service, region_name=self.region, endpoint_url=self.endpoint)

    # ---- the steps -----------------------------------------------------------------------------------

    def start_aws(self) -> None:
        with self.step("start the embedded AWS (moto's server)"):
            from local.aws import EmbeddedAws

            logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
            self.aws = EmbeddedAws(port=0).start()
            # "localhost": moto reads a template URL on it as path-style (bucket, then key)
            self.endpoint = f"http://localhost:{self.aws.port}"
            os.environ["MOTO_PORT"] = str(self.aws.port)  # where moto's custom resources answer
            self.out(f"    endpoint {self.endpoint}")
            self.run(commands.aws("s3api", "create-bucket", "--bucket", self.bucket, "--create-bucket-configuration",
                                  f"LocationConstraint={self.region}", region=self.region))
            self.out(f"    artifact bucket s3://{self.bucket}")

    def transform(self, packaged: Path) -> Path:
        """Between ``package`` and ``deploy``: the SAM transform, then what moto cannot create left out."""
        template = standins.translate(json.loads(packaged.read_text()), {**PARAMETERS, "Frontend": "true"})
        self.deployed = template
        resolve = self.resolver({})
        deployable, skipped = standins.without_unsupported(template, standins.moto_types(), resolve)
        notes = standins.fit_for_moto(deployable, resolve)
        if skipped != self.skipped:  # said once
            for logical, kind in sorted(skipped.items(), key=lambda item: (item[1], item[0])):
                if resolve.active(template["Resources"][logical]):
                    self.out(f"    skipped {logical}: {standins.why_skipped(kind)}")
            self.skipped = skipped
            self.report["skipped"] = {k: v for k, v in skipped.items() if resolve.active(template["Resources"][k])}
            for note in notes:
                self.out(f"    adapted for moto: {note}")
        out = packaged.with_name("rehearsal.json")
        out.write_text(json.dumps(deployable, indent=1))
        return out

    def deploy(self, title: str) -> None:
        with self.step(title):
            previous = os.environ.copy()
            os.environ.update(self.env())  # the transform's region; nothing else reads it
            try:
                commands.deploy(self.package, bucket=self.bucket, stack=self.stack, region=self.region,
                                parameters=PARAMETERS, endpoint=self.endpoint, run=self.run, query=self.query,
                                transform=self.transform, say=lambda line: self.out(f"    {line}"))
            finally:
                os.environ.clear()
                os.environ.update(previous)
            status = self.client("cloudformation").describe_stacks(StackName=self.stack)["Stacks"][0]["StackStatus"]
            if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
                raise RuntimeError(f"stack {self.stack} is {status}")
            self.out(f"    stack {self.stack}: {status}")

    def list_resources(self) -> None:
        with self.step("list what the stack created"):
            pages = self.client("cloudformation").get_paginator("list_stack_resources").paginate(StackName=self.stack)
            found = [summary for page in pages for summary in page["StackResourceSummaries"]]
            log_groups = {self.resolver({})(r["Properties"]["LogGroupName"]): logical
                          for logical, r in self.deployed["Resources"].items() if r["Type"] == "AWS::Logs::LogGroup"}
            created = {r["LogicalResourceId"]: {"type": r["ResourceType"], "id": r["PhysicalResourceId"]}
                       for r in found if r.get("LogicalResourceId")}
            # moto lists its log groups with neither a logical id nor a type: found by their names
            pages = self.client("logs").get_paginator("describe_log_groups").paginate()
            for group in (group for page in pages for group in page["logGroups"]):
                if group["logGroupName"] in log_groups:
                    created[log_groups[group["logGroupName"]]] = {"type": "AWS::Logs::LogGroup",
                                                                  "id": group["logGroupName"]}
            # moto lists a table no more once an update changed it (deletion protection turned on): by name
            resolve = self.resolver({})
            for logical, resource in self.deployed["Resources"].items():
                if resource["Type"] == "AWS::DynamoDB::Table" and logical not in created and resolve.active(resource):
                    name = resolve(resource["Properties"]["TableName"])
                    self.client("dynamodb").describe_table(TableName=name)
                    created[logical] = {"type": resource["Type"], "id": name}
            self.report["resources"] = created
            kinds: dict[str, int] = {}
            for resource in self.report["resources"].values():
                kinds[resource["type"]] = kinds.get(resource["type"], 0) + 1
            for kind, count in sorted(kinds.items()):
                self.out(f"    {count:3d} x {kind}")

    def resolver(self, physical: dict[str, str] | None = None) -> standins.Resolver:
        if physical is None:
            physical = {logical: r["id"] for logical, r in self.report["resources"].items()}
        return standins.Resolver(self.deployed, {**PARAMETERS, "Frontend": "true"},
                                 {"AWS::StackName": self.stack, "AWS::Region": self.region,
                                  "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws", "AWS::NoValue": ""}, physical)

    def stand_in(self) -> None:
        with self.step("stand in for what was skipped and moto has an API for"):
            done = standins.create(self.deployed, self.skipped, self.resolver(), self.client, self.out)
            self.report["stood_in"] = done
            active = self.client("ses").describe_active_receipt_rule_set().get("Metadata", {}).get("Name")
            self.report["active_rule_set"] = active
            self.out(f"    the active receipt rule set: {active}")
            if not active:
                raise RuntimeError("no receipt rule set is active")

    def sync_catalog(self) -> None:
        with self.step(f"sync {self.workshops.name}/ into the stack's tables and content bucket"):
            env = self.function_env("APIHandler")
            env.update(WOD_CONTENT_BUCKET=self.report["resources"]["ContentBucket"]["id"])
            done = subprocess.run([sys.executable, "-m", "chalicelib.catalog", "sync", str(self.workshops)],
                                  env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
            for line in (done.stdout + done.stderr).strip().splitlines():
                self.out(f"    | {line}")
            if done.returncode != 0:
                raise RuntimeError(f"the catalog sync exited {done.returncode}")
            listed = self.client("s3").list_objects_v2(Bucket=env["WOD_CONTENT_BUCKET"], Prefix=f"{self.workshop}/")
            if not listed.get("KeyCount"):
                raise RuntimeError(f"no file of {self.workshop} in the content bucket")

    def function_env(self, logical: str) -> dict[str, str]:
        """The environment the stack gave a function, on this machine's embedded AWS."""
        name = self.report["resources"][logical]["id"]
        variables = self.client("lambda").get_function_configuration(FunctionName=name)["Environment"]["Variables"]
        return {**self.env(), **variables, "WOD_AWS_ENDPOINT": self.endpoint}

    def register(self) -> None:
        with self.step("register a participant through the API function"):
            os.environ.update(self.function_env("APIHandler"))
            os.environ.update(POWERTOOLS_LOG_LEVEL="WARNING", POWERTOOLS_METRICS_DISABLED="true")  # quiet here
            from chalice.test import Client
            from moto.ses.models import ses_backends

            sys.path.insert(0, str(ROOT))
            from app import app

            sent = ses_backends[ACCOUNT][self.region].sent_messages
            with Client(app) as client:
                answer = client.http.post("/api/registrations", headers={"Content-Type": "application/json"},
                                          body=json.dumps({**PARTICIPANT, "workshop": self.workshop}))
                if answer.status_code != 202:
                    raise RuntimeError(f"POST /api/registrations answered {answer.status_code}: {answer.body!r}")
                link = confirmation_link(sent, str(PARTICIPANT["email"]))
                self.out(f"    confirmation mail sent; confirming through {link.split('.')[0][:60]}...")
                answer = client.http.post(f"/api/registrations/{link.rsplit('/', 1)[1]}/confirm",
                                          headers={"Content-Type": "application/json"}, body="")
                if answer.status_code != 200:
                    raise RuntimeError(f"the confirmation answered {answer.status_code}: {answer.body!r}")
            registration = json.loads(answer.body)
            self.out(f"    registration {registration['id'][:8]}..., status {registration['status']}")
            self.report["registration"] = registration["status"]

            prefix = PARAMETERS.get("TablePrefix", "wod")
            items = self.client("dynamodb").scan(TableName=f"{prefix}-students")["Items"]
            claimed = [i for i in items if i.get("registration_id", {}).get("S") == registration["id"]]
            if not claimed:
                raise RuntimeError("no student (seat) holds the registration")
            self.report["seat"] = {"student": claimed[0]["id"]["S"], "status": claimed[0]["status"]["S"]}
            self.out(f"    seat {self.report['seat']['student']} is {self.report['seat']['status']}")

            subjects = [subject for subject, to in map(mail_of, sent) if str(PARTICIPANT["email"]) in to]
            if not any(subject.startswith("You're registered") for subject in subjects):
                raise RuntimeError(f"SES sent {len(sent)} message(s), no welcome mail to the participant "
                                   f"(to them: {subjects})")
            self.report["mail"] = {"sent": len(sent), "to_participant": subjects}
            self.out(f"    SES sent {len(sent)} message(s); to the participant: {subjects}")

    def rehearse(self) -> dict:
        try:
            self.start_aws()
            self.deploy("deploy: aws cloudformation package + deploy")
            self.deploy("deploy again, nothing changed")
            self.list_resources()
            self.stand_in()
            self.sync_catalog()
            self.register()
        finally:
            if self.aws is not None:
                self.aws.stop()
        return self.report


def confirmation_link(sent: list, address: str) -> str:
    """The link of the "Confirm your seat" mail moto's SES sent to ``address``."""
    for message in sent:
        subject, to = mail_of(message)
        if address in to and subject.startswith("Confirm your seat") and hasattr(message, "raw_data"):
            text = email.message_from_string(message.raw_data, policy=email.policy.default)
            body = text.get_body(("plain",))
            found = re.search(r"\S+/confirm/[A-Za-z0-9_.-]+", body.get_content() if body else "")
            if found:
                return found.group(0)
    raise RuntimeError(f"no confirmation mail with a link to {address} among {len(sent)} sent")


def mail_of(message: Any) -> tuple[str, str]:
    """(subject, recipients) of a message moto's SES sent (raw or formatted)."""
    if hasattr(message, "raw_data"):
        parsed = email.message_from_string(message.raw_data)
        return str(parsed["Subject"] or ""), " ".join(str(parsed[h] or "") for h in ("To", "Cc", "Bcc"))
    return str(getattr(message, "subject", "")), json.dumps(getattr(message, "destinations", {}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.rehearsal", description=__doc__.split("\n\n")[0],
                                     epilog="Runs `make package` first if --package has no sam.json.")
    parser.add_argument("--package", type=Path, default=ROOT / "dist" / "package",
                        help="what `make package` wrote (default dist/package)")
    parser.add_argument("--workshops", type=Path, default=ROOT / "workshops", help="the catalog to sync")
    parser.add_argument("--workshop", default="WKSHP-PY101", help="the workshop to register for")
    parser.add_argument("--stack", default="wod-rehearsal")
    parser.add_argument("--region", default="eu-west-1", help="an SES receiving region")
    parser.add_argument("--report", type=Path, help="write what was created and checked here (JSON)")
    args = parser.parse_args(argv)
    if not (args.package / "sam.json").is_file():
        print(f"{args.package}/sam.json not found: run `make package` first", file=sys.stderr)
        return 1
    rehearsal = Rehearsal(args.package, args.workshops, args.stack, args.region, args.workshop)
    try:
        report = rehearsal.rehearse()
    except StepFailed as exc:
        print(f"rehearsal FAILED: {exc}", file=sys.stderr)
        return 1
    if args.report:
        args.report.write_text(json.dumps(report, indent=1))
    print(f"rehearsal passed: {len(report['resources'])} resources created, {len(report['skipped'])} skipped "
          "(listed above), a seat claimed and the welcome mail sent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
