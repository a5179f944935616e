"""Build the CloudFormation that ``chalice package --merge-template`` merges into Chalice's own.

Its resources are merged with the operations and the hub host by ``python -m infra.merge``.

Chalice declares the functions, the API, the schedule and the SNS subscriptions; this adds
everything else from the definitions in ``infra/``: the tables (``tables.json``), the state
machines (``statemachines/*.asl.json`` with their task ARNs substituted), the SES receipt
rule -> SNS topic for orders, the content bucket, the secrets, the alarms, the JupyterHub
host's role, and one IAM role per function holding only what that function uses.

One template serves two kinds of stacks: ``Frontend=true`` (catalog, registrations, tables,
shared keys, time checks, and the first location's backend) and ``Frontend=false`` (one more
location: its own order address, topic, state machines, order, callback and hub keys and content,
on the frontend's tables).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib.backend.tasks import ACTIONS
from infra.limits import DECIMAL, LIMITS

INFRA = Path(__file__).resolve().parent
ROOT = INFRA.parent
# Step Functions' log delivery has no resource-level permissions.
LOG_DELIVERY = ["logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
                "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
                "logs:DescribeLogGroups"]
MACHINES = INFRA / "statemachines"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)FunctionArn\}")
NAMESPACE = "WorkshopsOnDemand"
SERVICE = "wod-platform"
SECRETS = {  # secret -> created by the frontend stack (shared) or by every stack (per location)
    "order-key": "location", "callback-key": "location", "admin-token": "shared", "link-key": "shared",
    "hub-token": "location", "events-key": "location", "badge-key": "shared",
}
# the receipt rule set holding this stack's rule: its own, or the region's active one it was given
RULE_SET = {"Fn::If": ["OwnsRuleSet", {"Ref": "OrdersRuleSet"}, {"Ref": "ReceiptRuleSet"}]}
EVERY_LOCATION = "/*"  # "order-key/*": that key of every location (the frontend's grant)

READ = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan",
        "dynamodb:ConditionCheckItem", "dynamodb:DescribeTable"]
WRITE = READ + ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"]
LOOKUP = ["dynamodb:GetItem"]  # items by key: no query, no scan
UPDATE = ["dynamodb:UpdateItem"]  # items changed in place: none read, none new, none removed
INSERT = ["dynamodb:PutItem"]  # items added (an order's nonce, once): none read, changed or removed
TABLE_ACTIONS = {"read": READ, "write": WRITE, "lookup": LOOKUP, "update": UPDATE, "insert": INSERT}
# Data outlives the stack and any replacement; but a failed first create removes what it made, so
# that trying again finds no table or bucket of the same name in its way.
KEEP_DATA = {"DeletionPolicy": "RetainExceptOnCreate", "UpdateReplacePolicy": "Retain"}
# Audit entries (pk AUDIT in the admin table) are written once: no function may update or delete one. IAM
# cannot refuse a PutItem that would replace one (no condition key says "only if absent"): the code never does.
AUDIT_PARTITION = "AUDIT"


@dataclass(frozen=True)
class Access:
    """What one function touches: tables (kind -> "read"|"write"), secrets, mail, and so on."""

    tables: dict[str, str] = field(default_factory=dict)  # kind -> read|write|lookup|update|insert, or "+"-joined
    secrets: tuple[str, ...] = ()
    send_mail: bool = False
    start_workflows: bool = False
    read_content: bool = False
    appliances: frozenset[str] = frozenset()  # ECS: "find", "start", "stop", "tokens" (APPLIANCE_GRANTS)
    report_failures: bool = False  # its failed events (or stream batches) go to the failed-events queue
    stream: str = ""  # the table whose stream invokes it (an event source mapping)
    indexes: tuple[str, ...] = ()  # the table kinds whose indexes it queries


# nonces: rate-limit counters and the mail pacer's budget (every sender), callback nonces (the API)
FRONTEND_TABLES = {"workshops": "write", "students": "write", "customers": "write", "emails": "write",
                   "admin": "write", "nonces": "write"}
# The backend's tasks read workshops and students by key and update a student (password hash, warm mark)
# or a registration (progress) in place, each only the tables it touches; the frontend makes and frees
# everything else.
# the hub tokens: the hub's relay signs participants' notebook events with its location's (the live room);
# the badge key: the API alone signs verifiable badges (the mail that links one needs only the link key)
FRONTEND = Access(FRONTEND_TABLES, ("order-key/*", "callback-key/*", "events-key/*", "admin-token", "link-key",
                                    "badge-key"),
                  send_mail=True,
                  indexes=("customers", "students"))  # by email, waitlists; free seats, a workshop's students
TICK = Access(FRONTEND_TABLES, ("order-key/*", "link-key"), send_mail=True, report_failures=True,
              indexes=("admin", "customers", "students"))  # webhook deliveries due; what is due; warm pools
INTAKE = Access({"nonces": "insert"}, ("order-key",), start_workflows=True, report_failures=True)
# The registrations' stream: what a change owes (leased and settled on the registration), mail paced
# in the nonces table, webhook deliveries queued in the admin table, orders signed with every
# location's key and links with the link key.
DISPATCH = Access({"customers": "read+update", "workshops": "lookup", "nonces": "update", "admin": "read+insert"},
                  ("order-key/*", "link-key"), send_mail=True, report_failures=True, stream="customers",
                  indexes=("customers",))  # a waitlist place, for the waitlist email
# SES's bounces and complaints (the mail feedback topic): a registration read by key and marked in place
FEEDBACK = Access({"customers": "lookup+update"})
STREAM_BATCH = 100  # records per invocation, as local/stream.py reads them
ASYNC_RETRIES = 2  # Lambda's own retries of an asynchronous event before it goes to the failed-events queue


def backend_task(tables: str = "", *, hub: bool = True, callback: bool = False, content: bool = False,
                 appliances: str = "") -> Access:
    """``tables``: "kind:mode" words (``workshops:lookup students:update``); ``hub``: it drives the
    hub (its token); ``appliances``: what it does with ECS appliances (keys of
    :func:`appliance_grants`), each implying "find" (a student's tasks are found by ``startedBy``)."""
    secrets = (("hub-token",) if hub else ()) + (("callback-key",) if callback else ())
    uses = frozenset({"find", *appliances.split()}) if appliances else frozenset()
    return Access(dict(word.split(":") for word in tables.split()), secrets, read_content=content, appliances=uses)


# Chalice's logical id of each function -> its access. The test suite checks this covers
# every function ``app.py`` declares.
FUNCTIONS: dict[str, Access] = {
    "APIHandler": FRONTEND,
    "TimeChecks": TICK,
    "OrderIntake": INTAKE,
    "OutboxDispatcher": DISPATCH,
    "MailFeedback": FEEDBACK,
    "ProvisionPrepare": backend_task("students:lookup customers:update", hub=False),
    "ProvisionCreateHubUser": backend_task("customers:update", appliances="stop"),  # a previous holder's
    "ProvisionStartServer": backend_task("workshops:lookup", appliances="start"),
    "ProvisionCheckReady": backend_task("workshops:lookup", appliances="find"),
    "ProvisionDeploy": backend_task("workshops:lookup students:update customers:update", callback=True, content=True,
                                    appliances="tokens"),
    "ProvisionCompensate": backend_task("students:lookup", callback=True, appliances="stop"),
    "CleanupMeasureCompletion": backend_task("workshops:lookup students:lookup", content=True),
    "CleanupTeardown": backend_task("students:lookup", appliances="stop"),
    "CleanupReport": backend_task(hub=False, callback=True),
    "PurgeTeardown": backend_task("students:lookup", appliances="stop"),
    "PurgeReport": backend_task(hub=False, callback=True),
    "ResetDeploy": backend_task("workshops:lookup students:update customers:update", callback=True, content=True,
                                appliances="tokens"),
    "WarmPrepare": backend_task(hub=False),  # a deadline: no AWS at all
    "WarmStart": backend_task("workshops:lookup students:lookup", appliances="stop start"),
    "WarmCheckReady": backend_task("workshops:lookup", appliances="find"),  # provisioning's check_ready
    "WarmMark": backend_task("students:update", hub=False),
}


def cfn_name(name: str) -> str:
    """Chalice's logical id for a function name: ``provision-create-hub-user`` -> ``ProvisionCreateHubUser``."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]", name))


def task_logical_id(machine: str, placeholder: str) -> str:
    return cfn_name(machine) + placeholder


def sub(text: str):
    return {"Fn::Sub": text}


def table_arn(kind: str) -> dict:
    return sub(f"arn:${{AWS::Partition}}:dynamodb:${{AWS::Region}}:${{AWS::AccountId}}:table/${{TablePrefix}}-{kind}")


def secret_name(name: str) -> str:
    return f"${{SecretsPrefix}}/{name}" if SECRETS[name] == "shared" else f"${{SecretsPrefix}}/{name}/${{Location}}"


def secret_arn(name: str) -> dict:
    # Secrets Manager appends "-" and six random characters to every secret's ARN.
    arn = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
    if name.endswith(EVERY_LOCATION):
        return sub(f"{arn}${{SecretsPrefix}}/{name.removesuffix(EVERY_LOCATION)}/*")
    return sub(f"{arn}{secret_name(name)}-??????")


def tables_template() -> dict:
    return json.loads((INFRA / "tables.json").read_text())


def table_kinds() -> dict[str, str]:
    """Table kind (``customers``) -> its logical id (``CustomersTable``)."""
    kinds = {}
    for logical, resource in tables_template()["Resources"].items():
        kinds[resource["Properties"]["TableName"]["Fn::Sub"].split("}-", 1)[1]] = logical
    return kinds


def statements(access: Access) -> list[dict]:
    out: list[dict[str, Any]] = []
    for mode, actions in TABLE_ACTIONS.items():
        kinds = sorted(kind for kind, m in access.tables.items() if mode in m.split("+"))
        if kinds:
            resources = []
            for kind in kinds:
                queried = kind in access.indexes and "dynamodb:Query" in actions  # only a query reads an index
                resources += [table_arn(kind)] + ([sub(table_arn(kind)["Fn::Sub"] + "/index/*")] if queried else [])
            out.append({"Sid": f"Tables{mode.title()}", "Effect": "Allow", "Action": actions, "Resource": resources})
    if access.tables.get("admin") == "write":
        out.append({"Sid": "AuditAppendOnly", "Effect": "Deny",
                    "Action": ["dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"],
                    "Resource": [table_arn("admin")],
                    "Condition": {"ForAnyValue:StringEquals": {"dynamodb:LeadingKeys": [AUDIT_PARTITION]}}})
    if access.report_failures:
        out.append({"Sid": "ReportFailedEvents", "Effect": "Allow", "Action": ["sqs:SendMessage"],
                    "Resource": [{"Fn::GetAtt": ["FailedEventsQueue", "Arn"]}]})
    if access.stream:  # what its event source mapping reads with the function's role
        out.append({"Sid": "ReadStream", "Effect": "Allow",
                    "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
                    "Resource": [sub(table_arn(access.stream)["Fn::Sub"] + "/stream/*")]})
        out.append({"Sid": "ListStreams", "Effect": "Allow", "Action": ["dynamodb:ListStreams"], "Resource": "*"})
    if access.secrets:
        out.append({"Sid": "Secrets", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
                    "Resource": [secret_arn(name) for name in access.secrets]})
    if access.send_mail:
        ses = "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}"
        out.append({"Sid": "SendMail", "Effect": "Allow", "Action": ["ses:SendEmail", "ses:SendRawEmail"],
                    "Resource": [sub(f"{ses}:identity/${{MailDomain}}"),
                                 sub(f"{ses}:configuration-set/${{MailConfigurationSet}}")]})
        # the account's sending rate, which paces every sender; SES grants it on no narrower resource
        out.append({"Sid": "ReadSendQuota", "Effect": "Allow", "Action": ["ses:GetSendQuota"], "Resource": "*"})
    if access.start_workflows:
        out.append({"Sid": "StartWorkflows", "Effect": "Allow", "Action": ["states:StartExecution"],
                    "Resource": [{"Ref": machine_logical_id(m)} for m in ACTIONS]})
    if access.read_content:
        out += [{"Sid": "ReadContent", "Effect": "Allow", "Action": ["s3:GetObject"],
                 "Resource": [sub("${ContentBucket.Arn}/*")]},
                {"Sid": "ListContent", "Effect": "Allow", "Action": ["s3:ListBucket"],
                 "Resource": [{"Fn::GetAtt": ["ContentBucket", "Arn"]}]}]
    if access.appliances:
        out += [{"Fn::If": ["HasEcs", statement, {"Ref": "AWS::NoValue"}]}
                for use in sorted(access.appliances) for statement in appliance_grants()[use]]
    return out


def appliance_grants() -> dict[str, list[dict]]:
    """What a task may do with the appliances' ECS tasks, in the stack's cluster only."""
    ecs = "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}"
    cluster = {"ArnEquals": {"ecs:cluster": sub(f"{ecs}:cluster/${{EcsCluster}}")}}
    tasks = [sub(f"{ecs}:task/${{EcsCluster}}/*")]
    return {
        "find": [{"Sid": "FindAppliances", "Effect": "Allow", "Action": ["ecs:ListTasks"],
                  "Resource": [sub(f"{ecs}:container-instance/${{EcsCluster}}/*")], "Condition": cluster}],
        "start": [{"Sid": "StartAppliances", "Effect": "Allow", "Action": ["ecs:RunTask"],
                   "Resource": [sub(f"{ecs}:task-definition/wod-*")], "Condition": cluster},
                  {"Sid": "PassApplianceRoles", "Effect": "Allow", "Action": ["iam:PassRole"],
                   "Resource": [sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/wod-appliance-*")],
                   "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}}],
        "stop": [{"Sid": "StopAppliances", "Effect": "Allow", "Action": ["ecs:StopTask"], "Resource": tasks,
                  "Condition": cluster}],
        "tokens": [{"Sid": "ReadApplianceTokens", "Effect": "Allow", "Action": ["ecs:DescribeTasks"],
                    "Resource": tasks, "Condition": cluster}],
    }


LOGS = {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": None}  # filled per function: its own log group only
TRACES = {"Sid": "Traces", "Effect": "Allow", "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
          "Resource": "*"}  # X-Ray has no resource-level permissions


def function_name(logical: str) -> dict:
    """Functions are named ``<stack>-<logical id>``, so their role and log group can name them
    without referring to them (that would be a cycle). Keeps stack names to 39 characters."""
    return sub(f"${{AWS::StackName}}-{logical}")


def log_group_name(logical: str) -> dict:
    return sub(f"/aws/lambda/${{AWS::StackName}}-{logical}")


def function_role(logical: str, access: Access) -> dict:
    logs = dict(LOGS, Resource=[sub(f"arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:"
                                    f"log-group:/aws/lambda/${{AWS::StackName}}-{logical}:*")])
    return role(f"Only what the {logical} function uses", "lambda.amazonaws.com",
                [logs, TRACES, *statements(access)])


def role(description: str, service: str, statements: list[dict]) -> dict:
    """A role the service assumes, with one inline policy."""
    return {"Type": "AWS::IAM::Role", "Properties": {
        "Description": description,
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]},
        "Policies": [{"PolicyName": "least-privilege",
                      "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}],
    }}


def any_in_five_minutes(description: str, namespace: str, metric: str, **dimensions) -> dict:
    """An alarm, sent to the alarms topic, as soon as the metric counts one in five minutes."""
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "AlarmDescription": description, "Namespace": namespace, "MetricName": metric,
        "Dimensions": [{"Name": name, "Value": value} for name, value in dimensions.items()],
        "Statistic": "Sum", "Period": 300, "EvaluationPeriods": 1, "Threshold": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "notBreaching",
        "AlarmActions": [{"Ref": "AlarmsTopic"}],
    }}


def machine_logging() -> dict:
    """What each state machine's ``LoggingConfiguration`` is."""
    return {"Level": "ERROR", "IncludeExecutionData": False, "Destinations": [
        {"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": ["StateMachinesLogGroup", "Arn"]}}}]}


