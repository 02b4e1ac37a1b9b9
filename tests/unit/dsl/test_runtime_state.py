"""The execution state: JSON round trips, independence of copies, frame cleanup."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from workflow_orchestrator.dsl.runtime import ExecutionState

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)


def _state(**fields: Any) -> ExecutionState:
    return ExecutionState(instance_id="i-1", namespace="ns", name="wf", version="1.0.0", **fields)


@given(data=JSON, context=JSON)
def test_json_round_trip(data: Any, context: Any) -> None:
    """to_json survives json.dumps/loads and from_json restores an equal state."""
    state = _state(input=data, context=context, frames={"/do": {"next": 1, "data": data}})
    text = json.dumps(state.to_json())
    assert ExecutionState.from_json(json.loads(text)).to_json() == state.to_json()


def test_snapshot_is_independent_of_later_changes() -> None:
    """Changing frames after to_json does not change the snapshot."""
    state = _state(frames={"/do": {"next": 0}})
    snapshot = state.to_json()
    state.frames["/do"]["next"] = 5
    state.frames["/do/0/x"] = {}
    assert snapshot["frames"] == {"/do": {"next": 0}}


def test_drop_frames_removes_a_key_and_its_descendants_only() -> None:
    """Completing /do/0/a drops its nested frames but not /do/0/ab or the parent list."""
    state = _state(
        frames={
            "/do": {},
            "/do/0/a": {},
            "/do/0/a/do": {},
            "/do/0/a/!timeout": {},
            "/do/0/ab": {},
        }
    )
    state.drop_frames("/do/0/a")
    assert sorted(state.frames) == ["/do", "/do/0/ab"]
