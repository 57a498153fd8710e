"""The base of every typed config: unknown keys are errors, assignments are validated, no inf/nan.

Its own module so the recipe and the method configs (:mod:`adapt.methods`) share it
without importing each other.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
