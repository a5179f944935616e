"""The pynamodb models and infra/tables.json (what AWS and the local stack create) agree."""
from __future__ import annotations

import pytest

from chalicelib.store import models
from local.tables import table_definitions


def normalised_keys(key_schema):
    return sorted((k["AttributeName"], k["KeyType"]) for k in key_schema)


DEFINITIONS = {t["TableName"].removeprefix("wod-"): t for t in table_definitions("wod")}


def test_every_model_has_a_table_and_no_table_is_unused():
    assert set(DEFINITIONS) == set(models.MODELS)


@pytest.mark.parametrize("kind", sorted(models.MODELS))
def test_model_matches_its_table(kind):
    schema, table = models.MODELS[kind]._get_schema(), DEFINITIONS[kind]
    assert normalised_keys(schema["key_schema"]) == normalised_keys(table["KeySchema"])
    assert sorted((a["AttributeName"], a["AttributeType"]) for a in schema["attribute_definitions"]) == sorted(
        (a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"])
    indexes = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes", [])}
    assert set(indexes) == {g["index_name"] for g in schema["global_secondary_indexes"]}
    for index in schema["global_secondary_indexes"]:
        declared = indexes[index["index_name"]]
        assert normalised_keys(index["key_schema"]) == normalised_keys(declared["KeySchema"]), index["index_name"]
        assert index["projection"] == declared["Projection"], index["index_name"]


def test_personal_data_and_nonces_expire():
    assert DEFINITIONS["customers"]["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert DEFINITIONS["nonces"]["TimeToLiveSpecification"] == {"AttributeName": "expires", "Enabled": True}
    assert DEFINITIONS["admin"]["TimeToLiveSpecification"] == {"AttributeName": "expires", "Enabled": True}
    assert all(t["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] for t in DEFINITIONS.values())


def test_bindings_are_shared_per_prefix_and_only_the_last_few_are_kept():
    from chalicelib.settings import Settings
    from chalicelib.store import tables

    first = Settings(table_prefix="keep0")
    bound = tables.bind(first)
    assert tables.bind(Settings(table_prefix="keep0")) is bound
    for n in range(1, 3 * tables.BOUND_KEEP):
        tables.bind(Settings(table_prefix=f"keep{n}"))
    assert len(tables._cache) <= tables.BOUND_KEEP
    assert tables.bind(first) is not bound  # a long-gone binding is made again, not kept for ever
