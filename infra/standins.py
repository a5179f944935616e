"""What the deploy rehearsal does where the embedded AWS (moto) falls short of CloudFormation.

- :func:`translate`: the SAM transform (``AWS::Serverless-2016-10-31``), which CloudFormation runs
  on AWS and moto does not, done here with ``aws-sam-translator``;
- :func:`without_unsupported`: the resources moto's CloudFormation cannot create, taken out
  (references to them become ``skipped-<logical id>``), and named, so the rehearsal can say so;
- :class:`Resolver`: the few intrinsic functions needed to stand in, after the deploy, for the
  skipped resources moto has an API for (secrets, SES identity, rule set and rule, configuration set).
"""
from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any

SKIPPED = "skipped-"
# Types moto's CloudFormation has but cannot create from this template, and why.
# Skipped types whose Ref is a name the template gives: references to them keep that name.
NAME_PROPERTY = {"AWS::SES::ConfigurationSet": "Name", "AWS::SES::ReceiptRuleSet": "RuleSetName",
                 "AWS::SES::EmailIdentity": "EmailIdentity"}
UNUSABLE = {"AWS::ApiGateway::Deployment": "moto builds no methods from the API's OpenAPI body: nothing to deploy"}


def translate(template: dict, parameters: Mapping[str, str]) -> dict:
    """The packaged SAM template as CloudFormation sees it after the transform."""
    import logging

    from samtranslator.translator.transform import transform

    logging.getLogger("samtranslator.metrics").setLevel(logging.ERROR)  # "unpublished metrics": it sends none

    class NoManagedPolicies:  # the template names no AWS managed policy
        def load(self) -> dict:
            return {}

    return transform(template, dict(parameters), NoManagedPolicies())


def why_skipped(kind: str) -> str:
    if kind.startswith("Custom::"):
        return "a custom resource on a skipped resource: the rehearsal runs its function's code after standing in"
    return UNUSABLE.get(kind, f"moto's CloudFormation cannot create {kind}")


def moto_types() -> set[str]:
    from moto.cloudformation.parsing import NULL_MODELS, get_model_map

    return (set(get_model_map()) | set(NULL_MODELS)) - set(UNUSABLE)


def references(value: Any) -> set[str]:
    """Logical ids (and parameters) that ``value`` refers to through Ref, Fn::GetAtt or Fn::Sub."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg[0] if isinstance(arg, list) else arg.split(".")[0])
            elif key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                found |= {name.split(".")[0] for name in re.findall(r"\$\{([^}!]+)\}", text)}
                found |= references(arg if isinstance(arg, str) else arg[1])
            else:
                found |= references(arg)
    elif isinstance(value, list):
        for item in value:
            found |= references(item)
    return found


def _replace(value: Any, skipped: set[str], names: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"Ref"} and value["Ref"] in skipped:
            return names.get(value["Ref"], SKIPPED + value["Ref"])
        if set(value) == {"Fn::GetAtt"}:
            target = value["Fn::GetAtt"]
            name, attribute = (target[0], target[1]) if isinstance(target, list) else target.split(".", 1)
            if name in skipped:
                return f"{SKIPPED}{name}-{attribute}"
        if set(value) == {"Fn::Sub"}:
            arg = value["Fn::Sub"]
            text, variables = (arg, None) if isinstance(arg, str) else (arg[0], arg[1])
            text = re.sub(r"\$\{([^}!.]+)(?:\.([^}]+))?\}",
                          lambda m: (names[m.group(1)] if m.group(1) in names and not m.group(2) else
                                     SKIPPED + m.group(1) + (f"-{m.group(2)}" if m.group(2) else ""))
                          if m.group(1) in skipped else m.group(0), text)
            return {"Fn::Sub": text if variables is None else [text, _replace(variables, skipped, names)]}
        return {key: _replace(arg, skipped, names) for key, arg in value.items()}
    if isinstance(value, list):
        return [_replace(item, skipped, names) for item in value]
    return value


def without_unsupported(template: dict, supported: set[str], resolve: Resolver | None = None
                        ) -> tuple[dict, dict[str, str]]:
    """``template`` less what moto cannot create -> (that template, skipped logical id -> type).
    A custom resource that needs a skipped resource is skipped too (the rehearsal runs it itself).
    A reference to a skipped resource becomes ``skipped-<logical id>``, or, for a resource known by
    a name the template gives it (:data:`NAME_PROPERTY`, evaluated by ``resolve``), that name."""
    resources = template["Resources"]
    skipped = {k: v["Type"] for k, v in resources.items()
               if v["Type"] not in supported and not v["Type"].startswith("Custom::")}
    while True:
        more = {k: v["Type"] for k, v in resources.items() if k not in skipped and v["Type"].startswith("Custom::")
                and references(v) & set(skipped)}
        if not more:
            break
        skipped |= more
    names = {logical: str(resolve(resources[logical]["Properties"][NAME_PROPERTY[kind]]))
             for logical, kind in skipped.items() if resolve is not None and kind in NAME_PROPERTY}
    kept = {}
    for logical, resource in resources.items():
        if logical in skipped:
            continue
        resource = _replace(resource, set(skipped), names)
        depends = resource.get("DependsOn")
        if depends is not None:
            depends = [d for d in ([depends] if isinstance(depends, str) else depends) if d not in skipped]
            resource = {k: v for k, v in resource.items() if k != "DependsOn"} | (
                {"DependsOn": depends} if depends else {})
        kept[logical] = resource
    out = dict(template, Resources=kept, Outputs=_replace(template.get("Outputs", {}), set(skipped), names))
    return json.loads(json.dumps(out)), skipped


def fit_for_moto(template: dict, resolve: Resolver | None = None) -> list[str]:
    """Adjust, in place, what moto reads differently from CloudFormation; say what was changed.
    With ``resolve``, resources and outputs whose condition is false are left out: CloudFormation
    never creates them, but moto's update tries to update them (and fails)."""
    notes = []
    if resolve is not None:
        for section in ("Resources", "Outputs"):
            off = [k for k, v in template.get(section, {}).items() if not resolve.active(v)]
            for logical in off:
                del template[section][logical]
        notes.append("resources whose condition is false left out (moto would try to update them)")
    for logical, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::ApiGateway::RestApi" and "Name" not in props:
            props["Name"] = props.get("Body", {}).get("info", {}).get("title", logical)
            notes.append(f"{logical}: named after its OpenAPI title (moto reads no Body, needs a Name)")
    return notes


