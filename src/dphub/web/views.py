"""Charts for a dataset's page: the Data Package ``views`` its publisher declared (Vega-Lite specs,
or DataHub's ``simple`` graph specs), or a default one picked from a table's columns.

Every chart gets its rows from the datastore here, inline (at most ``CHART_ROWS``): a spec's own
``data.url`` is never followed, so a chart reads nothing but the dataset it belongs to.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from dphub.hub import Hub
from dphub.web.rows import table_rows

if TYPE_CHECKING:
    from dphub.web.showcase import ResourceView

CHART_ROWS = 1000
"""Rows a chart draws at most: the table's first ones (a line is drawn in its x column's order)."""
MAX_VIEWS = 5
TEMPORAL_TYPES = ("date", "datetime", "time")
TIME_NAMES = ("year", "date", "time", "month", "day", "period", "datetime", "timestamp")
NUMERIC_TYPES = ("integer", "number")


def chart_views(
    hub: Hub, descriptor: dict[str, Any], resources: list[ResourceView]
) -> list[dict[str, Any]]:
    """``[{title, spec}]``: Vega-Lite specs with their data inlined, ready to draw."""
    tabular = {r.name: r for r in resources if r.table is not None}
    tabular.update({str(r.index): r for r in resources if r.table is not None})
    if not tabular:
        return []
    declared = descriptor.get("views")
    views = []
    if isinstance(declared, list):
        for view in declared[:MAX_VIEWS]:
            drawn = _declared(hub, view, tabular, resources)
            if drawn is not None:
                views.append(drawn)
    if not views:
        first = next(r for r in resources if r.table is not None)
        default = _default(hub, first)
        if default is not None:
            views.append(default)
    return views


def _resource_of(
    view: dict[str, Any], tabular: dict[str, ResourceView], resources: list[ResourceView]
) -> ResourceView | None:
    named = view.get("resources") or view.get("resource")
    if isinstance(named, list) and named:
        named = named[0]
    if isinstance(named, dict):
        named = named.get("name")
    if named is None:
        return next((r for r in resources if r.table is not None), None)
    return tabular.get(str(named))


def _declared(
    hub: Hub, view: object, tabular: dict[str, ResourceView], resources: list[ResourceView]
) -> dict[str, Any] | None:
    if not isinstance(view, dict):
        return None
    resource = _resource_of(view, tabular, resources)
    spec = view.get("spec")
    if resource is None or not isinstance(spec, dict):
        return None
    kind = view.get("specType", "vega-lite")
    title = view.get("title") or view.get("name") or resource.name
    if kind == "simple":
        spec = _from_simple(spec, resource)
        if spec is None:
            return None
    elif kind != "vega-lite":
        return None
    drawn = {k: v for k, v in spec.items() if k not in ("data", "$schema", "datasets")}
    drawn["data"] = {"values": _rows(hub, resource)}
    drawn.setdefault("width", "container")
    return {"title": str(title), "resource": resource.name, "spec": drawn}


def _from_simple(spec: dict[str, Any], resource: ResourceView) -> dict[str, Any] | None:
    """DataHub's ``{"type": "line"|"bar", "group": x, "series": [y, ...]}`` as Vega-Lite."""
    group, series = spec.get("group"), spec.get("series")
    names = {str(f.get("name")) for f in resource.fields}
    if not isinstance(group, str) or not isinstance(series, list) or group not in names:
        return None
    ys = [s for s in series if isinstance(s, str) and s in names]
    if not ys:
        return None
    mark = "bar" if spec.get("type") == "bar" else "line"
    return {
        "mark": {"type": mark, "tooltip": True},
        "transform": [{"fold": [field_ref(y) for y in ys], "as": ["series", "value"]}],
        "encoding": {
            "x": _x_encoding(resource, group),
            "y": {"field": "value", "type": "quantitative", "title": None},
            "color": {"field": "series", "type": "nominal", "title": None},
        },
    }


def field_ref(name: str) -> str:
    """A column name as Vega-Lite's ``field`` reads it: ``.`` and brackets escaped, else they
    would mean nested access."""
    for special in ("\\", ".", "[", "]"):
        name = name.replace(special, "\\" + special)
    return name


def _types(resource: ResourceView) -> dict[str, str]:
    if resource.table is not None:
        return {c["name"]: c["type"] for c in resource.table.columns}
    return {str(f.get("name")): str(f.get("type", "string")) for f in resource.fields}


def _is_time(name: str, kind: str) -> bool:
    return kind in TEMPORAL_TYPES or (
        kind in (*NUMERIC_TYPES, "string", "year") and name.strip().lower() in TIME_NAMES
    )


def _x_encoding(resource: ResourceView, name: str) -> dict[str, Any]:
    kind = _types(resource).get(name, "string")
    if kind in TEMPORAL_TYPES:
        return {"field": field_ref(name), "title": name, "type": "temporal"}
    if kind in NUMERIC_TYPES:
        return {
            "field": field_ref(name),
            "title": name,
            "type": "quantitative",
            "axis": {"format": "d"},
            "scale": {"zero": False},
        }
    return {"field": field_ref(name), "title": name, "type": "ordinal"}


def _default(hub: Hub, resource: ResourceView) -> dict[str, Any] | None:
    """A line chart over a date or year column, else a bar chart of a label column, of the first
    numeric column; nothing when the table has no number to draw."""
    types = _types(resource)
    x = next((n for n, k in types.items() if _is_time(n, k)), None)
    measures = [n for n, k in types.items() if k in NUMERIC_TYPES and n != x and not _is_id(n)]
    # a measured number (a decimal) before a count, as counts are often codes
    y = next((n for n in measures if types[n] == "number"), measures[0] if measures else None)
    if y is None:
        return None
    if x is not None:
        mark, encoding_x, limit, used = "line", _x_encoding(resource, x), CHART_ROWS, [x, y]
    else:
        label = next((n for n, k in types.items() if k == "string"), None)
        if label is None:
            return None
        encoding_x = {"field": field_ref(label), "title": label, "type": "nominal", "sort": None}
        mark, limit, used = "bar", 50, [label, y]
    spec = {
        "mark": {"type": mark, "tooltip": True, **({"point": True} if mark == "line" else {})},
        "encoding": {
            "x": encoding_x,
            "y": {"field": field_ref(y), "title": y, "type": "quantitative"},
        },
        "data": {"values": _rows(hub, resource, limit=limit, columns=used)},
        "width": "container",
    }
    return {"title": f"{y} by {encoding_x['title']}", "resource": resource.name, "spec": spec}


def _is_id(name: str) -> bool:
    """A column that names rows rather than measuring them (``id``, ``station_id``, ``_id``)."""
    lowered = name.strip().lower()
    return lowered in ("id", "_id", "index", "row", "rownum") or lowered.endswith(("_id", " id"))


def _rows(
    hub: Hub,
    resource: ResourceView,
    *,
    limit: int = CHART_ROWS,
    columns: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The table's first rows (in storage order: a chart sorts what it draws), only ``columns``
    when the chart's spec names them all."""
    table = resource.table
    assert table is not None
    answer = table_rows(hub, table, limit=limit, columns=columns, ordered=False)
    names = [f.name for f in answer.fields]
    return [{n: _plain(v) for n, v in zip(names, row, strict=True)} for row in answer.rows]


def _plain(value: Any) -> Any:
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return str(value)