def machine_log_statement() -> dict:
    return {"Sid": "DeliverLogs", "Effect": "Allow", "Action": LOG_DELIVERY, "Resource": "*"}


def machine_logical_id(machine: str) -> str:
    return f"{cfn_name(machine)}StateMachine"


def state_machines() -> dict:
    resources = {}
    task_arns = set()
    for path in sorted(MACHINES.glob("*.asl.json")):
        machine = path.name.removesuffix(".asl.json")
        placeholders = sorted(set(PLACEHOLDER.findall(path.read_text())))
        arns = {f"{p}FunctionArn": {"Fn::GetAtt": [task_logical_id(machine, p), "Arn"]} for p in placeholders}
        task_arns |= {task_logical_id(machine, p) for p in placeholders}
        resources[machine_logical_id(machine)] = {
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {
                "StateMachineName": sub(f"${{AWS::StackName}}-{machine}"),
                "DefinitionString": path.read_text(),
                "DefinitionSubstitutions": arns,
                "RoleArn": {"Fn::GetAtt": ["StateMachineRole", "Arn"]},
                "TracingConfiguration": {"Enabled": True},
                "LoggingConfiguration": machine_logging(),
            },
        }
        resources[f"{cfn_name(machine)}FailedAlarm"] = any_in_five_minutes(
            f"A {machine} execution failed: a participant may be left without a seat or an environment "
            "(see the execution's history)",
            "AWS/States", "ExecutionsFailed", StateMachineArn={"Ref": machine_logical_id(machine)})
    resources["StateMachineRole"] = role(
        "Step Functions may invoke the state machines' task functions and nothing else", "states.amazonaws.com", [
            {"Sid": "InvokeTasks", "Effect": "Allow", "Action": ["lambda:InvokeFunction"],
             "Resource": [{"Fn::GetAtt": [t, "Arn"]} for t in sorted(task_arns)]},
            dict(TRACES), machine_log_statement(),
        ])
    return resources


