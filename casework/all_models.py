"""Every model module of the casework area, imported so the metadata is complete.

Migrations (migrations/env.py) and the test suite import this module; a new model module
adds its import line here.
"""

import casework.models  # noqa: F401
import casework.timeline  # noqa: F401