class Resolver:
    """Evaluate Ref, Fn::Sub, Fn::GetAtt (of resources with a known physical id), Fn::If, Fn::Join,
    Fn::Equals/Not/And/Or and conditions, given the parameters and the stack's physical ids."""

    def __init__(self, template: dict, parameters: Mapping[str, str], pseudo: Mapping[str, str],
                 physical: Mapping[str, str]):
        self.template, self.physical = template, dict(physical)
        defaults = {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()}
        self.names = {**defaults, **parameters, **pseudo}

    def condition(self, name: str) -> bool:
        return bool(self(self.template.get("Conditions", {})[name]))

    def active(self, resource: dict) -> bool:
        return "Condition" not in resource or self.condition(resource["Condition"])

    def attribute(self, name: str, attribute: str) -> str:
        """``Fn::GetAtt``: an ARN made from the physical id for the types the rehearsal reads; else the id."""
        physical = self.physical.get(name)
        if physical is None:
            return f"{SKIPPED}{name}"
        kind = self.template.get("Resources", {}).get(name, {}).get("Type", "")
        region, account = self.names.get("AWS::Region", ""), self.names.get("AWS::AccountId", "")
        if attribute == "Arn" and kind == "AWS::SQS::Queue":
            return f"arn:aws:sqs:{region}:{account}:{physical.rstrip('/').rsplit('/', 1)[-1]}"
        if attribute == "Arn" and kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{physical}"
        if attribute == "Arn" and kind in ("AWS::Lambda::Function", "AWS::Serverless::Function"):
            return f"arn:aws:lambda:{region}:{account}:function:{physical}"
        return physical

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {key: self(arg) for key, arg in value.items()}
        [(key, arg)] = value.items()
        if key == "Ref":
            return self.names[arg] if arg in self.names else self.physical.get(arg, f"{SKIPPED}{arg}")
        if key == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self(arg[1]))
            known = {**self.names, **self.physical, **variables}
            return re.sub(r"\$\{([^}!]+)\}", lambda m: str(known.get(m.group(1), m.group(0))), text)
        if key == "Fn::GetAtt":
            name, attribute = (arg[0], arg[1]) if isinstance(arg, list) else arg.split(".", 1)
            return self.attribute(name, attribute)
        if key == "Fn::If":
            return self(arg[1] if self.condition(arg[0]) else arg[2])
        if key == "Fn::Join":
            return arg[0].join(str(self(item)) for item in self(arg[1]))
        if key == "Fn::Equals":
            return str(self(arg[0])) == str(self(arg[1]))  # parameters are strings, template numbers not
        if key == "Fn::Not":
            return not self(arg[0])
        if key == "Fn::And":
            return all(self(item) for item in arg)
        if key == "Fn::Or":
            return any(self(item) for item in arg)
        if key == "Condition":
            return self.condition(arg)
        return {key: self(arg)}


