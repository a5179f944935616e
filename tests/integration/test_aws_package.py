"""What ``make package`` produces for AWS, checked without an AWS account.

- ``chalice package`` with the merge template from ``infra/`` succeeds with no credentials;
- ``cfn-lint`` passes on the packaged template;
- every function has a role of its own, and no policy grants ``*`` where a narrower
  action or resource exists; the state machines may invoke only their task functions;
- no secret sits in an environment variable or in the template;
- the part of the template that is not serverless deploys into moto's CloudFormation,
  and a smoke flow (sync to the content bucket, register, read the content back, read the
  secrets by the names the app uses, publish an order on the topic) runs against it.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest

from infra import operations
from infra import template as infra
from infra.standins import references
from tests.packaging import chalice_package

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REGION = "eu-west-1"
PARAMETERS = {"PublicUrl": "https://workshops.example.org", "MailDomain": "example.org",
              "MailFrom": "Workshops-on-Demand <noreply@example.org>", "OrdersAddress": "orders@example.org",
              "HubUrl": "https://hub.example.org", "TablePrefix": "wodtest", "SecretsPrefix": "/wodtest",
              "Location": "paris", "Locations": json.dumps({"paris": "orders@example.org"})}
# Resource types moto's CloudFormation cannot create; the smoke test creates what it needs of them by hand.
NOT_IN_MOTO = {"AWS::SecretsManager::Secret", "AWS::CloudWatch::Alarm", "AWS::SES::ReceiptRuleSet",
               "AWS::SES::ReceiptRule", "AWS::SES::EmailIdentity", "AWS::SNS::TopicPolicy",
               "AWS::SES::ConfigurationSet", "AWS::SES::ConfigurationSetEventDestination", "AWS::SNS::Subscription",
               "AWS::S3::BucketPolicy"}  # checked from the template: test_the_content_bucket_takes_tls_only...
# Actions AWS gives no resource-level permission for.
RESOURCE_STAR_OK = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "ses:GetSendQuota",
                    "dynamodb:ListStreams",  # what a stream's event source mapping needs, on no narrower resource
                    *infra.LOG_DELIVERY,
                    *operations.ACTIVE_RULE_SET}


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("package")
    home = tmp_path_factory.mktemp("home")  # no ~/.aws, no credentials of any kind
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "WOD_"))}
    env.update(HOME=str(home), AWS_DEFAULT_REGION=REGION, AWS_CONFIG_FILE=str(home / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(home / "none"))
    subprocess.run([sys.executable, "-m", "infra.merge", "--out", str(out / "merge-template.json")],
                   cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    run = chalice_package(out / "merge-template.json", out / "package", env)
    assert run.returncode == 0, run.stdout + run.stderr
    compiled = subprocess.run([sys.executable, "-m", "infra.bytecode", str(out / "package" / "deployment.zip")],
                              cwd=ROOT, env=env, capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    return out / "package"


@pytest.fixture(scope="module")
def sam(package) -> dict:
    return json.loads((package / "sam.json").read_text())


def test_package_holds_the_app_and_its_requirements(package):
    names = set(zipfile.ZipFile(package / "deployment.zip").namelist())
    assert {"app.py", "chalicelib/web/api.py", "chalicelib/templates/status.html"} <= names
    assert any(name.startswith("pynamodb/") for name in names)
    assert not any(name.startswith(("tests/", "local/", "infra/", "bench/")) for name in names)
    # compiled: a cold start on Lambda's read-only file system compiles nothing
    assert {"__pycache__/app.cpython-311.pyc", "chalicelib/web/__pycache__/api.cpython-311.pyc"} <= names
    assert any(name.startswith("pynamodb/__pycache__/") for name in names)


def test_cfn_lint_passes(package):
    run = subprocess.run([str(BIN / "cfn-lint"), str(package / "sam.json")], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def functions(sam: dict) -> dict[str, dict]:
    return {k: v for k, v in sam["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}


def test_every_function_has_a_role_of_its_own(sam):
    found = functions(sam)
    assert set(found) == set(infra.FUNCTIONS), "infra/template.py FUNCTIONS must list every function of app.py"
    roles = {logical: fn["Properties"]["Role"] for logical, fn in found.items()}
    assert all(role == {"Fn::GetAtt": [f"{logical}Role", "Arn"]} for logical, role in roles.items()), roles
    assert all(sam["Resources"][f"{logical}Role"]["Type"] == "AWS::IAM::Role" for logical in found)


def policy_statements(resource: dict):
    for policy in resource["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:  # a conditional statement: check what it grants when on
                statement = statement["Fn::If"][1]
            yield statement


def as_list(value):
    return value if isinstance(value, list) else [value]


def over_broad(sam: dict) -> list[str]:
    """Every grant of a wildcard action, of ``*`` resources, or of an ARN wildcarding the
    partition, region or account."""
    problems = []
    for logical, resource in sam["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for statement in policy_statements(resource):
            actions = as_list(statement["Action"])
            for action in actions:
                if action == "*" or action.endswith(":*"):
                    problems.append(f"{logical}: action {action}")
            for res in as_list(statement["Resource"]):
                text = json.dumps(res)
                if res == "*" and not set(actions) <= RESOURCE_STAR_OK:
                    problems.append(f"{logical}: {actions} on *")
                elif re.search(r"arn:\*|:\*:\*:|:\*:[0-9]{12}:|:[a-z0-9-]+:\*:", text):
                    problems.append(f"{logical}: {text}")
    return problems


def test_no_policy_grants_more_than_it_needs(sam):
    assert over_broad(sam) == []


def test_the_check_catches_a_broad_grant(sam):
    broad = json.loads(json.dumps(sam))
    role = broad["Resources"]["APIHandlerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    role.append({"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"})
    role.append({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::*"})
    role.append({"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "arn:*:logs:*:*:*"})
    assert len(over_broad(broad)) == 3


def granted(sam: dict, logical: str) -> set[str]:
    return {a for s in policy_statements(sam["Resources"][f"{logical}Role"]) for a in as_list(s["Action"])}


def test_each_function_gets_only_its_own_kind_of_access(sam):
    assert "states:StartExecution" in granted(sam, "OrderIntake")
    assert "states:StartExecution" not in granted(sam, "APIHandler")
    assert "ses:SendRawEmail" in granted(sam, "APIHandler")
    assert "ses:SendRawEmail" not in granted(sam, "OrderIntake")
    assert "ses:GetSendQuota" in granted(sam, "APIHandler") and "ses:GetSendQuota" not in granted(sam, "OrderIntake")
    assert "s3:GetObject" in granted(sam, "ProvisionDeploy")
    assert "s3:GetObject" not in granted(sam, "APIHandler")
    hub = granted(sam, "HubHost")
    assert hub == {"dynamodb:GetItem", "secretsmanager:GetSecretValue", "s3:GetObject"}
    hub_tables = [r for s in policy_statements(sam["Resources"]["HubHostRole"]) if s["Sid"] == "ReadStudents"
                  for r in s["Resource"]]
    assert hub_tables == [infra.table_arn("students")]


def test_state_machines_may_invoke_only_their_task_functions(sam):
    machines = {k: v for k, v in sam["Resources"].items() if v["Type"] == "AWS::StepFunctions::StateMachine"}
    assert len(machines) == len(list(infra.MACHINES.glob("*.asl.json")))
    tasks = set()
    for machine in machines.values():
        definition = machine["Properties"]["DefinitionString"]
        wanted = {f"{p}FunctionArn" for p in infra.PLACEHOLDER.findall(definition)}
        assert set(machine["Properties"]["DefinitionSubstitutions"]) == wanted
        tasks |= {v["Fn::GetAtt"][0] for v in machine["Properties"]["DefinitionSubstitutions"].values()}
        assert machine["Properties"]["RoleArn"] == {"Fn::GetAtt": ["StateMachineRole", "Arn"]}
    invoke = [s for s in policy_statements(sam["Resources"]["StateMachineRole"]) if s["Sid"] == "InvokeTasks"]
    assert invoke[0]["Action"] == ["lambda:InvokeFunction"]
    assert {r["Fn::GetAtt"][0] for r in invoke[0]["Resource"]} == tasks
    assert tasks <= set(functions(sam)) and "APIHandler" not in tasks


SECRET_WORDS = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.I)


def test_no_secret_in_environment_or_template(sam, tmp_path):
    from local.config import ensure_secrets

    for logical, fn in functions(sam).items():
        variables = fn["Properties"]["Environment"]["Variables"]
        assert not [name for name in variables if SECRET_WORDS.search(name) and name != "WOD_SECRETS_PREFIX"], logical
    secrets = [r for r in sam["Resources"].values() if r["Type"] == "AWS::SecretsManager::Secret"]
    assert len(secrets) == len(infra.SECRETS)
    assert all("SecretString" not in r["Properties"] and "GenerateSecretString" in r["Properties"] for r in secrets)
    text = json.dumps(sam)
    assert not [v for v in ensure_secrets(tmp_path / "s.json").values() if v in text]


def test_tables_keep_personal_data_only_as_long_as_needed(sam):
    tables = {r["Properties"]["TableName"]["Fn::Sub"]: r["Properties"] for r in sam["Resources"].values()
              if r["Type"] == "AWS::DynamoDB::Table"}
    assert tables["${TablePrefix}-customers"]["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert all(t["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] for t in tables.values())


def transformed(sam: dict, **parameters: str) -> dict:
    """The template as CloudFormation sees it after the SAM transform (code already uploaded)."""
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self):
            return {}

    uploaded = json.loads(json.dumps(sam))
    for resource in uploaded["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://artifacts/deployment.zip"
    return transform(uploaded, parameters, NoManagedPolicies())


def test_schedule_runs_in_the_frontend_only_and_orders_come_from_this_stacks_topic(sam, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    resources = transformed(sam, Frontend="false")["Resources"]
    [rule] = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Events::Rule"]
    assert rule["State"] == {"Fn::If": ["IsFrontend", "ENABLED", "DISABLED"]}
    assert sam["Conditions"]["IsFrontend"] == {"Fn::Equals": [{"Ref": "Frontend"}, "true"]}
    subscriptions = {r["Properties"]["Endpoint"]["Fn::GetAtt"][0]: r["Properties"]["TopicArn"]
                     for r in resources.values()
                     if r["Type"] == "AWS::SNS::Subscription" and r["Properties"]["Protocol"] == "lambda"}
    # orders from this stack's topic; SES's bounces and complaints from the mail feedback topic
    assert subscriptions == {"OrderIntake": {"Fn::Sub": "${OrdersTopic}"},
                             "MailFeedback": {"Fn::Sub": "${MailFeedbackTopic}"}}
    machines = json.loads(resources["OrderIntake"]["Properties"]["Environment"]["Variables"]["WOD_STATE_MACHINES"]
                          ["Fn::Sub"])
    assert set(machines) == set(infra.ACTIONS.values())


def test_each_function_logs_to_its_own_group_with_a_retention(sam):
    for logical, fn in functions(sam).items():
        group = sam["Resources"][f"{logical}LogGroup"]["Properties"]
        assert fn["DependsOn"] == [f"{logical}LogGroup"]
        assert group["LogGroupName"] == {"Fn::Sub": "/aws/lambda/" + fn["Properties"]["FunctionName"]["Fn::Sub"]}
        assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        [logs] = [s for s in policy_statements(sam["Resources"][f"{logical}Role"]) if s["Sid"] == "Logs"]
        assert logs["Resource"][0]["Fn::Sub"].endswith(f"log-group:{group['LogGroupName']['Fn::Sub']}:*")
        assert "logs:CreateLogGroup" not in logs["Action"]


# ---- the non-serverless part in moto's CloudFormation ----------------------------------------------------

def non_serverless(sam: dict) -> dict:
    """The template without the functions, the API, custom resources, and whatever refers to them;
    without the outputs of what moto cannot create."""
    resources = sam["Resources"]
    not_in_moto = {k for k, v in resources.items() if v["Type"] in NOT_IN_MOTO}
    dropped = {k for k, v in resources.items() if v["Type"].startswith(("AWS::Serverless::", "Custom::"))
               or v["Type"] == "AWS::Lambda::Permission"}
    while True:
        more = {k for k, v in resources.items() if k not in dropped and references(v) & dropped}
        if not more:
            break
        dropped |= more
    return {"AWSTemplateFormatVersion": "2010-09-09", "Parameters": sam["Parameters"],
            "Conditions": sam["Conditions"], "Resources": {k: v for k, v in resources.items() if k not in dropped},
            "Outputs": {k: v for k, v in sam["Outputs"].items() if not references(v) & (dropped | not_in_moto)}}


@pytest.fixture
def deployed(sam, monkeypatch):
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    part = non_serverless(sam)
    assert {"WorkshopsTable", "CustomersTable", "ContentBucket", "OrdersTopic", "HubHostRole"} <= set(part["Resources"])
    with mock_aws():
        import boto3

        cloudformation = boto3.client("cloudformation", region_name=REGION)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cloudformation.create_stack(StackName="wod", TemplateBody=json.dumps(part), Capabilities=["CAPABILITY_IAM"],
                                        Parameters=[{"ParameterKey": k, "ParameterValue": v}
                                                    for k, v in PARAMETERS.items()])
        skipped = {m.group(1) for w in caught for m in [re.search(r"parse (AWS::\S+) but", str(w.message))] if m}
        stack = cloudformation.describe_stacks(StackName="wod")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        yield part, outputs, skipped


def resolve(value: str, names: dict[str, str]) -> str:
    for key, replacement in names.items():
        value = value.replace("${" + key + "}", replacement)
    return value


def test_non_serverless_part_deploys_and_a_smoke_flow_runs(deployed, tmp_path, monkeypatch):
    import boto3

    from chalicelib.adapters.content import BucketContent
    from chalicelib.adapters.secrets import get_secret
    from chalicelib.adapters.workshop_folders import load_catalog
    from chalicelib.services import bootstrap as ctx
    from chalicelib.services import participant, registrations
    from chalicelib.services.catalog import sync_workshop
    from chalicelib.settings import load_settings
    from tests.factory import write_workshop

    part, outputs, skipped = deployed
    assert "AWS::SecretsManager::Secret" in skipped  # the check below sees what moto skipped
    assert skipped <= NOT_IN_MOTO, f"moto skipped {skipped - NOT_IN_MOTO}: extend the smoke test by hand"
    env = {"WOD_TABLE_PREFIX": PARAMETERS["TablePrefix"], "WOD_SECRETS_PREFIX": PARAMETERS["SecretsPrefix"],
           "WOD_LOCATION": PARAMETERS["Location"], "WOD_LOCATIONS": PARAMETERS["Locations"],
           "WOD_CONTENT_BUCKET": outputs["ContentBucketName"], "WOD_MAIL_TRANSPORT": "ses",
           "WOD_MAIL_FROM": PARAMETERS["MailFrom"], "AWS_DEFAULT_REGION": REGION,
           "WOD_PUBLIC_URL": PARAMETERS["PublicUrl"],
           "WOD_OUTBOX_DISPATCH": "inline"}  # no function here reads the stream: mail goes with the change
    settings = load_settings(env)

    # Secrets: moto's CloudFormation does not create them; create each under the template's name.
    secretsmanager = boto3.client("secretsmanager", region_name=REGION)
    names = {**PARAMETERS, "AWS::StackName": "wod"}
    for logical, resource in part["Resources"].items():
        if resource["Type"] == "AWS::SecretsManager::Secret":
            secretsmanager.create_secret(Name=resolve(resource["Properties"]["Name"]["Fn::Sub"], names),
                                         SecretString=f"value-of-{logical}")
    assert get_secret(settings, "order_key") == "value-of-OrderKeySecret"
    assert get_secret(settings, "callback_key", "paris") == "value-of-CallbackKeySecret"
    assert get_secret(settings, "hub_token") == "value-of-HubTokenSecret"
    assert get_secret(settings, "admin_token") == "value-of-AdminTokenSecret"

    # Sync: the workshop's files into the stack's bucket, its seats into the stack's tables.
    write_workshop(tmp_path / "workshops", "WKSHP-SMOKE", seats=2, location="paris",
                   notebooks={"0-ReadMeFirst.ipynb": ["Hello {{ student_id }}"], "9-Conclusion.ipynb": ["Bye"]})
    workshops, problems = load_catalog(tmp_path / "workshops", known_locations=settings.locations.keys())
    assert problems == []
    bucket = BucketContent(lambda: boto3.client("s3", region_name=REGION), outputs["ContentBucketName"])
    assert bucket.upload("WKSHP-SMOKE", workshops[0].folder)[0] >= 1
    context = ctx.build(settings)
    sync_workshop(context, workshops[0])
    assert [path for path, _ in bucket.files("WKSHP-SMOKE")] == ["0-ReadMeFirst.ipynb", "9-Conclusion.ipynb"]

    # Register: the seat is claimed in the stack's tables, the welcome mail goes out through SES.
    boto3.client("ses", region_name=REGION).verify_domain_identity(Domain=PARAMETERS["MailDomain"])
    created = registrations.register(context, {"email": "ada@example.com", "first_name": "Ada",
                                               "last_name": "Lovelace", "company": "Analytical",
                                               "workshop": "WKSHP-SMOKE", "accept_terms": True})
    assert created["status"] == "unconfirmed"  # held until the address confirms (WOD_CONFIRM_MINUTES)
    table = boto3.resource("dynamodb", region_name=REGION).Table(f"{PARAMETERS['TablePrefix']}-customers")
    assert table.get_item(Key={"id": created["id"]})["Item"]["email"] == "ada@example.com"
    assert participant.confirm(context, created["id"])["status"] in ("pending", "provisioning")
    sent = boto3.client("ses", region_name=REGION).get_send_quota()["SentLast24Hours"]
    assert sent >= 3  # the confirmation, the welcome mail and the CREATE order to the location's address

    # The orders topic exists under this stack's name and accepts what SES would publish.
    sns = boto3.client("sns", region_name=REGION)
    topic = outputs["OrdersTopicArn"]
    assert topic.endswith(":wod-orders")
    assert sns.publish(TopicArn=topic, Message="{}")["MessageId"]


def test_failed_asynchronous_events_are_kept_and_alarm(sam):
    """An order or a tick that keeps failing is not dropped: after Lambda's retries its event goes
    to the failed-events queue, which its function may write to, and the queue's depth alarms."""
    resources = sam["Resources"]
    queue = {"Fn::GetAtt": ["FailedEventsQueue", "Arn"]}
    for name in ("OrderIntake", "TimeChecks"):
        config = resources[name]["Properties"]["EventInvokeConfig"]
        assert config["DestinationConfig"]["OnFailure"] == {"Type": "SQS", "Destination": queue}
        assert config["MaximumRetryAttempts"] == infra.ASYNC_RETRIES
        statements = resources[f"{name}Role"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        assert {"Sid": "ReportFailedEvents", "Effect": "Allow", "Action": ["sqs:SendMessage"],
                "Resource": [queue]} in statements
    assert resources["FailedEventsQueue"]["Properties"]["SqsManagedSseEnabled"] is True
    alarm = resources["FailedEventsAlarm"]["Properties"]
    assert alarm["Namespace"] == "AWS/SQS" and alarm["AlarmActions"] == [{"Ref": "AlarmsTopic"}]


def test_operations_alarms_reach_the_alarms_topic(sam):
    resources = sam["Resources"]
    alarms = {k: v["Properties"] for k, v in resources.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    assert {"FrontDoorErrorsAlarm", "Api5xxAlarm", "DynamoDBThrottlesAlarm", "RejectedOrdersAlarm",
            "FailedEventsAlarm"} <= set(alarms)
    assert all(alarm["AlarmActions"] == [{"Ref": "AlarmsTopic"}] for alarm in alarms.values())
    throttled = [query["MetricStat"]["Metric"]["Dimensions"][0]["Value"] for name, alarm in alarms.items()
                 if name.startswith("LambdaThrottlesAlarm") for query in alarm["Metrics"] if "MetricStat" in query]
    assert sorted(value["Fn::Sub"] for value in throttled) == sorted(
        f"${{AWS::StackName}}-{name}" for name in infra.FUNCTIONS)  # every function, once
    assert all(len(alarm.get("Metrics", [])) <= 10 for alarm in alarms.values())  # CloudWatch's limit


def test_the_api_stage_is_throttled(sam):
    settings = sam["Resources"]["RestAPI"]["Properties"]["MethodSettings"]
    assert settings == [{"ResourcePath": "/*", "HttpMethod": "*", "ThrottlingRateLimit": {"Ref": "ApiRateLimit"},
                         "ThrottlingBurstLimit": {"Ref": "ApiBurstLimit"}}]
    assert sam["Parameters"]["ApiBurstLimit"]["Default"] >= 200  # an event's opening minute fits
    assert sam["Resources"]["RestAPI"]["Properties"]["StageName"] == "api"  # merged into Chalice's API
    assert "DefinitionBody" in sam["Resources"]["RestAPI"]["Properties"]


def test_the_content_bucket_takes_tls_only_and_forgets_old_versions(sam):
    resources = sam["Resources"]
    (statement,) = resources["ContentBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (rule,) = resources["ContentBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
