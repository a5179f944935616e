"""Deploy ``make package``'s output with the AWS CLI: the commands ``make deploy`` runs.

``python -m infra.deploy --region R --stack S --bucket B [--package dist/package] -- Name=Value ...``

1. ``aws cloudformation package``: the code (``deployment.zip``) to the artifact bucket, the
   template rewritten to point at it;
2. ``aws cloudformation deploy``: the template through the same bucket (under ``<stack>/``),
   a change set, executed; nothing changed is a success (``--no-fail-on-empty-changeset``);
3. the hub host's files (``infra/hub``, ``infra/jupyterhub``) as one archive to the stack's
   content bucket, where the hub host's boot script waits for them;
4. the stack's outputs.

The parameters are checked first, so a deploy that cannot work stops before it uploads
anything. ``local/rehearsal.py`` runs these same commands against an embedded AWS.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tarfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CAPABILITIES = ("CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND")
HUB_SOURCES = ("infra/hub", "infra/jupyterhub")  # what the hub host's bootstrap.sh needs
STACK = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,38}")  # functions are named <stack>-<function>
LOCATION = re.compile(r"[a-z][a-z0-9-]{0,30}")  # the template's Location pattern
# the template's AlarmEmail pattern: it is also an argument in the hub host's boot script
ALARM_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


class DeployError(RuntimeError):
    """A deploy that cannot work or did not: the message says which and why."""


def parse_parameters(pairs: Sequence[str]) -> dict[str, str]:
    """``Name=Value`` words (as ``PARAMS`` splits in the shell) -> a mapping."""
    parameters = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise DeployError(f"parameter {pair!r}: expected Name=Value")
        parameters[name] = value
    return parameters


def check_parameters(parameters: Mapping[str, str]) -> None:
    """Refuse what the stack would take but could not work with."""
    frontend = parameters.get("Frontend", "true") == "true"
    if frontend and not parameters.get("AlarmEmail", "").strip():
        raise DeployError("AlarmEmail is empty: a frontend stack sends its alarms (failed provisioning, "
                          "rejected orders, bounces) to an address someone reads. Add AlarmEmail=ops@example.org "
                          "to PARAMS, then confirm the subscription email AWS sends there.")
    missing = [name for name in ("PublicUrl", "MailDomain", "MailFrom", "OrdersAddress", "HubUrl")
               if not parameters.get(name)]
    if missing:
        raise DeployError(f"missing parameter(s) {', '.join(missing)}: see docs/deploy.md, section 3")
    alarm = parameters.get("AlarmEmail", "")
    if alarm and not ALARM_EMAIL.fullmatch(alarm):
        raise DeployError(f"AlarmEmail={alarm!r}: one plain address (name@example.org), no display name")
    check_locations(parameters.get("Locations", "{}"), frontend)
    check_limits(parameters)
    check_venue(parameters.get("VenueNetworks", ""))
    waf = parameters.get("WafRateLimit", "0")
    if not (waf.isdigit() and (int(waf) == 0 or 10 <= int(waf) <= 2_000_000_000)):
        raise DeployError(f"WafRateLimit={waf!r}: expected 0 (no WAF) or 10 to 2000000000 requests per 5 minutes "
                          "from one address (WAF refuses a lower limit)")


def check_limits(parameters: Mapping[str, str]) -> None:
    """The event's limits (``infra.template.LIMITS``): numbers within their range, whole ones but
    the mail share; the functions would refuse to start with anything else."""
    from infra.limits import DECIMAL, LIMITS, WHOLE

    for name, limit in LIMITS.items():
        raw = parameters.get(name)
        if raw is None:
            continue
        whole = limit.whole
        if not re.fullmatch(WHOLE if whole else r"[0-9]+(\.[0-9]*)?|\.[0-9]+", raw):
            raise DeployError(f"{name}={raw!r}: expected {'a whole number' if whole else 'a number'} "
                              f"({limit.description.split(';')[0]}; docs/deploy.md, sizing)")
        value = int(raw) if whole else float(raw)
        # in range, and (a share) in the form the template's AllowedPattern takes
        if not limit.low <= value <= limit.high or not (whole or re.fullmatch(DECIMAL, raw)):
            raise DeployError(f"{name}={raw!r}: expected {_plain(limit.low)} to {_plain(limit.high)} "
                              f"({limit.description.split(';')[0]})")


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def check_venue(value: str) -> None:
    """``VenueNetworks``: addresses or networks, as the functions read them (or they would not start)."""
    from chalicelib.settings import SettingsError, load_settings

    try:
        load_settings({"WOD_VENUE_NETWORKS": value})
    except SettingsError as exc:
        raise DeployError(f"VenueNetworks={value!r}: {str(exc).split(': ', 1)[1]}") from None


def check_locations(value: str, frontend: bool) -> None:
    """``Locations`` is read by every function at start: a value that is not a JSON object of
    location -> order address would stop them all, and a frontend without one sends no order."""
    hint = ("Locations must be a JSON object of location -> order address, e.g. "
            """Locations='{\"paris\":\"orders@example.org\"}' inside PARAMS="..." (docs/deploy.md)""")
    try:
        locations = json.loads(value)
    except ValueError:
        raise DeployError(f"Locations={value!r} is not JSON. {hint}") from None
    if not isinstance(locations, dict) or not all(
            isinstance(name, str) and LOCATION.fullmatch(name) and isinstance(address, str) and "@" in address
            for name, address in locations.items()):
        raise DeployError(f"Locations={value!r}: {hint}")
    if frontend and not locations:
        raise DeployError(f"Locations is empty: the frontend would have nowhere to send any order. {hint}")


def check_account(parameters: Mapping[str, str], *, stack: str, region: str, endpoint: str | None, query: Query,
                  new: bool) -> None:
    """What is already in the account and region that the stack would break or trip on, named
    before anything is uploaded: a location stack away from its frontend's tables, another
    application's active receipt rule set, an SES identity of ``MailDomain`` made outside the stack."""
    def read(*arguments: str) -> str:
        answer = query(aws(*arguments, "--output", "text", region=region, endpoint=endpoint))
        if answer is None:
            raise DeployError(f"`aws {' '.join(arguments[:2])}` failed in {region} (see its message above); "
                              "nothing was changed")
        return answer.strip()

    prefix, frontend = parameters.get("TablePrefix", "wod"), parameters.get("Frontend", "true") == "true"
    tables = read("dynamodb", "list-tables", "--query", "TableNames").split() if new or not frontend else []
    if not frontend:
        if f"{prefix}-students" not in tables:
            raise DeployError(
                f"no table {prefix}-students in {region}: a location stack works on its frontend's tables and keys "
                "in its own region (their ARNs and the SDK's region are the stack's), so deploy it in the "
                "frontend's region, with the frontend's TablePrefix and SecretsPrefix; locations in other regions "
                "are not supported")
    if new:
        check_leftovers(parameters, tables, region=region, frontend=frontend, read=read)
    given = parameters.get("ReceiptRuleSet", "")
    if given or parameters.get("ReplaceActiveRuleSet", "false") != "true":
        active = read("ses", "describe-active-receipt-rule-set", "--query", "Metadata.Name")
        if given and given != active:
            raise DeployError(
                f"ReceiptRuleSet={given} is not the active receipt rule set in {region} "
                f"({'none is active' if active in ('', 'None') else f'{active} is'}): a rule in a set that is not "
                "active receives no mail, so this location would never get its orders. Give the active set's name "
                "(the frontend's OrdersRuleSetName), or leave ReceiptRuleSet empty for a rule set of the stack's own")
        if not given and active not in ("", "None", f"{stack}-orders"):
            raise DeployError(
                f"the active SES receipt rule set in {region} is {active}, not this stack's: only one is active "
                f"per region, and replacing it would cut off the mail its rules receive. Deploy with "
                f"ReceiptRuleSet={active} to add this stack's rule to it, or ReplaceActiveRuleSet=true to replace it")
    domain, adopted = parameters.get("MailDomain", ""), parameters.get("MailIdentityExists", "false") == "true"
    if frontend and domain and (new or adopted):
        found = read("ses", "get-identity-verification-attributes", "--identities", domain, "--query",
                     f"VerificationAttributes.\"{domain}\".VerificationStatus")
        if adopted and found in ("", "None"):
            raise DeployError(
                f"MailIdentityExists=true, but SES has no identity {domain} in {region}: the stack would create none "
                "and send nothing. Deploy with MailIdentityExists=false to create it (with Easy DKIM)")
        if not adopted and found not in ("", "None"):
            raise DeployError(
                f"SES already has the identity {domain} in {region} ({found}), made outside this stack: deploy with "
                "MailIdentityExists=true to use it as it is (its DKIM records stay as they are, and the stack has "
                "no DkimRecord outputs), or remove it first")


