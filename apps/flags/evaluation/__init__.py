"""flagd flag evaluation, compiled: agrees with openfeature-flagd-core 2.0.0 (see engine.py)."""

from .engine import (
    CompiledFlag,
    FlagdParseError,
    Resolution,
    compile_flag,
    compile_flag_set,
    evaluate,
)
from .jsonlogic import (
    MAX_REGEX_LENGTH,
    PORTAL_ONLY_OPERATORS,
    compile_logic,
    compile_targeting,
    operators_used,
)

__all__ = [
    "MAX_REGEX_LENGTH",
    "PORTAL_ONLY_OPERATORS",
    "CompiledFlag",
    "FlagdParseError",
    "Resolution",
    "compile_flag",
    "compile_flag_set",
    "compile_logic",
    "compile_targeting",
    "evaluate",
    "operators_used",
]
