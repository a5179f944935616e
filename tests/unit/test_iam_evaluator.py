"""The rehearsal's IAM evaluator (``infra/iam.py``): a call turned into the requests AWS evaluates,
and each decided as AWS would (explicit deny first, then an allow, else refused)."""
from __future__ import annotations

from infra import iam

WHERE = iam.Where("eu-west-1", "123456789012", {"wod-admin": "pk", "wod-nonces": "nonce"},
                  {"/wod/link-key": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:/wod/link-key-AbCdEf"})
TABLE = "arn:aws:dynamodb:eu-west-1:123456789012:table/wod-"
POLICY = iam.Policy({"Statement": [
    {"Sid": "TablesWrite", "Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem"],
     "Resource": [f"{TABLE}admin", f"{TABLE}admin/index/*"]},
    {"Sid": "AuditAppendOnly", "Effect": "Deny", "Action": ["dynamodb:UpdateItem", "dynamodb:DeleteItem"],
     "Resource": [f"{TABLE}admin"], "Condition": {"ForAnyValue:StringEquals": {"dynamodb:LeadingKeys": ["AUDIT"]}}},
    {"Sid": "Secrets", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
     "Resource": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:/wod/link-key-??????"},
    {"Sid": "Appliances", "Effect": "Allow", "Action": ["ecs:ListTasks"],
     "Resource": "arn:aws:ecs:eu-west-1:123456789012:container-instance/wod-appliances/*",
     "Condition": {"ArnEquals": {"ecs:cluster": "arn:aws:ecs:eu-west-1:123456789012:cluster/wod-appliances"}}},
]})


def decide(service: str, operation: str, params: dict) -> list[iam.Decision]:
    return [POLICY.decide(request) for request in iam.requests_of(service, operation, params, WHERE)]


def test_a_table_outside_the_statement_is_refused_and_one_inside_allowed():
    key = {"Key": {"pk": {"S": "HOOK"}}}
    assert decide("dynamodb", "GetItem", {"TableName": "wod-admin", **key}) == [iam.Decision(True, "TablesWrite")]
    assert decide("dynamodb", "UpdateItem", {"TableName": "wod-nonces", "Key": {"nonce": {"S": "x"}}}) == [
        iam.Decision(False)]
    assert decide("dynamodb", "Query", {"TableName": "wod-admin", "IndexName": "deliveries-due"})[0].allowed is False


def test_the_audit_deny_wins_over_the_allow_for_audit_items_only():
    audit = {"TableName": "wod-admin", "Key": {"pk": {"S": "AUDIT"}, "sk": {"S": "1"}}}
    assert decide("dynamodb", "UpdateItem", audit) == [iam.Decision(False, denied_by="AuditAppendOnly")]
    assert decide("dynamodb", "UpdateItem", {**audit, "Key": {"pk": {"S": "HOOK"}}})[0].allowed
    assert decide("dynamodb", "PutItem", {"TableName": "wod-admin", "Item": {"pk": {"S": "AUDIT"}}})[0].allowed


def test_each_item_of_a_transaction_is_its_own_request():
    decisions = decide("dynamodb", "TransactWriteItems", {"TransactItems": [
        {"Put": {"TableName": "wod-admin", "Item": {"pk": {"S": "HOOK"}}}},
        {"Update": {"TableName": "wod-admin", "Key": {"pk": {"S": "AUDIT"}}}},
        {"ConditionCheck": {"TableName": "wod-nonces", "Key": {"nonce": {"S": "n"}}}}]})
    assert [d.allowed for d in decisions] == [True, False, False]
    assert decisions[1].denied_by == "AuditAppendOnly"


def test_a_secret_by_name_is_its_arn_with_the_random_suffix():
    assert decide("secretsmanager", "GetSecretValue", {"SecretId": "/wod/link-key"})[0].allowed
    assert not decide("secretsmanager", "GetSecretValue", {"SecretId": "/wod/admin-token"})[0].allowed


def test_a_condition_on_the_cluster_is_checked():
    assert decide("ecs", "ListTasks", {"cluster": "wod-appliances", "startedBy": "student1"})[0].allowed
    assert not decide("ecs", "ListTasks", {"cluster": "someone-elses"})[0].allowed


def test_mail_is_checked_on_its_identity_and_its_configuration_set():
    requests = iam.requests_of("ses", "SendRawEmail", {"RawMessage": {"Data": b"From: W <noreply@example.org>\r\n"},
                                                       "ConfigurationSetName": "wod-mail"}, WHERE)
    assert [r.resource.rsplit(":", 1)[1] for r in requests] == ["identity/example.org", "configuration-set/wod-mail"]


def test_moto_gets_a_copy_it_can_evaluate_and_each_statement_says_how_it_is_checked():
    copy, how = iam.moto_copy({"Statement": [s.raw for s in POLICY.statements]})
    sids = [s["Sid"] for s in copy["Statement"]]
    assert "AuditAppendOnly" not in sids  # moto fails every conditional statement: the rehearsal checks it
    assert all(s["Resource"] == "*" for s in copy["Statement"])  # moto authorizes these services against "*"
    tables = next(s for s in copy["Statement"] if s["Sid"] == "TablesWrite")
    assert "dynamodb:TransactWriteItems" in tables["Action"]  # moto's name for a transaction's items
    assert how == {"TablesWrite": "moto: action; rehearsal: resource",
                   "AuditAppendOnly": "rehearsal: action, resource and condition (moto fails every conditional "
                                      "statement)",
                   "Secrets": "moto: action; rehearsal: resource",
                   "Appliances": "moto: action; rehearsal: resource and condition"}


def one(statement: dict, service: str, operation: str, params: dict) -> iam.Decision:
    [decision] = [iam.Policy({"Statement": [statement]}).decide(r) for r in iam.requests_of(service, operation,
                                                                                             params, WHERE)]
    return decision


def test_not_resource_allows_every_resource_but_those_it_names():
    statement = {"Sid": "AllButAdmin", "Effect": "Allow", "Action": "dynamodb:GetItem", "NotResource": f"{TABLE}admin"}
    assert not one(statement, "dynamodb", "GetItem", {"TableName": "wod-admin", "Key": {"pk": {"S": "HOOK"}}}).allowed
    assert one(statement, "dynamodb", "GetItem", {"TableName": "wod-nonces", "Key": {"nonce": {"S": "n"}}}).allowed


def test_not_action_covers_every_action_but_those_it_names_even_one_not_listed_anywhere():
    allow = {"Sid": "AllButDelete", "Effect": "Allow", "NotAction": "dynamodb:DeleteItem", "Resource": f"{TABLE}*"}
    key = {"TableName": "wod-nonces", "Key": {"nonce": {"S": "n"}}}
    assert one(allow, "dynamodb", "GetItem", key).allowed and not one(allow, "dynamodb", "DeleteItem", key).allowed
    only_reads = {"Sid": "OnlyReads", "Effect": "Deny", "NotAction": "s3:GetObject", "Resource": "*"}
    deny = iam.Policy({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}, only_reads]})
    assert deny.decide(iam.Request("dynamodb:SomeActionNotYetListed", f"{TABLE}nonces")).denied_by == "OnlyReads"
    assert deny.decide(iam.Request("s3:GetObject", "arn:aws:s3:::b/k")).allowed