def parameters() -> dict:
    return {
        "Frontend": {"Type": "String", "AllowedValues": ["true", "false"], "Default": "true",
                     "Description": "true: the catalog, tables and shared keys live in this stack; "
                                    "false: one more location on another stack's tables"},
        "TablePrefix": {"Type": "String", "Default": "wod", "AllowedPattern": "[a-z][a-z0-9-]{1,30}",
                        "Description": "Prefix of every table name (a location stack uses its frontend's)"},
        "SecretsPrefix": {"Type": "String", "Default": "/wod", "AllowedPattern": "/[A-Za-z0-9/_-]{1,60}",
                          "Description": "Prefix of the secrets' names (a location stack uses its frontend's)"},
        "Location": {"Type": "String", "Default": "aws", "AllowedPattern": "[a-z][a-z0-9-]{0,30}",
                     "Description": "This stack's location name, as workshop.yaml files name it"},
        "Locations": {"Type": "String", "Default": "{}",
                      "Description": "JSON object: location -> order address of every location "
                                     "(the frontend sends each workshop's orders to its location's)"},
        "PublicUrl": {"Type": "String", "Description": "The catalog's public URL (https://...)",
                      "AllowedPattern": "https://[^ ]+"},
        "MailDomain": {"Type": "String", "Description": "SES-verified domain the platform sends from and "
                                                        "receives orders on (example.org)"},
        "MailFrom": {"Type": "String", "Description": "From address, e.g. Workshops-on-Demand <noreply@example.org>"},
        "OrdersAddress": {"Type": "String", "Description": "Inbound address of this location's order intake "
                                                           "(orders@example.org)"},
        "HubUrl": {"Type": "String", "AllowedPattern": "https://[^ ]+",
                   "Description": "This location's JupyterHub URL, as participants open it"},
        "EcsCluster": {"Type": "String", "Default": "",
                       "Description": "ECS cluster for workshop appliances (empty: no appliances)"},
        "EcsSubnets": {"Type": "String", "Default": "",
                       "Description": "Comma-separated subnets of the appliances' tasks"},
        "EcsSecurityGroups": {"Type": "String", "Default": "",
                              "Description": "Comma-separated security groups of the appliances' tasks"},
        "LogRetentionDays": {"Type": "Number", "Default": 30,
                             "AllowedValues": [1, 3, 5, 7, 14, 30, 60, 90, 180, 365, 400, 545, 731],
                             "Description": "How long the functions' logs are kept"},
        "AlarmEmail": {"Type": "String", "Default": "",
                       "AllowedPattern": r"([A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})?",
                       "Description": "Where alarms and mail bounces are emailed (required for a frontend)"},
        "ReportTo": {"Type": "String", "Default": "",
                     "AllowedPattern": r"([A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
                                       r"(,[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})*)?",
                     "Description": "Comma-separated organisers the event report is mailed to, an hour after an "
                                    "event's last seat comes back (empty: the report is on the dashboard only)"},
        "TableDeletionProtection": {"Type": "String", "AllowedValues": ["true", "false"], "Default": "false",
                                    "Description": "DynamoDB deletion protection on the tables: `make deploy` "
                                                   "turns it on once a first deploy has created them"},
        "ApiRateLimit": {"Type": "Number", "Default": 50, "MinValue": 1,
                         "Description": "Requests per second API Gateway serves for each method of the stage "
                                        "(its method throttling: the registration POST has a budget of its own)"},
        "ApiBurstLimit": {"Type": "Number", "Default": 200, "MinValue": 1,
                          "Description": "Requests each method takes at once above that rate (an opening minute)"},
        "VenueNetworks": {"Type": "String", "Default": "", "AllowedPattern": r"[0-9A-Fa-f.:/, ]{0,1000}",
                          "Description": "Addresses or CIDR networks of a venue where many participants share one "
                                         "address (comma-separated): they get VenueRateLimit and VenueHolds, and no "
                                         "email domain's limit"},
        **{name: {"Type": "Number", "Default": limit.default, "MinValue": limit.low, "MaxValue": limit.high,
                  "Description": limit.description} if limit.whole else
           {"Type": "String", "Default": str(limit.default), "AllowedPattern": DECIMAL,
            "Description": f"{limit.description} ({limit.low:g} to {limit.high:g})"}
           for name, limit in LIMITS.items()},
    }


