"""A container's environment and argv, resolved the way the kubelet does it.

The pod launcher runs a container's command as a host process, so the
kubelet's part of the container contract must be reproduced here: the
downward API (``fieldRef``), ConfigMap and Secret references, ``envFrom``,
and ``$(VAR)`` expansion in env values, command and args (``$$`` escapes a
dollar; an unknown reference stays as written).

Anything this harness cannot honour (``resourceFieldRef``, a missing key that
is not optional) raises ``ContainerConfigError``; the launcher reports it as
the kubelet would, a waiting container with reason CreateContainerConfigError.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from typing import Any

# (kind, namespace, name) -> data, or None if the object does not exist.
Lookup = Callable[[str, str, str], Mapping[str, str] | None]

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ContainerConfigError(Exception):
    """The container's spec cannot be turned into a process."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _REF.sub(one, text)


def field_value(pod: Mapping[str, Any], path: str) -> str:
    """A downward-API ``fieldRef.fieldPath`` of a pod (a JSON object)."""
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status", {})
    labelled = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if labelled:
        return str(meta.get(labelled.group(1), {}).get(labelled.group(2), ""))
    simple: dict[str, Callable[[], Any]] = {
        "metadata.name": lambda: meta["name"],
        "metadata.namespace": lambda: meta["namespace"],
        "metadata.uid": lambda: meta["uid"],
        "spec.nodeName": lambda: spec.get("nodeName"),
        "spec.serviceAccountName": lambda: spec.get("serviceAccountName"),
        "status.hostIP": lambda: status.get("hostIP"),
        "status.podIP": lambda: status.get("podIP"),
        "status.hostIPs": lambda: ",".join(i["ip"] for i in status.get("hostIPs", [])),
        "status.podIPs": lambda: ",".join(i["ip"] for i in status.get("podIPs", [])),
    }
    if path not in simple:
        raise ContainerConfigError(f"fieldRef {path!r} is not supported by the pod launcher")
    value = simple[path]()
    return "" if value is None else str(value)


def _decoded(kind: str, data: Mapping[str, str]) -> Mapping[str, str]:
    if kind == "Secret":
        return {k: base64.b64decode(v).decode() for k, v in data.items()}
    return data


def _key_ref(ref: Mapping[str, Any], kind: str, namespace: str, lookup: Lookup) -> str | None:
    data = lookup(kind, namespace, ref["name"])
    key = ref["key"]
    if data is not None and key in data:
        return _decoded(kind, {key: data[key]})[key]
    if ref.get("optional"):
        return None
    raise ContainerConfigError(f"{kind} {namespace}/{ref['name']} has no key {key!r}")


def container_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    base: Mapping[str, str],
    lookup: Lookup,
) -> dict[str, str]:
    """``base`` (the host part), then envFrom, then env, in the kubelet's order."""
    env = dict(base)
    namespace = pod["metadata"]["namespace"]
    for source in container.get("envFrom", []):
        kind = "ConfigMap" if "configMapRef" in source else "Secret"
        ref = source.get("configMapRef") or source["secretRef"]
        data = lookup(kind, namespace, ref["name"])
        if data is None:
            if ref.get("optional"):
                continue
            raise ContainerConfigError(f"{kind} {namespace}/{ref['name']} not found")
        for key, text in _decoded(kind, data).items():
            env[source.get("prefix", "") + key] = text
    for var in container.get("env", []):
        name = var["name"]
        vf = var.get("valueFrom")
        if vf is None:
            env[name] = expand(var.get("value", ""), env)
            continue
        value: str | None
        if "fieldRef" in vf:
            value = field_value(pod, vf["fieldRef"]["fieldPath"])
        elif "configMapKeyRef" in vf:
            value = _key_ref(vf["configMapKeyRef"], "ConfigMap", namespace, lookup)
        elif "secretKeyRef" in vf:
            value = _key_ref(vf["secretKeyRef"], "Secret", namespace, lookup)
        else:
            raise ContainerConfigError(f"env {name}: only fieldRef and key refs are supported")
        if value is not None:
            env[name] = value
    return env


def container_argv(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """command + args, expanded. There is no image here, so no entrypoint to fall back on."""
    if not container.get("command"):
        raise ContainerConfigError(
            f"container {container['name']!r} has no command; the pod launcher runs host "
            "processes and has no image entrypoint to fall back on"
        )
    return [expand(a, env) for a in [*container["command"], *container.get("args", [])]]
