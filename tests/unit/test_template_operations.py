"""The template's operations and mail parts (``infra/operations.py``), checked on the merge template."""
from __future__ import annotations

import pytest

from infra import merge, operations, standins
from infra import template as infra


@pytest.fixture(scope="module")
def merged() -> dict:
    return merge.merge_template()


def test_state_machines_log_errors_without_execution_data(merged):
    resources = merged["Resources"]
    machines = [r for r in resources.values() if r.get("Type") == "AWS::StepFunctions::StateMachine"]
    assert len(machines) == 5
    for machine in machines:
        logging = machine["Properties"]["LoggingConfiguration"]
        assert logging["Level"] == "ERROR" and logging["IncludeExecutionData"] is False
        assert logging["Destinations"] == [{"CloudWatchLogsLogGroup": {
            "LogGroupArn": {"Fn::GetAtt": ["StateMachinesLogGroup", "Arn"]}}}]
    statements = resources["StateMachineRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    [deliver] = [s for s in statements if s["Sid"] == "DeliverLogs"]
    assert "logs:CreateLogDelivery" in deliver["Action"] and "logs:PutResourcePolicy" in deliver["Action"]
    assert resources["StateMachinesLogGroup"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_a_frontend_stack_must_name_an_alarm_email(merged):
    rule = merged["Rules"]["FrontendAlarmEmail"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "Frontend"}, "true"]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}


def test_every_alarm_and_mail_feedback_reaches_the_alarm_email(merged):
    resources = merged["Resources"]
    alarms = {k: v["Properties"] for k, v in resources.items() if v.get("Type") == "AWS::CloudWatch::Alarm"}
    assert {"FailedEventsAlarm", "ProvisioningCompensatedAlarm", "SesBounceRateAlarm",
            "SesComplaintRateAlarm"} <= set(alarms)
    assert all(alarm["AlarmActions"] == [{"Ref": "AlarmsTopic"}] for alarm in alarms.values())
    bounce, complaint = alarms["SesBounceRateAlarm"], alarms["SesComplaintRateAlarm"]
    assert (bounce["Namespace"], bounce["MetricName"]) == ("AWS/SES", "Reputation.BounceRate")
    assert bounce["Threshold"] == 0.05
    assert (complaint["MetricName"], complaint["Threshold"]) == ("Reputation.ComplaintRate", 0.001)
    assert bounce["ComparisonOperator"] == "GreaterThanThreshold"
    for topic in ("AlarmsTopic", "MailFeedbackTopic"):
        [subscription] = [r["Properties"] for r in resources.values() if r.get("Type") == "AWS::SNS::Subscription"
                          and r["Properties"]["TopicArn"] == {"Ref": topic}]
        assert subscription["Endpoint"] == {"Ref": "AlarmEmail"} and subscription["Protocol"] == "email"


def test_bounces_and_complaints_go_to_a_topic_ses_may_publish_to(merged):
    resources = merged["Resources"]
    destination = resources["MailFeedbackDestination"]["Properties"]
    assert destination["ConfigurationSetName"] == {"Ref": "MailConfigurationSet"}
    event = destination["EventDestination"]
    assert sorted(event["MatchingEventTypes"]) == ["bounce", "complaint"] and event["Enabled"] is True
    assert event["SnsDestination"] == {"TopicARN": {"Ref": "MailFeedbackTopic"}}
    [grant] = resources["MailFeedbackTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert grant["Principal"] == {"Service": "ses.amazonaws.com"} and grant["Action"] == "sns:Publish"
    assert resources["MailConfigurationSet"]["Properties"]["ReputationOptions"] == {"ReputationMetricsEnabled": True}


def test_functions_know_the_configuration_set_and_may_send_with_it(merged):
    for logical in infra.FUNCTIONS:
        variables = merged["Resources"][logical]["Properties"]["Environment"]["Variables"]
        assert variables["WOD_SES_CONFIGURATION_SET"] == {"Ref": "MailConfigurationSet"}
    [send] = [s for s in infra.statements(infra.FRONTEND) if s["Sid"] == "SendMail"]
    assert {"Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:configuration-set/"
                       "${MailConfigurationSet}"} in send["Resource"]


def test_the_mail_domain_signs_with_easy_dkim_and_its_records_are_outputs(merged):
    identity = merged["Resources"]["MailIdentity"]
    assert identity["Properties"]["EmailIdentity"] == {"Ref": "MailDomain"}
    assert identity["Properties"]["DkimAttributes"] == {"SigningEnabled": True}
    for n in (1, 2, 3):
        value = merged["Outputs"][f"DkimRecord{n}"]["Value"]["Fn::Join"]
        assert value == [" CNAME ", [{"Fn::GetAtt": ["MailIdentity", f"DkimDNSTokenName{n}"]},
                                     {"Fn::GetAtt": ["MailIdentity", f"DkimDNSTokenValue{n}"]}]]


def test_an_optional_waf_rate_rule_guards_the_api_stage(merged):
    resources = merged["Resources"]
    assert merged["Parameters"]["WafRateLimit"]["Default"] == 0
    assert merged["Conditions"]["HasWaf"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "WafRateLimit"}, 0]}]}
    acl = resources["ApiWebAcl"]
    assert acl["Condition"] == "HasWaf" and acl["Properties"]["Scope"] == "REGIONAL"
    [rule] = acl["Properties"]["Rules"]
    assert rule["Statement"]["RateBasedStatement"] == {"Limit": {"Ref": "WafRateLimit"}, "AggregateKeyType": "IP"}
    assert rule["Action"] == {"Block": {}}
    association = resources["ApiWebAclAssociation"]
    assert association["Condition"] == "HasWaf"
    assert association["Properties"]["ResourceArn"]["Fn::Sub"].endswith("/restapis/${RestAPI}/stages/api")


