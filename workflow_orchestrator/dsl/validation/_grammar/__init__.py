"""The DSL 1.0.3 grammar, written as code: what the official schema accepts, and no more.

Small nodes (``_nodes``) compose into the DSL's objects: scalar forms (``_values``), reusable
policies (``_policies``), events (``_events``), calls (``_calls``), tasks (``_tasks``) and the
whole document (``_workflow``). ``structural_problems`` walks a document once and reports
every problem with its JSON pointer and a sentence saying what to change.
"""

from ._nodes import STRUCTURAL_RULES
from ._workflow import structural_problems

__all__ = ["STRUCTURAL_RULES", "structural_problems"]