def conditions() -> dict:
    return {
        "IsFrontend": {"Fn::Equals": [{"Ref": "Frontend"}, "true"]},
        "HasEcs": {"Fn::Not": [{"Fn::Equals": [{"Ref": "EcsCluster"}, ""]}]},
        "HasAlarmEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]},
    }


def environment(logical: str) -> dict:
    variables = {
        "WOD_STAGE": sub("${AWS::StackName}"),
        "WOD_TABLE_PREFIX": {"Ref": "TablePrefix"},
        "WOD_SECRETS_PREFIX": {"Ref": "SecretsPrefix"},
        "WOD_LOCATION": {"Ref": "Location"},
        "WOD_PUBLIC_URL": {"Ref": "PublicUrl"},
        "WOD_CALLBACK_URL": {"Ref": "PublicUrl"},
        "WOD_MAIL_FROM": {"Ref": "MailFrom"},
        "WOD_LOCATIONS": {"Ref": "Locations"},
        "WOD_HUB_URL": {"Ref": "HubUrl"},
        "WOD_CONTENT_BUCKET": {"Ref": "ContentBucket"},
        "WOD_ECS_CLUSTER": {"Ref": "EcsCluster"},
        "WOD_ECS_SUBNETS": {"Ref": "EcsSubnets"},
        "WOD_ECS_SECURITY_GROUPS": {"Ref": "EcsSecurityGroups"},
        "WOD_SES_CONFIGURATION_SET": {"Ref": "MailConfigurationSet"},
        "WOD_VENUE_NETWORKS": {"Ref": "VenueNetworks"},
        "WOD_REPORT_TO": {"Ref": "ReportTo"},
        "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE,
        **{limit.variable: {"Ref": name} for name, limit in LIMITS.items() if not limit.hub},
    }
    if logical == "OrderIntake":
        variables["WOD_STATE_MACHINES"] = sub(json.dumps(
            {action: f"${{{machine_logical_id(machine)}}}" for machine, action in ACTIONS.items()}))
    return {"Variables": variables}


