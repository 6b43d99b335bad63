"""One dashboard list page's state as URL query parameters: its filters and search, the
column it is sorted by and the direction, the page and its size. Templates build every link
of the page (sortable column headers, previous/next, the page size) from a :class:`ListView`,
so a link changes one thing and keeps the rest, and any view can be bookmarked or shared.

The lists themselves page, sort and search in the database (the admin API's operations);
this only names what the page asks for. Dates are UTC: the page's ``datetime-local`` inputs
(no zone) are taken as UTC (:func:`utc_from_input`) and shown back so (:func:`input_time`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
MAX_OFFSET = 1_000_000_000  # the API's bound on ``offset``


def page_size(text: str | None) -> int:
    """The page size asked for, if it is one of :data:`PAGE_SIZES`, else the default."""
    try:
        size = int(text or "")
    except ValueError:
        return DEFAULT_PAGE_SIZE
    return size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE


_HAS_ZONE = re.compile(r"(?:[Zz]|[+-]\d{2}:\d{2})$")


def utc_from_input(value: str) -> str | None:
    """A ``datetime-local`` input (taken as UTC) or an ISO date-time, as ISO 8601 UTC."""
    value = value.strip()
    if not value:
        return None
    if _HAS_ZONE.search(value):
        return value
    if len(value) == 16:  # YYYY-MM-DDTHH:MM
        value += ":00"
    return value + "Z"


def input_time(value: str | None) -> str:
    """A ``from``/``to`` of the URL as a ``datetime-local`` input shows it (UTC, no zone):
    a link may carry ``2027-01-01T00:00:00Z`` where the input holds ``2027-01-01T00:00``."""
    if not value:
        return ""
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return value
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M" + (":%S" if parsed.second else ""))


@dataclass
class ListView:
    """What a list page shows: ``args`` are its query parameters as given (filters, ``q``,
    ``sort``, ``order``; without the page), ``sort``/``order`` what is in effect."""

    path: str
    args: dict[str, str]
    sort: str
    order: str
    page: int = 0
    limit: int = DEFAULT_PAGE_SIZE
    total: int = 0
    capped: bool = False
    shown: int = 0
    defaults: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_request(
        cls,
        path: str,
        request_args: Mapping[str, str],
        names: Sequence[str],
        *,
        sort: str,
        order: str,
    ) -> ListView:
        """The view asked for by ``request_args`` among the parameter ``names`` (empty ones
        left out); ``sort`` and ``order`` are the list's defaults."""
        args = {n: request_args[n].strip() for n in names if (request_args.get(n) or "").strip()}
        limit = page_size(request_args.get("limit"))
        try:
            page = min(max(0, int(request_args.get("page") or 0)), MAX_OFFSET // limit)
        except ValueError:
            page = 0
        return cls(
            path=path,
            args=args,
            sort=args.get("sort", sort),
            order=args.get("order", order),
            page=page,
            limit=limit,
            defaults={"sort": sort, "order": order},
        )

    def showing(self, listed: Mapping[str, Any]) -> ListView:
        """This view with the API's answer's counts."""
        self.total = int(listed["total"])
        self.capped = bool(listed.get("totalCapped"))
        self.shown = len(listed["items"])
        return self

    @property
    def offset(self) -> int:
        return self.page * self.limit

    @property
    def full(self) -> bool:
        """The page shows as many rows as it can: something new would not fit on it."""
        return self.shown >= self.limit

    def url(self, **changes: Any) -> str:
        """The page's URL with ``changes`` (None removes a parameter); page 0 and the default
        page size are left out."""
        values: dict[str, Any] = {**self.args, "page": self.page, "limit": self.limit}
        values.update(changes)
        if values.get("limit") == DEFAULT_PAGE_SIZE:
            values.pop("limit")
        kept = {k: v for k, v in values.items() if v is not None and v != "" and v != 0}
        if "page" in kept and kept["page"] == 0:
            kept.pop("page")
        return self.path + ("?" + urlencode(kept) if kept else "")

    def sort_url(self, column: str) -> str:
        """Sorted by ``column``: the other way round when it already is, else the list's
        default direction; back to the first page."""
        if column == self.sort:
            order = "asc" if self.order == "desc" else "desc"
        else:
            order = self.defaults.get("order", "asc")
        return self.url(sort=column, order=order, page=None)

    def aria_sort(self, column: str) -> str:
        if column != self.sort:
            return "none"
        return "descending" if self.order == "desc" else "ascending"

    @property
    def has_previous(self) -> bool:
        return self.page > 0

    @property
    def has_next(self) -> bool:
        return self.offset + self.shown < self.total or (self.capped and self.full)

    @property
    def first_shown(self) -> int:
        return self.offset + 1 if self.shown else 0

    @property
    def last_shown(self) -> int:
        return self.offset + self.shown
