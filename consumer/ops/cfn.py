"""CloudFormation's intrinsic functions as small constructors, shared by the template's modules."""

from __future__ import annotations

from typing import Any


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def arn(logical_id: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def sub(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}


def if_(condition: str, then: Any, otherwise: Any) -> dict[str, list[Any]]:
    return {"Fn::If": [condition, then, otherwise]}


NO_VALUE = {"Ref": "AWS::NoValue"}


def not_empty(parameter: str) -> dict[str, Any]:
    return {"Fn::Not": [{"Fn::Equals": [ref(parameter), ""]}]}