def platform_resources() -> dict:
    resources = dict(tables_template()["Resources"])
    for resource in resources.values():
        resource["Condition"] = "IsFrontend"
        # Off while a first deploy creates the tables (its rollback must be able to remove them), then on.
        resource["Properties"]["DeletionProtectionEnabled"] = {"Ref": "TableDeletionProtection"}
    resources.update(state_machines())
    resources["OrdersTopic"] = {
        "Type": "AWS::SNS::Topic",
        # Not encrypted with the AWS-managed SNS key: SES could not publish to it. Orders are signed.
        "Properties": {"TopicName": sub("${AWS::StackName}-orders")},
    }
    resources["OrdersTopicPolicy"] = {
        "Type": "AWS::SNS::TopicPolicy",
        "Properties": {"Topics": [{"Ref": "OrdersTopic"}], "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Sid": "SesPublishesOrders", "Effect": "Allow", "Principal": {"Service": "ses.amazonaws.com"},
            "Action": "sns:Publish", "Resource": {"Ref": "OrdersTopic"},
            "Condition": {"StringEquals": {"AWS:SourceAccount": {"Ref": "AWS::AccountId"}}},
        }]}},
    }
    resources["OrdersRuleSet"] = {"Type": "AWS::SES::ReceiptRuleSet", "Condition": "OwnsRuleSet",
                                  "Properties": {"RuleSetName": sub("${AWS::StackName}-orders")}}
    resources["OrdersRule"] = {
        "Type": "AWS::SES::ReceiptRule",
        "DependsOn": "OrdersTopicPolicy",
        "Properties": {"RuleSetName": RULE_SET, "Rule": {
            "Name": sub("${AWS::StackName}-orders"), "Enabled": True, "ScanEnabled": True, "TlsPolicy": "Require",
            "Recipients": [{"Ref": "OrdersAddress"}],
            "Actions": [{"SNSAction": {"TopicArn": {"Ref": "OrdersTopic"}, "Encoding": "Base64"}}],
        }},
    }
    resources["ContentBucket"] = {
        "Type": "AWS::S3::Bucket",
        **KEEP_DATA,
        "Properties": {
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
            "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                               "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
            "VersioningConfiguration": {"Status": "Enabled"},
            "LifecycleConfiguration": {"Rules": [{  # replaced notebooks go after a month
                "Id": "old-versions", "Status": "Enabled", "NoncurrentVersionExpiration": {"NoncurrentDays": 30}}]},
        },
    }
    resources["ContentBucketPolicy"] = {"Type": "AWS::S3::BucketPolicy", "Properties": {
        "Bucket": {"Ref": "ContentBucket"}, "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [{"Fn::GetAtt": ["ContentBucket", "Arn"]}, sub("${ContentBucket.Arn}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}}}
    for name, scope in SECRETS.items():
        resources[f"{cfn_name(name)}Secret"] = {
            "Type": "AWS::SecretsManager::Secret",
            **({"Condition": "IsFrontend"} if scope == "shared" else {}),
            "Properties": {"Name": sub(secret_name(name)), "Description": f"Workshops-on-Demand {name}",
                           "GenerateSecretString": {"PasswordLength": 48, "ExcludePunctuation": True}},
        }
    resources["AlarmsTopic"] = {"Type": "AWS::SNS::Topic",
                                "Properties": {"TopicName": sub("${AWS::StackName}-alarms")}}
    resources["AlarmsSubscription"] = {
        "Type": "AWS::SNS::Subscription", "Condition": "HasAlarmEmail",
        "Properties": {"TopicArn": {"Ref": "AlarmsTopic"}, "Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}},
    }
    resources["FailedEventsQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {
        "SqsManagedSseEnabled": True, "MessageRetentionPeriod": 14 * 24 * 3600}}
    resources.update(operations_alarms())
    resources["RejectedOrdersAlarm"] = any_in_five_minutes(
        "Order emails are being rejected (bad signature, stale, replayed or failed the mail checks): "
        "keys out of step, or someone is forging orders", NAMESPACE, "RejectedOrders", service=SERVICE)
    return resources