def test_a_statement_naming_no_resource_is_refused_as_aws_refuses_the_policy():
    decision = iam.Policy({"Statement": [{"Sid": "Loose", "Effect": "Allow", "Action": "dynamodb:GetItem"}]}).decide(
        iam.Request("dynamodb:GetItem", f"{TABLE}nonces"))
    assert not decision.allowed and "Resource" in str(decision.unevaluated)


def test_condition_keys_are_case_insensitive_and_a_negated_operator_holds_on_a_missing_key():
    audit = {"TableName": "wod-admin", "Key": {"pk": {"S": "AUDIT"}, "sk": {"S": "1"}}}
    deny = {"Sid": "Audit", "Effect": "Deny", "Action": "dynamodb:UpdateItem", "Resource": f"{TABLE}admin",
            "Condition": {"ForAnyValue:StringEquals": {"DynamoDB:LeadingKeys": ["AUDIT"]}}}
    allow = {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}
    policy = iam.Policy({"Statement": [allow, deny]})
    assert policy.decide(iam.requests_of("dynamodb", "UpdateItem", audit, WHERE)[0]).denied_by == "Audit"
    elsewhere = iam.Policy({"Statement": [allow, {
        "Sid": "OnlyIreland", "Effect": "Deny", "Action": "*", "Resource": "*",
        "Condition": {"StringNotEquals": {"aws:RequestedRegion": "us-east-1"}}}]})
    assert elsewhere.decide(iam.requests_of("dynamodb", "UpdateItem", audit, WHERE)[0]).denied_by == "OnlyIreland"
    tagged = iam.Policy({"Statement": [allow, {
        "Sid": "NotTagged", "Effect": "Deny", "Action": "*", "Resource": "*",
        "Condition": {"StringNotEquals": {"ecs:cluster": "arn:aws:ecs:eu-west-1:123456789012:cluster/x"}}}]})
    assert tagged.decide(iam.requests_of("dynamodb", "UpdateItem", audit, WHERE)[0]).denied_by == "NotTagged"


