"""Rehearse ``make deploy`` without an AWS account: ``python -m local.rehearsal [--package dist/package]``.

Runs the deploy's own commands (:mod:`infra.deploy`: ``aws cloudformation package`` and
``aws cloudformation deploy`` through an artifact bucket) with the AWS CLI pointed at an embedded
AWS (moto's server, as local mode runs it) that enforces IAM, deploys a second time with nothing
changed, lists what the stack created, stands in for what moto cannot create, then runs a
participant's whole life on it (``local/rehearsal_chain.py``) with every function in a process of
its own, under its own role's credentials and with the stack's environment, and the location's
JupyterHub set up by ``infra/hub/bootstrap.sh`` on this machine. Every AWS call each function
made is evaluated against its role's policy (``infra/iam.py``); a refused one fails the rehearsal,
naming function, action and resource; ``--map`` writes what each function used and which
statement allowed it (``infra/iam-map.json``).

moto's CloudFormation does not run the SAM transform and cannot create every resource type:
the transform is done here (``aws-sam-translator``), and what moto cannot create is left out of
what is deployed and named in the output; where moto has the service's API, the rehearsal
creates those resources itself after the deploy, as the template describes them. Each step
prints its progress; a failure names its step and exits 1. Nothing leaves this machine.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from infra import deploy as commands
from infra import iam_map, standins
from local import rehearsal_hub, rehearsal_moto
from local.rehearsal_chain import WARM_WORKSHOP
from local.rehearsal_iam import Functions, Roles, enforce, invoke_as, map_stream, route

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"  # moto's account
SECRETS_PREFIX = "/wod"
BASE_PARAMETERS = {
    "MailDomain": "example.org", "MailFrom": "Workshops-on-Demand <noreply@example.org>",
    "OrdersAddress": "orders@example.org", "Location": "paris",
    "Locations": json.dumps({"paris": "orders@example.org"}),
    "AlarmEmail": "ops@example.org", "EcsCluster": "wod-appliances", "EcsSubnets": "subnet-0a",
    "EcsSecurityGroups": "sg-0a", "HubHost": "false",  # the hub: this machine, set up by bootstrap.sh
    # a provisioning that cannot succeed (the appliance: moto's ECS cannot run it) is retried for a
    # minute and a half, then compensated: the rehearsal sees the apology without waiting an event's
    # patience, and a participant's first server, cold on a busy machine, still has the time to start
    "StuckMinutes": "2", "ReadySeconds": "90",
}
DEFAULT_HUB_PREFIX = Path("/opt/wod-rehearsal-hub")  # kept: a second rehearsal installs nothing; not under
# /tmp or /var/tmp, which each student server has a private one of


class StepFailed(RuntimeError):
    pass


class Rehearsal:
    def __init__(self, package: Path, workshops: Path, stack: str, region: str, workshop: str,
                 hub_prefix: Path = DEFAULT_HUB_PREFIX, out: Callable[[str], None] = print):
        self.package, self.workshops, self.stack, self.region = package, workshops, stack, region
        self.workshop, self.out, self.hub_prefix = workshop, out, hub_prefix
        self.account, self.secrets_prefix = ACCOUNT, SECRETS_PREFIX
        self.bucket = f"{stack}-artifacts"
        self.steps = 0
        self.aws: Any = None
        self.endpoint = ""
        self.home = Path(tempfile.mkdtemp(prefix="wod-rehearsal-"))
        self.skipped: dict[str, str] = {}
        self.deployed: dict = {}
        self.deployer: dict[str, str] = {}
        self.ports = dict(zip(("api", "hub", "hub_api", "proxy_api"), rehearsal_hub.free_ports(4), strict=True))
        self.hub_url = f"https://localhost:{self.ports['hub']}"
        self.parameters = {**BASE_PARAMETERS, "PublicUrl": f"https://localhost:{self.ports['api']}",
                           "HubUrl": self.hub_url}
        self.cert, self.key = rehearsal_hub.certificate(self.home)
        self.context = ssl.create_default_context(cafile=str(self.cert))
        self.roles: Roles | None = None
        self.functions = Functions(self.home, region, ACCOUNT, self.home / "calls.jsonl")
        self.stopping = threading.Event()  # the stream mapping's reader stops with the rehearsal
        self.hub: rehearsal_hub.HubHost | None = None
        self.machine_client: Callable[..., Any] | None = None  # the state machines' clients, once running
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
            raise StepFailed(f"step {self.steps} ({title}) failed: {exc} (logs: {self.home})") from exc
        self.out(f"    ok ({time.monotonic() - started:.1f} s)")

    def env(self) -> dict[str, str]:
        """The CLI's environment: this machine's, less any AWS identity or setting, plus the
        deployer's credentials and the embedded AWS as every service's endpoint."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WOD_", "POWERTOOLS_"))}
        none = str(self.home / "none")
        env.update(HOME=str(self.home), AWS_CONFIG_FILE=none, AWS_SHARED_CREDENTIALS_FILE=none,
                   AWS_DEFAULT_REGION=self.region, AWS_REGION=self.region, AWS_ENDPOINT_URL=self.endpoint,
                   MOTO_PORT=str(self.aws.port))
        env.update({k: v for k, v in self.deployer.items() if k.startswith("AWS_")})
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

    def client(self, service: str, session: Any = None):
        import boto3

        session = session or boto3.session.Session(aws_access_key_id=self.deployer["AWS_ACCESS_KEY_ID"],
                                                   aws_secret_access_key=self.deployer["AWS_SECRET_ACCESS_KEY"])
        return session.client(service, region_name=self.region, endpoint_url=self.endpoint)

    def table(self, kind: str) -> str:
        return f"{self.parameters.get('TablePrefix', 'wod')}-{kind}"

    # ---- the steps -----------------------------------------------------------------------------------

    def start_aws(self) -> None:
        with self.step("start the embedded AWS (moto's server), IAM enforced"):
            from local.aws import EmbeddedAws

            # no line per request; what moto fails to do (it cannot start a Fargate task, say) goes to a log
            werkzeug = logging.getLogger("werkzeug")
            werkzeug.setLevel(logging.WARNING)
            werkzeug.addHandler(logging.FileHandler(self.home / "aws.log"))
            werkzeug.propagate = False
            self.aws = EmbeddedAws(port=0).start()
            # "localhost": moto reads a template URL on it as path-style (bucket, then key)
            self.endpoint = f"http://localhost:{self.aws.port}"
            os.environ["MOTO_PORT"] = str(self.aws.port)  # where moto's custom resources answer
            self.deployer = enforce(self.endpoint, self.region)
            rehearsal_moto.appliance_network(self)
            self.out(f"    endpoint {self.endpoint}; every request from now on is signed and authorized, "
                     f"the deploy's as {self.deployer['arn']}; its own errors: {self.home / 'aws.log'}")
            self.run(commands.aws("s3api", "create-bucket", "--bucket", self.bucket, "--create-bucket-configuration",
                                  f"LocationConstraint={self.region}", region=self.region))
            self.out(f"    artifact bucket s3://{self.bucket}")

    def transform(self, packaged: Path) -> Path:
        """Between ``package`` and ``deploy``: the SAM transform, then what moto cannot create left out."""
        template = standins.translate(json.loads(packaged.read_text()), {**self.parameters, "Frontend": "true"})
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
                                parameters=self.parameters, endpoint=self.endpoint, run=self.run, query=self.query,
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
        return standins.Resolver(self.deployed, {**self.parameters, "Frontend": "true"},
                                 {"AWS::StackName": self.stack, "AWS::Region": self.region,
                                  "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws", "AWS::NoValue": ""}, physical)

    def take_roles(self) -> None:
        with self.step("take the stack's roles: deployed policies kept, moto's copies, AssumeRole"):
            self.roles = Roles(self.client, self.deployer["arn"])
            self.roles.take(self.report["resources"])
            for logical in sorted(self.roles.names):
                self.roles.assume(logical)
            self.out(f"    {len(self.roles.names)} roles, each assumed through STS")

    def stand_in(self) -> None:
        with self.step("stand in for what was skipped and moto has an API for"):
            assert self.roles is not None
            sessions = {logical: self.roles.session(logical, self.region) for logical in self.roles.names}
            done = standins.create(self.deployed, self.skipped, self.resolver(), self.client, self.out,
                                   role_client=lambda role, service: self.client(service, sessions[role]),
                                   account=ACCOUNT, region=self.region)
            self.report["stood_in"] = done
            active = self.client("ses").describe_active_receipt_rule_set().get("Metadata", {}).get("Name")
            self.report["active_rule_set"] = active
            self.out(f"    the active receipt rule set: {active}")
            if not active:
                raise RuntimeError("no receipt rule set is active")
            cluster, family = self.parameters["EcsCluster"], "wod-appliance-wkshp-api101"
            ecs = self.client("ecs")
            ecs.create_cluster(clusterName=cluster)
            ecs.register_task_definition(family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
                                         cpu="256", memory="512", containerDefinitions=[
                                             {"name": "appliance", "image": "wod/api101-appliance", "essential": True,
                                              "memory": 512}])
            self.out(f"    ECS cluster {cluster} and task definition {family} (yours, not the stack's): registered")

    def sync_catalog(self) -> None:
        with self.step(f"sync {self.workshops.name}/ into the stack's tables and content bucket (as the operator)"):
            catalog = self.home / "workshops"
            shutil.copytree(self.workshops, catalog)
            with open(catalog / WARM_WORKSHOP / "workshop.yaml", "a") as spec:
                spec.write("\nwarm_pool: 1\n")
            env = {**self.env(), **self.function_variables("APIHandler"), "WOD_AWS_ENDPOINT": self.endpoint,
                   "WOD_CONTENT_BUCKET": self.report["resources"]["ContentBucket"]["id"]}
            done = subprocess.run([sys.executable, "-m", "chalicelib.catalog", "sync", str(catalog)],
                                  env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
            for line in (done.stdout + done.stderr).strip().splitlines():
                self.out(f"    | {line}")
            if done.returncode != 0:
                raise RuntimeError(f"the catalog sync exited {done.returncode}")
            listed = self.client("s3").list_objects_v2(Bucket=env["WOD_CONTENT_BUCKET"], Prefix=f"{self.workshop}/")
            if not listed.get("KeyCount"):
                raise RuntimeError(f"no file of {self.workshop} in the content bucket")

    def function_configuration(self, logical: str) -> dict[str, Any]:
        return rehearsal_moto.function_configuration(self, logical)

    def function_variables(self, logical: str) -> dict[str, str]:
        return self.function_configuration(logical)["Environment"]["Variables"]

    def start_hub(self) -> None:
        with self.step(f"the location's JupyterHub: infra/hub/bootstrap.sh into {self.hub_prefix}"):
            assert self.roles is not None
            self.hub = rehearsal_hub.HubHost(
                self.hub_prefix, self.home / "hub.log", table=self.table("students"),
                secret=f"{SECRETS_PREFIX}/hub-token/{self.parameters['Location']}", region=self.region,
                endpoint=self.endpoint, cert=self.cert, key=self.key, port=self.ports["hub"],
                api_port=self.ports["hub_api"], proxy_api_port=self.ports["proxy_api"],
                credentials=self.roles.assume("HubHostRole"))
            seconds = self.hub.start(self.context)
            self.out(f"    {self.hub_url}: up in {seconds:.0f} s, its token and students read with HubHostRole")

    def start_functions(self) -> None:
        with self.step("every function in a process of its own, under its own role"):
            assert self.roles is not None
            specs = iam_map.function_specs(self)
            self.functions.start(specs)
            route(self.functions, self.region)
            self.machine_client = invoke_as(self.roles, "StateMachineRole", self.functions.record, iam_map.where(self))
            if not rehearsal_moto.stream_mappings(self):
                raise RuntimeError("the stack made no event source mapping of the registrations' stream")
            map_stream(self.roles, "OutboxDispatcher", self.functions, iam_map.where(self), self.table("customers"),
                       self.endpoint, self.stopping)
            rehearsal_moto.executing_machines(self)
            self.out(f"    {len(specs)} functions; Step Functions invokes them as StateMachineRole; the registrations' "
                     "stream goes to OutboxDispatcher, read with its role")

    def chain(self) -> None:
        with self.step("a participant's whole life, through the stack's resources"):
            from local.rehearsal_chain import Chain

            self.report["chain"] = Chain(self, self.context).run(self.out)

    def check_iam(self, map_path: Path | None) -> None:
        with self.step("every AWS call of every function, against its role's policy"):
            assert self.roles is not None
            records = self.functions.records()
            refused = [r for r in records if not r["allowed"]]
            built = iam_map.build(self, records)
            self.report["iam"] = {"calls": len(records), "refused": refused,
                                  "unused": built["unused"], "checked": self.roles.checked}
            if map_path is not None:
                kept = json.loads(map_path.read_text()) if map_path.exists() else {}
                built = iam_map.merge(kept, built)
                map_path.write_text(json.dumps(built, indent=1, sort_keys=True) + "\n")
                self.out(f"    the map of every function's AWS use: {map_path}")
            self.out(f"    {len(records)} IAM requests by {len({r['function'] for r in records})} roles")
            if refused:
                lines = sorted({f"{r['function']}: {r['action'] or r['operation']} on {r['resource'] or '?'} "
                                f"({refusal(r)})" for r in refused})
                raise RuntimeError("AccessDenied:\n      " + "\n      ".join(lines))

    def rehearse(self, map_path: Path | None = None) -> dict:
        try:
            self.start_aws()
            rehearsal_moto.refusals(self)
            self.deploy("deploy: aws cloudformation package + deploy")
            self.deploy("deploy again, nothing changed")
            self.list_resources()
            self.take_roles()
            self.stand_in()
            self.sync_catalog()
            self.start_hub()
            self.start_functions()
            try:
                self.chain()
            except StepFailed as exc:  # what the functions were refused says why, more often than not
                self.out(f"    {exc}")
                self.check_iam(map_path)
                raise
            self.check_iam(map_path)
        finally:
            self.stopping.set()
            self.functions.stop()
            if self.hub is not None:
                self.hub.stop()
            if self.aws is not None:
                self.aws.stop()
        shutil.rmtree(self.home, ignore_errors=True)  # kept after a failure: the functions' logs are there
        return self.report


def refusal(record: dict[str, Any]) -> str:
    if record["denied_by"] == "moto":
        return f"moto: {record.get('message', '')}"
    if record.get("unevaluated"):
        return f"not evaluable here: {record['unevaluated']}"
    return f"explicit deny in {record['denied_by']}" if record["denied_by"] else "no statement allows it"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.rehearsal", description=__doc__.split("\n\n")[0],
                                     epilog="Runs `make package` first if --package has no sam.json.")
    parser.add_argument("--package", type=Path, default=ROOT / "dist" / "package",
                        help="what `make package` wrote (default dist/package)")
    parser.add_argument("--workshops", type=Path, default=ROOT / "workshops", help="the catalog to sync")
    parser.add_argument("--workshop", default="WKSHP-PY101", help="the workshop to register for")
    parser.add_argument("--stack", default="wod-rehearsal")
    parser.add_argument("--region", default="eu-west-1", help="an SES receiving region")
    parser.add_argument("--hub-prefix", type=Path, default=DEFAULT_HUB_PREFIX,
                        help=f"where bootstrap.sh installs the hub (kept between runs; default {DEFAULT_HUB_PREFIX})")
    parser.add_argument("--report", type=Path, help="write what was created and checked here (JSON)")
    parser.add_argument("--map", type=Path, help="write the map of every function's AWS use here (JSON)")
    args = parser.parse_args(argv)
    if not (args.package / "sam.json").is_file():
        print(f"{args.package}/sam.json not found: run `make package` first", file=sys.stderr)
        return 1
    started = time.monotonic()
    rehearsal = Rehearsal(args.package, args.workshops, args.stack, args.region, args.workshop, args.hub_prefix)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop what it started (functions, hub), then go
    try:
        report = rehearsal.rehearse(args.map)
    except StepFailed as exc:
        print(f"rehearsal FAILED: {exc}", file=sys.stderr)
        if args.report:
            args.report.write_text(json.dumps(rehearsal.report, indent=1, default=str))
        return 1
    report["seconds"] = round(time.monotonic() - started, 1)
    if args.report:
        args.report.write_text(json.dumps(report, indent=1, default=str))
    print(f"rehearsal passed in {report['seconds']:.0f} s: {len(report['resources'])} resources created, "
          f"{len(report['skipped'])} skipped (listed above), a participant's whole life under the functions' "
          f"own roles, {report['iam']['calls']} IAM requests allowed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
