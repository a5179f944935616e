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
