"""A small NetworkPolicy evaluator (networking.k8s.io/v1 semantics, one namespace) for asserting
who may talk to whom in the rendered manifests."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Labels = Mapping[str, str]


def selector_matches(selector: Mapping[str, Any] | None, labels: Labels) -> bool:
    """metav1.LabelSelector semantics; an empty selector matches everything."""
    selector = selector or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


@dataclass(frozen=True)
class Endpoint:
    """A pod (labels + namespace labels) or, with ``ip`` set and no pod labels, an outside address."""

    labels: Labels = field(default_factory=dict)
    namespace: str = "titan"
    namespace_labels: Labels = field(default_factory=dict)
    ip: str = "10.42.0.99"
    is_pod: bool = True

    def ns_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace, **self.namespace_labels}


def _peer_matches(peer: Mapping[str, Any], other: Endpoint, policy_ns: str) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        addr = ipaddress.ip_address(other.ip)
        if addr not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(addr in ipaddress.ip_network(e) for e in block.get("except") or [])
    if not other.is_pod:
        return False
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], other.ns_labels()):
            return False
    elif other.namespace != policy_ns:
        return False
    return "podSelector" not in peer or selector_matches(peer["podSelector"], other.labels)


def _port_matches(ports: list[Mapping[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    for p in ports:
        if p.get("protocol", "TCP") != protocol:
            continue
        if "port" not in p:
            return True
        lo = int(p["port"])
        hi = int(p.get("endPort", lo))
        if lo <= port <= hi:
            return True
    return False


def _allowed(policies: Iterable[Mapping[str, Any]], subject: Endpoint, other: Endpoint, port: int,
             protocol: str, direction: str) -> bool:
    kind = "Ingress" if direction == "ingress" else "Egress"
    peers_key = "from" if direction == "ingress" else "to"
    selecting = [
        p for p in policies
        if p["metadata"].get("namespace", subject.namespace) == subject.namespace
        and selector_matches(p["spec"].get("podSelector"), subject.labels)
        and kind in p["spec"].get("policyTypes", ["Ingress"])
    ]
    if not selecting:
        return True  # not isolated in this direction
    for p in selecting:
        for rule in p["spec"].get(direction) or []:
            peers = rule.get(peers_key)
            peer_ok = not peers or any(_peer_matches(peer, other, subject.namespace) for peer in peers)
            if peer_ok and _port_matches(rule.get("ports"), port, protocol):
                return True
    return False


def can_connect(policies: Iterable[Mapping[str, Any]], src: Endpoint, dst: Endpoint, port: int,
                protocol: str = "TCP") -> bool:
    """Both src's egress and dst's ingress (when dst is a pod) must allow the connection."""
    policies = list(policies)
    if src.is_pod and not _allowed(policies, src, dst, port, protocol, "egress"):
        return False
    return not dst.is_pod or _allowed(policies, dst, src, port, protocol, "ingress")
