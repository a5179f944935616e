"""CloudFormation custom resource: make the stack's SES receipt rule set the active one.

Inlined into the template (``ZipFile``), so it uses only the Lambda runtime's boto3 and urllib.
Create/Update: activate ``RuleSetName``, unless another rule set is active in the region (only one
is: replacing it would cut off that application's inbound mail) and ``Replace`` is not "true": then
it fails, saying which set is active and what to deploy with instead. Delete: deactivate it, only if
it is still the active one (another rule set activated since is left alone). Answers CloudFormation
at ``ResponseURL``.
"""
import json
import urllib.request

import boto3


def send(url, body):
    request = urllib.request.Request(url, data=body, method="PUT", headers={"Content-Type": ""})
    urllib.request.urlopen(request, timeout=30).close()


def handler(event, context, ses=None):
    name = event["ResourceProperties"]["RuleSetName"]
    status, reason = "SUCCESS", ""
    try:
        ses = ses or boto3.client("ses")
        if event["RequestType"] in ("Create", "Update"):
            active = ses.describe_active_receipt_rule_set().get("Metadata", {}).get("Name")
            if active and active != name and event["ResourceProperties"].get("Replace") != "true":
                raise RuntimeError(f"the region's active receipt rule set is {active}, not this stack's: "
                                   f"deploy with ReceiptRuleSet={active} to add this stack's rule to it, or "
                                   f"with ReplaceActiveRuleSet=true to make {name} the active one instead "
                                   f"({active}'s rules then stop receiving mail)")
            ses.set_active_receipt_rule_set(RuleSetName=name)
        elif ses.describe_active_receipt_rule_set().get("Metadata", {}).get("Name") == name:
            ses.set_active_receipt_rule_set()  # no name: no active rule set
    except Exception as exc:  # CloudFormation must hear back, or it waits for an hour
        status, reason = "FAILED", f"{type(exc).__name__}: {exc}"
    send(event["ResponseURL"], json.dumps({
        "Status": status, "Reason": reason or "see the function's log", "PhysicalResourceId": name,
        "StackId": event["StackId"], "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"], "Data": {"RuleSetName": name},
    }).encode())