def test_a_condition_the_rehearsal_does_not_evaluate_refuses_the_call_and_says_why():
    for effect in ("Allow", "Deny"):
        decision = iam.Policy({"Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}, {
            "Sid": "Office", "Effect": effect, "Action": "dynamodb:GetItem", "Resource": "*",
            "Condition": {"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}}]}).decide(
            iam.Request("dynamodb:GetItem", f"{TABLE}nonces"))
        assert not decision.allowed and "Office" in str(decision.unevaluated), effect


def test_an_arn_condition_takes_wildcards_as_iam_does():
    statement = {"Effect": "Allow", "Action": "ecs:ListTasks", "Resource": "*",
                 "Condition": {"ArnEquals": {"ecs:cluster": "arn:aws:ecs:eu-west-1:123456789012:cluster/wod-*"}}}
    assert one(statement, "ecs", "ListTasks", {"cluster": "wod-appliances"}).allowed
    assert not one(statement, "ecs", "ListTasks", {"cluster": "other"}).allowed


def test_the_leading_key_of_a_query_and_of_batched_or_transacted_reads_is_checked():
    deny = {"Sid": "NoAudit", "Effect": "Deny", "Action": ["dynamodb:Query", "dynamodb:GetItem",
                                                           "dynamodb:BatchGetItem"],
            "Resource": [f"{TABLE}admin", f"{TABLE}admin/index/*"],
            "Condition": {"ForAnyValue:StringEquals": {"dynamodb:LeadingKeys": "AUDIT"}}}
    policy = iam.Policy({"Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}, deny]})

    def decisions(operation: str, params: dict) -> list[iam.Decision]:
        return [policy.decide(r) for r in iam.requests_of("dynamodb", operation, params, WHERE)]

    query = {"TableName": "wod-admin", "KeyConditionExpression": "#0 = :0 AND #1 < :1",
             "ExpressionAttributeNames": {"#0": "pk", "#1": "sk"},
             "ExpressionAttributeValues": {":0": {"S": "AUDIT"}, ":1": {"S": "2"}}}
    assert decisions("Query", query)[0].denied_by == "NoAudit"
    hooks = {":0": {"S": "HOOK"}, ":1": {"S": "2"}}
    assert decisions("Query", {**query, "ExpressionAttributeValues": hooks})[0].allowed
    assert decisions("BatchGetItem", {"RequestItems": {"wod-admin": {"Keys": [
        {"pk": {"S": "HOOK"}, "sk": {"S": "1"}}, {"pk": {"S": "AUDIT"}, "sk": {"S": "1"}}]}}})[0].denied_by == "NoAudit"
    assert decisions("TransactGetItems", {"TransactItems": [{"Get": {
        "TableName": "wod-admin", "Key": {"pk": {"S": "AUDIT"}, "sk": {"S": "1"}}}}]})[0].denied_by == "NoAudit"
    on_index = decisions("Query", {**query, "IndexName": "deliveries-due"})[0]  # its leading key: not the table's
    assert not on_index.allowed and on_index.unevaluated


def test_a_copy_reads_its_source_and_a_version_is_its_own_action():
    requests = iam.requests_of("s3", "CopyObject", {"Bucket": "b", "Key": "to", "CopySource": "src/from?versionId=1"},
                               WHERE)
    assert [(r.action, r.resource) for r in requests] == [("s3:PutObject", "arn:aws:s3:::b/to"),
                                                          ("s3:GetObjectVersion", "arn:aws:s3:::src/from")]
    [versioned] = iam.requests_of("s3", "GetObject", {"Bucket": "b", "Key": "k", "VersionId": "3"}, WHERE)
    assert versioned.action == "s3:GetObjectVersion"
    [source] = iam.requests_of("s3", "CopyObject", {"Bucket": "b", "Key": "to",
                                                    "CopySource": {"Bucket": "src", "Key": "a/b"}}, WHERE)[1:]
    assert (source.action, source.resource) == ("s3:GetObject", "arn:aws:s3:::src/a/b")


def test_moto_gets_no_statement_it_would_misread():
    copy, how = iam.moto_copy({"Statement": [
        {"Sid": "AllButAdmin", "Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::admin/*"},
        {"Sid": "NoAdmin", "Effect": "Deny", "Action": "s3:*", "NotResource": "arn:aws:s3:::open/*"},
        {"Sid": "AllButDelete", "Effect": "Allow", "NotAction": "dynamodb:DeleteItem", "Resource": f"{TABLE}x"}]})
    assert copy["Statement"] == [
        {"Sid": "AllButAdmin", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"},
        {"Sid": "AllButDelete", "Effect": "Allow", "NotAction": ["dynamodb:DeleteItem"], "Resource": "*"}]
    assert how["NoAdmin"].startswith("rehearsal:") and how["AllButAdmin"].endswith("rehearsal: resource and condition")
