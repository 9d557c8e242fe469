"""Every model module of Haven, imported so the metadata is complete.

Migrations (migrations/env.py), the app factory, the test suite and the benchmarks import
this module. It lives in the last area of the import chain (core <- casework <- referrals
<- reports), so naming every table here makes no lower area depend on a higher one. A new
model module is added to the import and to ``__all__``.
"""

from casework.all_models import casefile, duplicates, models, reference, supervision, timeline
from core import (
    audit,
    crypto,
    notifications,
    working_days,  # public holidays (the working-day calendar)
)
from core import models as core_models
from referrals import (
    decisions,
    directory,
    reconsiderations,  # reconsideration of status decisions
)
from referrals import models as referral_models
from reports import jobs as report_jobs  # report jobs and their finished files
from reports import population as report_population  # population figures (rates)
from reports import statistics as report_statistics  # the pre-aggregated statistics

__all__ = [
    "audit",
    "casefile",
    "core_models",
    "crypto",
    "decisions",
    "directory",
    "duplicates",
    "models",
    "notifications",
    "reconsiderations",
    "reference",
    "referral_models",
    "report_jobs",
    "report_population",
    "report_statistics",
    "supervision",
    "timeline",
    "working_days",
]
