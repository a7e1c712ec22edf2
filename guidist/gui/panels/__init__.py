"""The window's panels; each reacts to the controller's data and emits what the person asked."""

from .events import EventLogDock
from .jobs import JobsPanel
from .server_bar import ServerBar
from .submit import SubmitPanel
from .tasks import TasksPanel
from .totals import TotalsPanel
from .workers import WorkersPanel

__all__ = ["EventLogDock", "JobsPanel", "ServerBar", "SubmitPanel", "TasksPanel", "TotalsPanel",
           "WorkersPanel"]
