"""What the web demo's routes share: the served networks, by name, and the training runs
(the network the latest Learn-page run trained is served too)."""

from __future__ import annotations

from typing import Any, cast

from starlette.requests import Request

from barenet.errors import ArgumentError
from barenet.web.served import Served
from barenet.web.training import Trainer

__all__ = ["App", "state_of"]


class App:
    """The state behind the routes: the served networks and the training runs."""

    def __init__(self, served: list[Served], trainer: Trainer) -> None:
        self.served = {s.name: s for s in served}
        self.trainer = trainer
        self.learned: str | None = None  # the name the latest trained network is served by
        self._learned_run = 0
        self.streams = 0  # event streams open now (see train_routes.MAX_STREAMS)

    def take_learned(self) -> None:
        """Serve the network the latest finished Learn-page run trained, in memory, as
        ``learned-DATASET-KIND`` (in place of an earlier one)."""
        run = self.trainer.current
        if run is None or run.model is None or run.id == self._learned_run:
            return
        self._learned_run = run.id
        if self.learned is not None:
            del self.served[self.learned]
        name = f"learned-{run.settings.dataset}-{run.settings.kind}"
        self.served[name] = Served.check(name, run.model)
        self.learned = name

    def pick(self, name: Any) -> Served:
        """The served network called ``name``; the first one when ``name`` is None."""
        self.take_learned()
        if name is None:
            return next(iter(self.served.values()))
        if not isinstance(name, str) or name not in self.served:
            names = ", ".join(self.served)
            raise ArgumentError(f"model must be one of {names}; got {name!r}")
        return self.served[name]


def state_of(request: Request) -> App:
    """The ``App`` of the application ``request`` came to (``create_app`` keeps it in
    ``app.state.barenet``)."""
    return cast(App, request.app.state.barenet)