def outputs() -> dict:
    return {
        "ContentBucketName": {"Value": {"Ref": "ContentBucket"}},
        "OrdersTopicArn": {"Value": {"Ref": "OrdersTopic"}},
        "OrdersRuleSetName": {"Value": RULE_SET},
        "HubTokenSecret": {"Value": {"Ref": "HubTokenSecret"}},
        "EventsKeySecret": {"Value": {"Ref": "EventsKeySecret"}},
        "AdminTokenSecret": {"Condition": "IsFrontend", "Value": {"Ref": "AdminTokenSecret"}},
    }


def function_overrides() -> dict:
    """What the merge sets on Chalice's own resources: roles, settings, the orders and mail feedback topics."""
    resources = {}
    for logical, access in FUNCTIONS.items():
        resources[f"{logical}Role"] = function_role(logical, access)
        resources[f"{logical}LogGroup"] = {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {"LogGroupName": log_group_name(logical), "RetentionInDays": {"Ref": "LogRetentionDays"}},
        }
        resources[logical] = {
            "DependsOn": [f"{logical}LogGroup"],  # created before the function can write to it
            "Properties": {"FunctionName": function_name(logical), "Role": {"Fn::GetAtt": [f"{logical}Role", "Arn"]},
                           "Tracing": "Active", "Environment": environment(logical)},
        }
    # The stage's own throttling: beyond it API Gateway answers 429 before any function runs.
    resources["RestAPI"] = {"Properties": {"MethodSettings": [{
        "ResourcePath": "/*", "HttpMethod": "*",
        "ThrottlingRateLimit": {"Ref": "ApiRateLimit"}, "ThrottlingBurstLimit": {"Ref": "ApiBurstLimit"}}]}}
    resources["OrderIntake"]["Properties"]["Events"] = {
        # Fn::Sub, as Chalice writes it: the merge replaces Chalice's fixed topic ARN with this stack's.
        "OrderIntakeSnsSubscription": {"Type": "SNS", "Properties": {"Topic": sub("${OrdersTopic}")}}}
    resources["MailFeedback"]["Properties"]["Events"] = {  # the configuration set's topic (infra/operations.py)
        "MailFeedbackSnsSubscription": {"Type": "SNS", "Properties": {"Topic": sub("${MailFeedbackTopic}")}}}
    # The time checks run once per platform: in the frontend stack only (the rule's State; SAM's
    # boolean Enabled would take any intrinsic for true).
    resources["TimeChecks"]["Properties"]["Events"] = {"TimeChecksEvent": {"Type": "Schedule", "Properties": {
        "Schedule": "rate(1 minute)", "State": {"Fn::If": ["IsFrontend", "ENABLED", "DISABLED"]}}}}
    for logical, access in FUNCTIONS.items():
        if access.stream:
            resources[f"{logical}StreamMapping"] = stream_mapping(logical, access.stream)
        elif access.report_failures:  # an order or a tick that keeps failing is kept, and alarms
            resources[logical]["Properties"]["EventInvokeConfig"] = {
                "MaximumRetryAttempts": ASYNC_RETRIES,
                "DestinationConfig": {"OnFailure": {"Type": "SQS",
                                                    "Destination": {"Fn::GetAtt": ["FailedEventsQueue", "Arn"]}}}}
    return resources