def check_leftovers(parameters: Mapping[str, str], tables: list[str], *, region: str, frontend: bool,
                    read: Callable[..., str]) -> None:
    """A new stack's tables and secrets must not exist yet: tables outlive a deleted stack, and a
    deleted secret keeps its name through its recovery window; either makes the create fail halfway."""
    from infra.template import SECRETS, table_kinds

    prefix, secrets = parameters.get("TablePrefix", "wod"), parameters.get("SecretsPrefix", "/wod")
    kept = sorted(set(tables) & {f"{prefix}-{kind}" for kind in table_kinds()}) if frontend else []
    if kept:
        raise DeployError(
            f"the tables {', '.join(kept)} already exist in {region} (kept from a stack deleted before?): a new "
            "frontend stack creates its own. Deploy with another TablePrefix, or delete them first (after a backup: "
            "they hold the registrations)")
    location = parameters.get("Location", "aws")
    wanted = {f"{secrets}/{name}" if scope == "shared" else f"{secrets}/{name}/{location}"
              for name, scope in SECRETS.items() if frontend or scope == "location"}
    found = set(read("secretsmanager", "list-secrets", "--include-planned-deletion", "--filters",
                     f"Key=name,Values={secrets}/", "--query", "SecretList[].Name").split())
    if found & wanted:
        names = ", ".join(sorted(found & wanted))
        raise DeployError(
            f"the secret(s) {names} already exist in {region} (or wait out the recovery window of a deleted stack's): "
            "a new stack creates its own. Deploy with another SecretsPrefix or Location, or remove them for good "
            "(`aws secretsmanager delete-secret --force-delete-without-recovery --secret-id <name>`, after "
            "`restore-secret` if scheduled for deletion)")


