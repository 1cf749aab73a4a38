"""Running the course: profiles, the lessons' metrics report, the papermill runner, instructor tools, exercise checks.

`profiles`, `report` and `check` are used as modules (`from medkit.course import profiles, report`); `viz` (the
lessons' plots) loads on first use, so `medkit.course.viz.unet_diagram(...)` works after `import medkit`.
"""

from ..base import lazy_submodules
from .course import (
    SOLUTION_TAG,
    clean_notebooks,
    declared_parameters,
    parse_value,
    run_course,
    select_lessons,
    strip_outputs,
    student_copies,
    summary_table,
)
from .notebooks import DEFAULT_KERNEL, check_kernel, kernel_names, lesson_paths, notebooks_dir, run_notebook

__all__ = [
    "run_course", "select_lessons", "parse_value", "declared_parameters", "summary_table", "strip_outputs",
    "clean_notebooks", "student_copies", "SOLUTION_TAG",
    "notebooks_dir", "lesson_paths", "kernel_names", "check_kernel", "run_notebook", "DEFAULT_KERNEL",
]


__getattr__ = lazy_submodules(__name__)
