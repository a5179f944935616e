"""The stack's operations and mail parts, merged by :mod:`infra.template`.

- Step Functions logs (errors only, no execution data: no password or address reaches a log);
- alarms on compensated provisioning and on SES's bounce and complaint rates;
- an optional WAF rate rule in front of the API stage (``WafRateLimit``, 0: none);
- SES: the sending domain with Easy DKIM (frontend), a configuration set with reputation metrics
  whose bounces and complaints go to a topic mailed to ``AlarmEmail``, and a custom resource that
  makes the stack's receipt rule set the active one (``custom/active_rule_set.py``, inlined);
- the rule that a frontend stack names an ``AlarmEmail``.
"""
from __future__ import annotations

from pathlib import Path

from infra import template as base

CUSTOM = Path(__file__).resolve().parent / "custom"
SES_BOUNCE_RATE = 0.05  # SES reviews an account above 5 % bounces ...
SES_COMPLAINT_RATE = 0.001  # ... or 0.1 % complaints
# SES's active rule set has no resource-level permissions.
ACTIVE_RULE_SET = ["ses:SetActiveReceiptRuleSet", "ses:DescribeActiveReceiptRuleSet"]
sub = base.sub


def parameters() -> dict:
    return {
        "WafRateLimit": {"Type": "Number", "Default": 0, "MinValue": 0,
                         "Description": "Requests per 5 minutes from one address before WAF blocks it "
                                        "(0: no WAF; else at least 10)"},
        "ReplaceActiveRuleSet": {"Type": "String", "AllowedValues": ["true", "false"], "Default": "false",
                                 "Description": "true: this stack's rule set becomes the region's active one even "
                                                "if another one is active (its rules then stop receiving mail); "
                                                "false: the deploy stops and names it"},
        "MailIdentityExists": {"Type": "String", "AllowedValues": ["true", "false"], "Default": "false",
                               "Description": "true: SES already has MailDomain's identity (made outside this "
                                              "stack): the stack uses it as it is and creates none"},
        "ReceiptRuleSet": {"Type": "String", "Default": "", "AllowedPattern": "^[A-Za-z0-9_.-]{0,64}$",
                           "Description": "Empty: the stack creates its receipt rule set and makes it the region's "
                                          "active one. The name of the region's active rule set (another stack's "
                                          "OrdersRuleSetName): the stack adds its rule to that one"},
    }


def conditions() -> dict:
    return {"HasWaf": {"Fn::Not": [{"Fn::Equals": [{"Ref": "WafRateLimit"}, 0]}]},
            "CreatesMailIdentity": {"Fn::And": [{"Condition": "IsFrontend"},
                                                {"Fn::Equals": [{"Ref": "MailIdentityExists"}, "false"]}]},
            "OwnsRuleSet": {"Fn::Equals": [{"Ref": "ReceiptRuleSet"}, ""]}}


def rules() -> dict:
    return {"FrontendAlarmEmail": {
        "RuleCondition": {"Fn::Equals": [{"Ref": "Frontend"}, "true"]},
        "Assertions": [{"Assert": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]},
                        "AssertDescription": "A frontend stack needs AlarmEmail: where its alarms are mailed"}]}}


def alarm(description: str, namespace: str, metric: str, threshold: float, statistic: str = "Maximum",
          **dimensions: str) -> dict:
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "AlarmDescription": description, "Namespace": namespace, "MetricName": metric,
        "Dimensions": [{"Name": name, "Value": value} for name, value in dimensions.items()],
        "Statistic": statistic, "Period": 900, "EvaluationPeriods": 1, "Threshold": threshold,
        "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching",
        "AlarmActions": [{"Ref": "AlarmsTopic"}]}}


def alarms() -> dict:
    return {
        "StateMachinesLogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {
            "LogGroupName": sub("/aws/vendedlogs/states/${AWS::StackName}"),
            "RetentionInDays": {"Ref": "LogRetentionDays"}}},
        "ProvisioningCompensatedAlarm": base.any_in_five_minutes(
            "Provisioning failed and was compensated: a participant got an apology instead of a workshop "
            "(the provision execution's history says why)",
            base.NAMESPACE, "ProvisioningCompensated", service=base.SERVICE),
        "SesBounceRateAlarm": {"Condition": "IsFrontend", **alarm(
            f"SES bounce rate above {SES_BOUNCE_RATE:.0%}: SES may pause sending for the account",
            "AWS/SES", "Reputation.BounceRate", SES_BOUNCE_RATE)},
        "SesComplaintRateAlarm": {"Condition": "IsFrontend", **alarm(
            f"SES complaint rate above {SES_COMPLAINT_RATE:.1%}: SES may pause sending for the account",
            "AWS/SES", "Reputation.ComplaintRate", SES_COMPLAINT_RATE)},
    }


def waf() -> dict:
    visibility = {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True}
    return {
        "ApiWebAcl": {"Type": "AWS::WAFv2::WebACL", "Condition": "HasWaf", "Properties": {
            "Name": sub("${AWS::StackName}-api"), "Scope": "REGIONAL", "DefaultAction": {"Allow": {}},
            "VisibilityConfig": {**visibility, "MetricName": sub("${AWS::StackName}-api")},
            "Rules": [{"Name": "rate-per-address", "Priority": 0, "Action": {"Block": {}},
                       "Statement": {"RateBasedStatement": {"Limit": {"Ref": "WafRateLimit"},
                                                            "AggregateKeyType": "IP"}},
                       "VisibilityConfig": {**visibility, "MetricName": sub("${AWS::StackName}-rate")}}]}},
        "ApiWebAclAssociation": {"Type": "AWS::WAFv2::WebACLAssociation", "Condition": "HasWaf",
                                 "DependsOn": "RestAPIapiStage", "Properties": {
            "ResourceArn": sub("arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/${RestAPI}/stages/api"),
            "WebACLArn": {"Fn::GetAtt": ["ApiWebAcl", "Arn"]}}},
    }


