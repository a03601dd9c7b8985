"""The HSMS timers of SEMI E37, per tool in the line config (`address.timers`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class HsmsTimers(BaseModel):
    """The HSMS timers of one tool, seconds (E37 defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    t3: float = Field(default=45.0, gt=0, le=600, description="reply timeout")
    t5: float = Field(default=10.0, gt=0, le=600, description="connect separation / connect timeout")
    t6: float = Field(default=5.0, gt=0, le=600, description="control transaction timeout")
    t7: float = Field(default=10.0, gt=0, le=600, description="not-selected timeout")
    t8: float = Field(default=5.0, gt=0, le=120, description="inter-character timeout")
    linktest_s: float = Field(default=0.0, ge=0, le=3600, description="0: no periodic linktest")
    select_delay_s: float = Field(default=0.05, ge=0, le=5, description=(
        "pause between connecting and select.req: passive equipment built on secsgem drops a select that "
        "arrives before its accept has finished (it then rejects every message as not selected)"))
