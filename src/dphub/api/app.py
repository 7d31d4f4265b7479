"""The ASGI app: every dphub service mounted in one FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import dphub
from dphub import web
from dphub.api import cors, errors, openapi
from dphub.api.limits import LimitsMiddleware
from dphub.api.metrics import HubMetrics, MetricsMiddleware
from dphub.api.requestid import RequestIdMiddleware
from dphub.api.routes import (
    admin,
    auth,
    ckan,
    datahub,
    dataproxy,
    datastore,
    events,
    files,
    health,
    history,
    keys,
    lifecycle,
    multipart,
    oidc,
    packages,
    publish,
    publishers,
    root,
    search,
    storage,
    trusted,
    wellknown,
)
from dphub.api.security_headers import SecurityHeadersMiddleware
from dphub.config import Settings, load_settings
from dphub.hub import Hub, open_hub


def create_app(settings: Settings, *, hub: Hub | None = None, migrate: bool = True) -> FastAPI:
    """Build the app; the hub (database, bitstore) opens when the app starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = hub or open_hub(settings, migrate=migrate)
        app.state.hub = opened
        metrics.jobs.sessions = opened.sessions
        try:
            yield
        finally:
            if hub is None:
                opened.close()

    app = FastAPI(
        title="dphub",
        version=dphub.__version__,
        summary="A hub for Frictionless Data Packages: publish, store, validate and serve data.",
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    errors.install(app)
    openapi.install(app)
    cors.install(app, settings)
    metrics = HubMetrics()
    app.state.metrics = metrics
    # The last added runs first: an id for the request, the headers every answer carries, then
    # its metrics, counting the requests the limits refuse too.
    app.add_middleware(LimitsMiddleware, settings=settings)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(root.router)
    app.include_router(health.router)
    app.include_router(datahub.router)
    for router in web.first_routers:
        app.include_router(router)
    app.include_router(auth.router)
    app.include_router(keys.router)
    app.include_router(oidc.router)
    app.include_router(trusted.router)
    app.include_router(wellknown.router)
    app.include_router(admin.router)
    app.include_router(publish.router)
    app.include_router(multipart.router)
    app.include_router(packages.router)
    app.include_router(history.router)
    app.include_router(publishers.router)
    app.include_router(lifecycle.router)
    app.include_router(storage.router)
    app.include_router(events.router)
    app.include_router(search.router)
    app.include_router(datastore.router)
    app.include_router(dataproxy.router)
    app.include_router(ckan.router)
    app.include_router(files.router)
    for router in web.last_routers:
        app.include_router(router)
    return app


def app_from_environment() -> FastAPI:
    """The app of one of several worker processes: settings from ``DPHUB_*``, schema already
    migrated by the process that started them."""
    return create_app(load_settings(), migrate=False)
