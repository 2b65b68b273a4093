"""The web demo's routes about training (the Learn page): start a run, read its status,
follow its events as server-sent events, and stop it. One run at a time; the runs
themselves are ``barenet.web.training``'s."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from barenet.web.reading import bad, json_body
from barenet.web.state import App, state_of
from barenet.web.training import TrainingRun, TrainSettings

__all__ = ["HEARTBEAT", "MAX_STREAMS", "POLL_SECONDS", "ROUTES"]

POLL_SECONDS = 0.1  #: how often an event stream looks for new training events
HEARTBEAT = 50  #: polls without news before the stream sends a comment line
MAX_STREAMS = 16  #: event streams open at once; each holds a connection while a run lasts


async def train_start(request: Request) -> Response:
    trainer = state_of(request).trainer
    settings = TrainSettings.from_json(await json_body(request))
    await run_in_threadpool(trainer.dataset, settings.dataset)  # here, or a 409 now
    run = trainer.start(settings)
    return JSONResponse({"run": run.id, "settings": settings.to_json()}, status_code=202)


async def train_status(request: Request) -> Response:
    run = state_of(request).trainer.current
    if run is None:
        return JSONResponse({"run": None, "status": "idle"})
    return JSONResponse(
        {
            "run": run.id,
            "status": run.status,
            "settings": run.settings.to_json(),
            "events": len(run.events),
        }
    )


async def train_stop(request: Request) -> Response:
    run = state_of(request).trainer.current
    if run is None:
        return JSONResponse({"run": None, "status": "idle"})
    run.stop()
    await run_in_threadpool(run.join, 10.0)
    return JSONResponse({"run": run.id, "status": run.status})


async def train_events(request: Request) -> Response:
    run = state_of(request).trainer.current
    if run is None:
        raise bad("no training run has been started", 404)
    app = state_of(request)
    if app.streams >= MAX_STREAMS:
        raise bad(f"{MAX_STREAMS} event streams are open already; close one and retry", 429)
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(_stream(run, app), media_type="text/event-stream", headers=headers)


async def _stream(run: TrainingRun, app: App) -> AsyncIterator[str]:
    """``run``'s events as server-sent events, from the first, until it ends (or the
    client goes away); the stream leaves ``app``'s count when it closes."""
    seen, quiet = 0, 0
    app.streams += 1  # counted while the body is sent: a stream never started never counts
    try:
        while True:
            running = run.running
            events = run.events_from(seen)
            for event in events:
                yield f"id: {seen}\ndata: {json.dumps(event)}\n\n"
                seen += 1
            if not running and not events:
                return
            quiet = 0 if events else quiet + 1
            if quiet == HEARTBEAT:  # a comment line: keeps proxies and browsers patient
                yield ": still training\n\n"
                quiet = 0
            await asyncio.sleep(POLL_SECONDS)
    finally:
        app.streams -= 1


ROUTES = [
    Route("/api/train", train_start, methods=["POST"]),
    Route("/api/train", train_status, methods=["GET"]),
    Route("/api/train/stop", train_stop, methods=["POST"]),
    Route("/api/train/events", train_events),
]