def aws(*arguments: str, region: str, endpoint: str | None = None) -> list[str]:
    """An AWS CLI command line (the CLI installed from requirements-dev.txt)."""
    command = [sys.executable, "-m", "awscli", *arguments, "--region", region]
    return command + (["--endpoint-url", endpoint] if endpoint else [])


def package_command(template: Path, out: Path, *, bucket: str, stack: str, region: str,
                    endpoint: str | None = None) -> list[str]:
    return aws("cloudformation", "package", "--template-file", str(template), "--s3-bucket", bucket,
               "--s3-prefix", stack, "--output-template-file", str(out), "--use-json",
               region=region, endpoint=endpoint)


def deploy_command(template: Path, *, bucket: str, stack: str, region: str, parameters: Mapping[str, str],
                   endpoint: str | None = None) -> list[str]:
    overrides = [f"{name}={value}" for name, value in parameters.items()]
    return aws("cloudformation", "deploy", "--stack-name", stack, "--template-file", str(template),
               "--capabilities", *CAPABILITIES, "--s3-bucket", bucket, "--s3-prefix", stack,
               "--no-fail-on-empty-changeset", *(["--parameter-overrides", *overrides] if overrides else []),
               region=region, endpoint=endpoint)


def status_command(*, stack: str, region: str, endpoint: str | None = None) -> list[str]:
    """The stack's status as a JSON list, empty when there is no such stack: a command that
    succeeds either way, so that a failure (throttling, no network) is never taken for "no stack"."""
    return aws("cloudformation", "list-stacks", "--query",
               f"StackSummaries[?StackName=='{stack}' && StackStatus!='DELETE_COMPLETE'].StackStatus",
               "--output", "json", region=region, endpoint=endpoint)


def stack_status(answer: str | None, stack: str) -> str | None:
    """``status_command``'s answer -> the status, None when the stack does not exist."""
    try:
        statuses = json.loads(answer) if answer is not None else None
    except ValueError:
        statuses = None
    if not isinstance(statuses, list):
        raise DeployError(f"the status of stack {stack} could not be read (see the AWS CLI's message above); "
                          "nothing was changed: run the deploy again")
    return str(statuses[0]) if statuses else None


def delete_commands(*, stack: str, region: str, endpoint: str | None = None) -> list[list[str]]:
    return [aws("cloudformation", "delete-stack", "--stack-name", stack, region=region, endpoint=endpoint),
            aws("cloudformation", "wait", "stack-delete-complete", "--stack-name", stack, region=region,
                endpoint=endpoint)]


def outputs_command(*, stack: str, region: str, endpoint: str | None = None) -> list[str]:
    return aws("cloudformation", "describe-stacks", "--stack-name", stack, "--query", "Stacks[0].Outputs",
               "--output", "table", region=region, endpoint=endpoint)


def bucket_command(*, stack: str, region: str, endpoint: str | None = None) -> list[str]:
    return aws("cloudformation", "list-stack-resources", "--stack-name", stack, "--query",
               "StackResourceSummaries[?LogicalResourceId=='ContentBucket'].PhysicalResourceId", "--output", "text",
               region=region, endpoint=endpoint)


