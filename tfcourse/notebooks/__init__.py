"""Execute, normalise, lint and release the course's notebooks (a developer's toolchain).

Introduced in `00_welcome_and_setup`; `tfcourse run` and `tfcourse dev` call it.
"""

from tfcourse.notebooks._execute import RunResult, execute
from tfcourse.notebooks._normalise import normalise, strip_tf_noise
from tfcourse.notebooks._release import release, strip_solutions
from tfcourse.notebooks._structure import execution_problems, structure_problems

__all__ = [
    "RunResult",
    "execute",
    "execution_problems",
    "normalise",
    "release",
    "strip_solutions",
    "strip_tf_noise",
    "structure_problems",
]
