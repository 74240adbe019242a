"""Tasks: what the training engine runs, each one module registered by name.

* ``"fuse"`` (:mod:`hyperleaf.tasks.fuse`): SHIP (+ LEAF) infrared-visible fusion;
* ``"segment"`` (:mod:`hyperleaf.tasks.segment`): LEAFSegNet on the synthetic two-modality set;
* ``"pansharpen"`` (:mod:`hyperleaf.tasks.pansharpen`): SHIP (+ LEAF) on PAN + MS data.

:class:`Task` is the interface (datasets, objective, loss, evaluate, artifacts),
:func:`register_task` adds one, :func:`get_task` looks one up. Tasks import models, losses,
metrics, data and nn; never the engine (``hyperleaf.train``) or the CLI.
"""

from hyperleaf.tasks.base import (
    Task,
    TaskKey,
    get_task,
    list_tasks,
    register_task,
    task_key,
    unregister_task,
)

__all__ = ["Task", "TaskKey", "task_key", "register_task", "unregister_task", "get_task",
           "list_tasks"]
