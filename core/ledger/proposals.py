"""Parameter proposals with their evidence, and the versions of a phase's params they applied.

Rows are written by the AI Quant directly (not through the event stream): a proposal is stored once
with its walk-forward folds, then only its status changes (accepted → applied → rolled back, or
rejected). ``parameter_versions`` numbers every params change per phase, so a rollback restores the
exact params that were there before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast


@dataclass(frozen=True)
class ProposalRow:
    proposal_id: str
    phase_id: str
    source: str                      # gemini | optuna
    status: str
    reason_code: str                 # empty when nothing is wrong
    reason: str                      # the human-readable detail
    params_json: str                 # proposed spec.params (canonical JSON; empty when there were none)
    base_params_json: str            # the params it was measured against
    rationale: str
    objective: str
    baseline_score: str
    candidate_score: str
    changes: Sequence[Mapping[str, Any]] = ()
    folds: Sequence[Mapping[str, Any]] = ()
    model: str = ""
    prompt_tokens: int = 0
    output_tokens: int = 0
    parsed_none: bool = False
    elapsed_s: float = 0.0
    created_ts_ns: int = 0
    ts_ns: int = 0


@dataclass(frozen=True)
class ParamsVersion:
    phase_id: str
    version: int
    params_json: str
    previous_params_json: str
    proposal_id: str
    action: str                      # apply | rollback
    target: str                      # file:<path> or cluster:<namespace>/<name>
    ts_ns: int
    extra: Mapping[str, Any] = field(default_factory=dict)


_COLUMNS = (
    "proposal_id", "phase_id", "source", "status", "reason_code", "reason", "params_json", "base_params_json",
    "rationale", "objective", "baseline_score", "candidate_score", "changes", "folds", "model", "prompt_tokens",
    "output_tokens", "parsed_none", "elapsed_s", "created_ts_ns", "ts_ns",
)


def _args(row: ProposalRow) -> list[Any]:
    values = {name: getattr(row, name) for name in _COLUMNS}
    values["changes"] = json.dumps([dict(c) for c in row.changes])
    values["folds"] = json.dumps([dict(f) for f in row.folds])
    return [values[name] for name in _COLUMNS]


INSERT_PROPOSAL = (
    f"INSERT INTO parameter_proposals ({', '.join(_COLUMNS)}, event_id)"
    f" VALUES ({', '.join(f'${i + 1}' for i in range(len(_COLUMNS)))}, 'quant:' || $1)"
    " ON CONFLICT (proposal_id) DO NOTHING"
)
UPDATE_STATUS = (
    "UPDATE parameter_proposals SET status = $2, reason_code = $3, reason = $4, ts_ns = $5"
    " WHERE proposal_id = $1 AND ts_ns <= $5"
)


def proposal_args(row: ProposalRow) -> list[Any]:
    return _args(row)


def proposal_from_record(record: Mapping[str, Any]) -> ProposalRow:
    values = {name: record[name] for name in _COLUMNS}
    values["changes"] = tuple(json.loads(record["changes"]))
    values["folds"] = tuple(json.loads(record["folds"]))
    return ProposalRow(**values)


def version_from_record(record: Mapping[str, Any]) -> ParamsVersion:
    return ParamsVersion(
        phase_id=cast(str, record["phase_id"]),
        version=cast(int, record["version"]),
        params_json=cast(str, record["params_json"]),
        previous_params_json=cast(str, record["previous_params_json"]),
        proposal_id=cast(str, record["proposal_id"]),
        action=cast(str, record["action"]),
        target=cast(str, record["target"]),
        ts_ns=cast(int, record["ts_ns"]),
    )


INSERT_VERSION = (
    "INSERT INTO parameter_versions"
    " (phase_id, version, params_json, previous_params_json, proposal_id, action, target, ts_ns)"
    " SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5, $6, $7"
    " FROM parameter_versions WHERE phase_id = $1 RETURNING *"
)