def stream_mapping(logical: str, kind: str) -> dict:
    """A table's stream to a function (the frontend's tables only): the records of registrations
    whose outbox is pending, in batches as they are written; a batch failing twice is kept in the
    failed-events queue (the time checks deliver what it owed all the same)."""
    pending = {"dynamodb": {"NewImage": {"outbox_state": {"S": ["pending"]}}}}
    return {"Type": "AWS::Lambda::EventSourceMapping", "Condition": "IsFrontend", "Properties": {
        "FunctionName": {"Ref": logical}, "EventSourceArn": {"Fn::GetAtt": [table_kinds()[kind], "StreamArn"]},
        "StartingPosition": "LATEST", "BatchSize": STREAM_BATCH, "MaximumBatchingWindowInSeconds": 0,
        "MaximumRetryAttempts": ASYNC_RETRIES, "BisectBatchOnFunctionError": True,
        "FilterCriteria": {"Filters": [{"Pattern": json.dumps(pending)}]},
        "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["FailedEventsQueue", "Arn"]}}}}}


def sum_alarm(description: str, namespace: str, metric: str, dimension: str, values: list, **extra: Any) -> dict:
    """An alarm, sent to the alarms topic, when the sum of ``metric`` over ``values`` of one
    dimension (at most nine: CloudWatch takes ten queries, the sum included) reaches one in five minutes."""
    queries: list[dict[str, Any]] = [
        {"Id": f"m{n}", "ReturnData": False, "MetricStat": {"Period": 300, "Stat": "Sum", "Metric": {
            "Namespace": namespace, "MetricName": metric,
            "Dimensions": [{"Name": dimension, "Value": value}, *extra.get("dimensions", [])]}}}
        for n, value in enumerate(values)]
    queries.append({"Id": "total", "Expression": "SUM(METRICS())", "Label": metric, "ReturnData": True})
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "AlarmDescription": description, "Metrics": queries, "EvaluationPeriods": 1, "Threshold": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "notBreaching",
        "AlarmActions": [{"Ref": "AlarmsTopic"}]}}