def test_data_outlives_the_stack_but_not_a_failed_first_create(merged):
    resources = merged["Resources"]
    data = [k for k, v in resources.items() if v.get("Type") in ("AWS::DynamoDB::Table", "AWS::S3::Bucket")]
    assert len(data) == 7
    for logical in data:
        assert resources[logical]["DeletionPolicy"] == "RetainExceptOnCreate", logical
        assert resources[logical]["UpdateReplacePolicy"] == "Retain", logical
    tables = [resources[k]["Properties"] for k in data if resources[k]["Type"] == "AWS::DynamoDB::Table"]
    assert all(t["DeletionProtectionEnabled"] == {"Ref": "TableDeletionProtection"} for t in tables)
    assert merged["Parameters"]["TableDeletionProtection"]["Default"] == "false"  # a first create can roll back


class FakeSes:
    def __init__(self, active: str | None = None, fail: bool = False):
        self.active, self.fail = active, fail

    def set_active_receipt_rule_set(self, RuleSetName=None):
        if self.fail:
            raise RuntimeError("RuleSetDoesNotExist")
        self.active = RuleSetName

    def describe_active_receipt_rule_set(self):
        return {"Metadata": {"Name": self.active}} if self.active else {}


def activate(request: str, ses: FakeSes, replace: str = "false") -> dict:
    merged = merge.merge_template()
    resolve = standins.Resolver(merged, {"AlarmEmail": "ops@example.org", "ReplaceActiveRuleSet": replace},
                                {"AWS::StackName": "wod"}, {"OrdersRuleSet": "wod-orders"})
    return standins.run_inline(merged, "ActiveRuleSet", resolve, {"ses": ses}, request=request)


def test_the_activation_refuses_to_replace_another_active_rule_set_unless_told_to():
    ses = FakeSes(active="someone-elses")
    answer = activate("Create", ses)
    assert answer["Status"] == "FAILED" and ses.active == "someone-elses"
    assert "active receipt rule set is someone-elses" in answer["Reason"]
    assert "ReceiptRuleSet=someone-elses" in answer["Reason"] and "ReplaceActiveRuleSet=true" in answer["Reason"]
    assert activate("Create", ses, replace="true")["Status"] == "SUCCESS" and ses.active == "wod-orders"


def test_the_stack_activates_its_receipt_rule_set_and_lets_go_of_it_only_if_still_active():
    ses = FakeSes()
    assert activate("Create", ses)["Status"] == "SUCCESS" and ses.active == "wod-orders"
    assert activate("Update", ses)["PhysicalResourceId"] == "wod-orders"
    assert activate("Delete", ses)["Status"] == "SUCCESS" and ses.active is None
    other = FakeSes(active="another-set")
    activate("Delete", other)
    assert other.active == "another-set"  # activated since: left alone
    answer = activate("Create", FakeSes(fail=True))
    assert answer["Status"] == "FAILED" and "RuleSetDoesNotExist" in answer["Reason"]


def test_the_custom_resource_is_inline_and_may_only_touch_the_active_rule_set(merged):
    resources = merged["Resources"]
    code = resources["ActiveRuleSetFunction"]["Properties"]["Code"]["ZipFile"]
    assert len(code) <= 4096  # CloudFormation's limit for inline code
    statements = resources["ActiveRuleSetRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert [s["Action"] for s in statements if s["Sid"] == "ActiveRuleSet"] == [operations.ACTIVE_RULE_SET]
    assert resources["ActiveRuleSet"]["Properties"]["RuleSetName"] == {"Ref": "OrdersRuleSet"}
    assert resources["ActiveRuleSet"]["DependsOn"] == "OrdersRule"  # activated once its rule is in it


def test_a_second_stack_in_the_region_puts_its_rule_into_the_active_rule_set(merged):
    own = standins.Resolver(merged, {"AlarmEmail": "ops@example.org"}, {"AWS::StackName": "wod"},
                            {"OrdersRuleSet": "wod-orders"})
    joined = standins.Resolver(merged, {"AlarmEmail": "ops@example.org", "ReceiptRuleSet": "wod-orders"},
                               {"AWS::StackName": "wod-lyon"}, {})
    resources = merged["Resources"]
    rule = resources["OrdersRule"]["Properties"]["RuleSetName"]
    assert own(rule) == "wod-orders" and own.active(resources["OrdersRuleSet"])
    assert own.active(resources["ActiveRuleSet"])
    assert joined(rule) == "wod-orders"  # the first stack's set, already active
    assert not joined.active(resources["OrdersRuleSet"]) and not joined.active(resources["ActiveRuleSet"])
    assert joined(merged["Outputs"]["OrdersRuleSetName"]["Value"]) == "wod-orders"