def upload_command(archive: Path, *, bucket: str, region: str, endpoint: str | None = None) -> list[str]:
    from infra.hub_host import HUB_ARCHIVE

    return aws("s3", "cp", "--only-show-errors", str(archive), f"s3://{bucket}/{HUB_ARCHIVE}", region=region,
               endpoint=endpoint)


def hub_archive(path: Path) -> Path:
    """``infra/hub`` and ``infra/jupyterhub`` in one gzipped tar, paths kept (no bytecode)."""
    with tarfile.open(path, "w:gz") as tar:
        for source in HUB_SOURCES:
            tar.add(ROOT / source, arcname=source,
                    filter=lambda info: None if "__pycache__" in info.name else info)
    return path


Runner = Callable[[list[str]], None]
Query = Callable[[list[str]], "str | None"]  # a command's output, None if it failed


def query_command(command: list[str], env: Mapping[str, str] | None = None) -> str | None:
    done = subprocess.run(command, env=None if env is None else dict(env), cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def run_command(command: list[str], env: Mapping[str, str] | None = None) -> None:
    """Run one CLI command, its output shown; :class:`DeployError` if it fails."""
    if subprocess.run(command, env=None if env is None else dict(env), cwd=ROOT).returncode != 0:
        raise DeployError(f"`aws {' '.join(command[3:5])}` failed (its message is above)")


def deploy(package: Path, *, bucket: str, stack: str, region: str, parameters: Mapping[str, str],
           endpoint: str | None = None, run: Runner = run_command, query: Query = query_command,
           transform: Callable[[Path], Path] | None = None, say: Callable[[str], None] = print) -> Path:
    """Package and deploy ``package/sam.json``; returns the template CloudFormation deployed.
    ``transform`` (the rehearsal's) rewrites the packaged template before it is deployed.

    A first deploy creates the tables without deletion protection, so that a failure rolls them
    back (``RetainExceptOnCreate``) and leaves nothing in the way of the next try; once created,
    a second change set turns the protection on. A stack left empty by a failed first deploy
    (``ROLLBACK_COMPLETE``, which CloudFormation cannot update) is removed before trying again."""
    check_parameters(parameters)
    if not STACK.fullmatch(stack):
        raise DeployError(f"STACK={stack!r}: letters, digits and hyphens, starting with a letter, 39 at most")
    status = stack_status(query(status_command(stack=stack, region=region, endpoint=endpoint)), stack)
    if status == "ROLLBACK_COMPLETE":
        say(f"stack {stack}: its first deploy failed and was rolled back (nothing kept); removing it to try again")
        for command in delete_commands(stack=stack, region=region, endpoint=endpoint):
            run(command)
        status = None
    first = status in (None, "REVIEW_IN_PROGRESS")
    check_account(parameters, stack=stack, region=region, endpoint=endpoint, query=query, new=first)
    packaged = package / "packaged.json"
    run(package_command(package / "sam.json", packaged, bucket=bucket, stack=stack, region=region,
                        endpoint=endpoint))
    deployed = transform(packaged) if transform else packaged
    protect = {**parameters, "TableDeletionProtection": "true"}
    run(deploy_command(deployed, bucket=bucket, stack=stack, region=region, endpoint=endpoint,
                       parameters={**parameters, "TableDeletionProtection": "false"} if first else protect))
    if first:
        say(f"stack {stack} created: turning on the tables' deletion protection")
        run(deploy_command(deployed, bucket=bucket, stack=stack, region=region, parameters=protect,
                           endpoint=endpoint))
    content = query(bucket_command(stack=stack, region=region, endpoint=endpoint))
    if not content or content == "None":
        raise DeployError(f"stack {stack} has no ContentBucket: the hub host's files were not uploaded")
    run(upload_command(hub_archive(package / "wod-hub.tar.gz"), bucket=content, region=region, endpoint=endpoint))
    say(f"hub host files uploaded to s3://{content}/ (the hub host installs from them)")
    return deployed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", type=Path, default=ROOT / "dist" / "package",
                        help="what `make package` wrote (sam.json, deployment.zip)")
    parser.add_argument("--region", required=True)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--bucket", default="", help="an S3 bucket of yours in the region, for the code")
    parser.add_argument("parameters", nargs="*", help="the stack's parameters, Name=Value (docs/deploy.md)")
    args = parser.parse_args(argv)
    try:
        if not args.bucket:
            raise DeployError(f"set ARTIFACT_BUCKET to an S3 bucket in {args.region} for the code "
                              "(see docs/deploy.md)")
        deploy(args.package, bucket=args.bucket, stack=args.stack, region=args.region,
               parameters=parse_parameters(args.parameters))
        run_command(outputs_command(stack=args.stack, region=args.region))
    except DeployError as exc:
        print(f"deploy stopped: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
