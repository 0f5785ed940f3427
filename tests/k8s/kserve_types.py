"""KServe's SDK types as a strict schema for KServe resources (shared by the k8s/ manifest
tests and the Helm chart tests).

KServe publishes no OpenAPI schema for its CRDs that kubernetes-validate knows, so its Python
SDK's generated models (``kserve.V1alpha1ClusterServingRuntime``, ``V1beta1InferenceService``)
stand in: :func:`strict` builds them from parsed YAML and rejects any key the type does not
have, so a misspelt field fails in tests instead of being dropped by the API server.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import kserve
import kubernetes.client

# (apiVersion, kind) -> the SDK type that models it.
KINDS = {
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "V1alpha1ClusterServingRuntime",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
}
PRIMITIVES: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "int": int,
    "bool": bool,
    "float": (int, float),
    "object": object,
}


def _type(name: str) -> Any:
    found = getattr(kserve, name, None) or getattr(kubernetes.client, name, None)
    assert found is not None, f"no SDK type {name}"
    return found


def strict(value: Any, type_name: str, where: str) -> Any:
    """``value`` (parsed YAML) as the SDK type ``type_name``; every key must be a field."""
    if list_of := re.fullmatch(r"(?:list|List)\[(.+)\]", type_name):
        assert isinstance(value, list), f"{where}: expected a list"
        return [strict(item, list_of[1], f"{where}[{i}]") for i, item in enumerate(value)]
    if dict_of := re.fullmatch(r"(?:dict\(str, (.+)\)|Dict\[str, (.+)\])", type_name):
        assert isinstance(value, dict), f"{where}: expected a mapping"
        item_type = dict_of[1] or dict_of[2]
        return {k: strict(v, item_type, f"{where}.{k}") for k, v in value.items()}
    if type_name in PRIMITIVES:
        assert isinstance(value, PRIMITIVES[type_name]), f"{where}: {value!r} is not {type_name}"
        return value
    if type_name == "datetime":
        assert isinstance(value, str | datetime), f"{where}: not a timestamp"
        return value
    cls = _type(type_name)
    assert isinstance(value, dict), f"{where}: expected a {type_name} mapping"
    fields = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    unknown = sorted(set(value) - set(fields))
    assert not unknown, f"{where}: {type_name} has no field(s) {unknown}"
    kwargs = {
        fields[key]: strict(item, cls.openapi_types[fields[key]], f"{where}.{key}")
        for key, item in value.items()
    }
    return cls(**kwargs)  # the SDK's setters reject missing required fields and bad enums


def strict_resource(document: dict[str, Any], where: str) -> Any:
    """A KServe resource as its SDK type, chosen by apiVersion and kind."""
    key = (document.get("apiVersion"), document.get("kind"))
    assert key in KINDS, f"{where}: unexpected {key}"
    return strict(document, KINDS[key], where)