def create(template: dict, skipped: Mapping[str, str], resolve: Resolver, client: Callable[[str], Any],
           out: Callable[[str], None], role_client: Callable[[str, str], Any] | None = None,
           account: str = "123456789012", region: str = "us-east-1") -> list[str]:
    """Create the skipped resources moto has an API for, as the template describes them; name the rest.
    A custom resource's function runs with its own role's client (``role_client(role, service)``)."""
    done = []
    for logical, kind in sorted(skipped.items()):
        resource = template["Resources"][logical]
        if not resolve.active(resource):
            continue
        props = resolve(resource.get("Properties", {}))
        if kind == "AWS::SecretsManager::Secret":
            client("secretsmanager").create_secret(Name=props["Name"], SecretString=secrets.token_urlsafe(36))
            what = f"secret {props['Name']} (a generated value)"
        elif kind == "AWS::SES::EmailIdentity":
            client("ses").verify_domain_identity(Domain=props["EmailIdentity"])
            resolve.physical[logical] = props["EmailIdentity"]
            what = f"SES identity {props['EmailIdentity']} (verified at once, as DKIM records would)"
        elif kind == "AWS::SES::ConfigurationSet":
            client("ses").create_configuration_set(ConfigurationSet={"Name": props["Name"]})
            resolve.physical[logical] = props["Name"]
            what = f"SES configuration set {props['Name']}"
        elif kind == "AWS::SES::ReceiptRuleSet":
            client("ses").create_receipt_rule_set(RuleSetName=props["RuleSetName"])
            resolve.physical[logical] = props["RuleSetName"]  # what Ref gives
            what = f"SES receipt rule set {props['RuleSetName']}"
        elif kind == "AWS::SNS::TopicPolicy":
            for topic in props["Topics"]:
                client("sns").set_topic_attributes(TopicArn=topic, AttributeName="Policy",
                                                   AttributeValue=json.dumps(props["PolicyDocument"]))
            topics = ", ".join(t.rsplit(":", 1)[-1] for t in props["Topics"])
            what = f"the policy of {topics} (checked when SES publishes)"
        elif kind == "AWS::SNS::Subscription":
            endpoint = props["Endpoint"]
            if props["Protocol"] == "lambda" and not endpoint.startswith("arn:"):
                endpoint = f"arn:aws:lambda:{region}:{account}:function:{endpoint}"
            client("sns").subscribe(TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=endpoint)
            what = (f"{props['Protocol']} subscription of {endpoint.rsplit(':', 1)[-1]} to "
                    f"{props['TopicArn'].rsplit(':', 1)[-1]}")
        elif kind == "AWS::Lambda::EventInvokeConfig":
            client("lambda").put_function_event_invoke_config(
                FunctionName=props["FunctionName"], MaximumRetryAttempts=int(props["MaximumRetryAttempts"]),
                DestinationConfig=props["DestinationConfig"])
            what = f"{props['FunctionName']}: {props['MaximumRetryAttempts']} retries, then the failed-events queue"
        elif kind == "AWS::CloudWatch::Alarm":
            client("cloudwatch").put_metric_alarm(AlarmName=logical, **{
                k: v for k, v in props.items() if k not in ("AlarmName",)})
            what = "alarm (nothing feeds its metric here)"
        else:
            continue
        done.append(logical)
        out(f"    {logical}: {what}")
    for logical, kind in sorted(skipped.items()):  # rules go into the rule sets made above
        resource = template["Resources"][logical]
        if kind == "AWS::SES::ReceiptRule" and resolve.active(resource):
            props = resolve(resource["Properties"])
            client("ses").create_receipt_rule(RuleSetName=props["RuleSetName"], Rule=props["Rule"])
            done.append(logical)
            out(f"    {logical}: SES receipt rule {props['Rule']['Name']} for {', '.join(props['Rule']['Recipients'])}")
    for logical, kind in sorted(skipped.items()):  # custom resources last: what they act on exists now
        resource = template["Resources"][logical]
        if kind.startswith("Custom::") and resolve.active(resource):
            function = template["Resources"][resource["Properties"]["ServiceToken"]["Fn::GetAtt"][0]]
            role = function["Properties"]["Role"]["Fn::GetAtt"][0]
            ses = role_client(role, "ses") if role_client else client("ses")
            answer = run_inline(template, logical, resolve, {"ses": ses})
            if answer["Status"] != "SUCCESS":
                raise RuntimeError(f"{logical} answered {answer['Status']}: {answer['Reason']}")
            done.append(logical)
            out(f"    {logical}: its function's own code run with a Create request"
                f"{' as ' + role if role_client else ''}: {answer['Status']}")
    return done


def run_inline(template: dict, logical: str, resolve: Resolver, clients: Mapping[str, Any],
               request: str = "Create") -> dict:
    """Run a custom resource's inline (``ZipFile``) function here, as CloudFormation would invoke
    it; returns what it answered to CloudFormation."""
    resource = template["Resources"][logical]
    function = resource["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
    namespace: dict[str, Any] = {}
    exec(compile(template["Resources"][function]["Properties"]["Code"]["ZipFile"], function, "exec"), namespace)
    answers: list[dict] = []
    namespace["send"] = lambda url, body: answers.append(json.loads(body))  # its answer, kept here
    properties = {k: v for k, v in resolve(resource["Properties"]).items()}
    namespace["handler"]({"RequestType": request, "ResponseURL": "rehearsal", "StackId": "rehearsal",
                          "RequestId": "rehearsal", "LogicalResourceId": logical, "ResourceType": resource["Type"],
                          "ResourceProperties": properties}, None, **clients)
    return answers[0]