def mail() -> dict:
    resources = {
        "MailIdentity": {"Type": "AWS::SES::EmailIdentity", "Condition": "CreatesMailIdentity", "Properties": {
            "EmailIdentity": {"Ref": "MailDomain"},
            "DkimAttributes": {"SigningEnabled": True},
            "DkimSigningAttributes": {"NextSigningKeyLength": "RSA_2048_BIT"},
            "ConfigurationSetAttributes": {"ConfigurationSetName": {"Ref": "MailConfigurationSet"}}}},
        "MailConfigurationSet": {"Type": "AWS::SES::ConfigurationSet", "Properties": {
            "Name": sub("${AWS::StackName}-mail"),
            "ReputationOptions": {"ReputationMetricsEnabled": True},
            "SendingOptions": {"SendingEnabled": True}}},
        "MailFeedbackTopic": {"Type": "AWS::SNS::Topic", "Properties": {
            "TopicName": sub("${AWS::StackName}-mail-feedback")}},
        "MailFeedbackTopicPolicy": {"Type": "AWS::SNS::TopicPolicy", "Properties": {
            "Topics": [{"Ref": "MailFeedbackTopic"}], "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Sid": "SesPublishesFeedback", "Effect": "Allow", "Principal": {"Service": "ses.amazonaws.com"},
                "Action": "sns:Publish", "Resource": {"Ref": "MailFeedbackTopic"},
                "Condition": {"StringEquals": {"AWS:SourceAccount": {"Ref": "AWS::AccountId"}}}}]}}},
        "MailFeedbackSubscription": {"Type": "AWS::SNS::Subscription", "Condition": "HasAlarmEmail", "Properties": {
            "TopicArn": {"Ref": "MailFeedbackTopic"}, "Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}},
        "MailFeedbackDestination": {"Type": "AWS::SES::ConfigurationSetEventDestination",
                                    "DependsOn": "MailFeedbackTopicPolicy", "Properties": {
            "ConfigurationSetName": {"Ref": "MailConfigurationSet"},
            "EventDestination": {"Name": "bounces-and-complaints", "Enabled": True,
                                 "MatchingEventTypes": ["bounce", "complaint"],
                                 "SnsDestination": {"TopicARN": {"Ref": "MailFeedbackTopic"}}}}},
    }
    resources.update(active_rule_set())
    return resources


def active_rule_set() -> dict:
    logical = "ActiveRuleSet"
    return {
        f"{logical}Role": {"Condition": "OwnsRuleSet", **base.role(
            "Makes the stack's receipt rule set the active one", "lambda.amazonaws.com", [
                dict(base.LOGS, Resource=[sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:"
                                              f"log-group:/aws/lambda/${{AWS::StackName}}-{logical}:*")]),
                {"Sid": "ActiveRuleSet", "Effect": "Allow", "Action": ACTIVE_RULE_SET, "Resource": "*"}])},
        f"{logical}LogGroup": {"Type": "AWS::Logs::LogGroup", "Condition": "OwnsRuleSet", "Properties": {
            "LogGroupName": base.log_group_name(logical), "RetentionInDays": {"Ref": "LogRetentionDays"}}},
        f"{logical}Function": {"Type": "AWS::Lambda::Function", "Condition": "OwnsRuleSet",
                               "DependsOn": [f"{logical}LogGroup"], "Properties": {
            "FunctionName": base.function_name(logical), "Runtime": "python3.11", "Handler": "index.handler",
            "Timeout": 60, "MemorySize": 128, "Role": {"Fn::GetAtt": [f"{logical}Role", "Arn"]},
            "Code": {"ZipFile": (CUSTOM / "active_rule_set.py").read_text()}}},
        logical: {"Type": "Custom::ActiveReceiptRuleSet", "Condition": "OwnsRuleSet", "DependsOn": "OrdersRule",
                  "Properties": {"ServiceToken": {"Fn::GetAtt": [f"{logical}Function", "Arn"]},
                                 "RuleSetName": {"Ref": "OrdersRuleSet"}, "Replace": {"Ref": "ReplaceActiveRuleSet"}}},
    }


def outputs() -> dict:
    return {f"DkimRecord{n}": {
        "Condition": "CreatesMailIdentity",
        "Description": f"DNS record {n} of 3 that verifies MailDomain and signs its mail (Easy DKIM)",
        "Value": {"Fn::Join": [" CNAME ", [{"Fn::GetAtt": ["MailIdentity", f"DkimDNSTokenName{n}"]},
                                           {"Fn::GetAtt": ["MailIdentity", f"DkimDNSTokenValue{n}"]}]]},
    } for n in (1, 2, 3)} | {"MailConfigurationSetName": {"Value": {"Ref": "MailConfigurationSet"}}}


def resources() -> dict:
    return {**alarms(), **waf(), **mail()}