def operations_alarms() -> dict:
    """What reaches the alarms topic besides rejected orders: failed asynchronous events, Lambda
    throttles (every function) and errors (the front door: API, time checks, intake; the backend's
    tasks retry their errors and compensate by design), API 5xx, DynamoDB throttles."""
    alarms: dict[str, Any] = {"FailedEventsAlarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "AlarmDescription": "An order or a time check failed after Lambda's retries: its event is in the "
                            "failed-events queue, to look at and send again",
        "Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible",
        "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["FailedEventsQueue", "QueueName"]}}],
        "Statistic": "Maximum", "Period": 300, "EvaluationPeriods": 1, "Threshold": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "notBreaching",
        "AlarmActions": [{"Ref": "AlarmsTopic"}]}}}
    names = list(FUNCTIONS)
    for n, start in enumerate(range(0, len(names), 9), start=1):
        alarms[f"LambdaThrottlesAlarm{n}"] = sum_alarm(
            "Lambda is throttling the platform's functions (account concurrency reached)", "AWS/Lambda",
            "Throttles", "FunctionName", [function_name(name) for name in names[start:start + 9]])
    alarms["FrontDoorErrorsAlarm"] = sum_alarm(
        "The API, the time checks or the order intake raised errors", "AWS/Lambda", "Errors", "FunctionName",
        [function_name(name) for name in ("APIHandler", "TimeChecks", "OrderIntake")])
    alarms["Api5xxAlarm"] = {"Condition": "IsFrontend", **sum_alarm(
        "The catalog or the API answered 5xx", "AWS/ApiGateway", "5XXError", "ApiName", ["wod"],
        dimensions=[{"Name": "Stage", "Value": "api"}])}
    alarms["DynamoDBThrottlesAlarm"] = {"Condition": "IsFrontend", **sum_alarm(
        "DynamoDB throttled the platform's tables", "AWS/DynamoDB", "ThrottledRequests", "TableName",
        [sub(f"${{TablePrefix}}-{kind}") for kind in sorted(table_kinds())][:9])}
    return alarms
