"""CKAN's Action API (version 3), its read side, spoken over dphub's own services: package search
is :mod:`dphub.findability`'s, reading a package is :mod:`dphub.api.readers`', the datastore actions
are :mod:`dphub.api.tables`', and every permission is decided by :mod:`dphub.auth.permissions`
through them. What is here only reads CKAN's parameters and writes CKAN's shapes.

Names. A CKAN dataset name is unique across the site and uses lowercase letters, digits, ``-`` and
``_``; a dphub package is ``owner/name``, where both may also hold ``.``. The CKAN name is
``<owner>--<name>`` with each part written so that the first ``--`` always separates them: ``_``
becomes ``__``, ``.`` becomes ``_d``, and a ``-`` that follows another ``-`` or ends the part becomes
``_h``. So ``alice/gdp`` is ``alice--gdp`` and ``acme/world_bank.v2`` is ``acme--world__bank_dv2``;
every package has exactly one CKAN name and every CKAN name at most one package. A dataset's ``id``
is its name, and ``owner/name`` is accepted wherever a dataset id is. A resource's id is the
datastore's resource id, ``<owner>/<name>/<resource>``, so ``datastore_search`` takes the id that
``package_show`` gives. Organizations are dphub organizations under their own names; a package of
a user has no organization.

Visibility follows dphub's: ``package_list`` lists published packages, as CKAN lists public
datasets; ``package_search`` finds published packages, and with ``include_private`` also those the
caller holds a role on (unlisted and private ones); reading a package or a table the caller may not
read is *not found*, never a refusal that would reveal it.

Failures are answered as CKAN answers them (:mod:`._envelope`), so that CKAN's clients raise their
own ``NotFound``, ``NotAuthorized``, ``ValidationError`` and ``SearchQueryError``.
"""

from __future__ import annotations

from dphub.compat.ckan._actions import ACTIONS, call, failure
from dphub.compat.ckan._envelope import API_VERSION, bad_request, help_url, success
from dphub.compat.ckan._names import ckan_name, package_of, resource_id
from dphub.compat.ckan._search import parse_fq

__all__ = [
    "ACTIONS",
    "API_VERSION",
    "bad_request",
    "call",
    "ckan_name",
    "failure",
    "help_url",
    "package_of",
    "parse_fq",
    "resource_id",
    "success",
]
