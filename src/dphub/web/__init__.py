"""The web pages: find, read, preview and chart datasets, follow processing, manage access.

Server-rendered templates over the same services the API uses (so the same permission checks),
with a little JavaScript for what cannot work without it: live processing updates and charts.
"""

from __future__ import annotations

from dphub.web import account, assets, browse, dataset

first_routers = (assets.router, account.router, browse.router)
"""Mounted before the API's file routes (``/{owner}/{name}/...`` would take ``/static/...``)."""
last_routers = (dataset.router,)
"""Mounted after every other route: ``/{owner}/{name}/...`` patterns of the pages."""
