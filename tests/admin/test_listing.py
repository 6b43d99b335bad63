"""A list page's URL state (:class:`voltaro.admin.listing.ListView`), without a server."""

from __future__ import annotations

import pytest

from voltaro.admin.listing import DEFAULT_PAGE_SIZE, ListView, page_size
from voltaro.store.admin_queries import Order, SortKey, like_pattern, order_by


def view(**args: str) -> ListView:
    return ListView.from_request(
        "/transactions", args, ["idTag", "q", "sort", "order"], sort="transactionId", order="desc"
    )


def test_links_change_one_thing_and_keep_the_rest() -> None:
    v = view(idTag="T1", q="", page="2", limit="25", other="x")
    assert v.args == {"idTag": "T1"}  # empty and unknown parameters left out
    assert (v.page, v.limit, v.offset, v.sort, v.order) == (2, 25, 50, "transactionId", "desc")
    assert v.url(page=3) == "/transactions?idTag=T1&page=3&limit=25"
    assert v.url(page=0) == "/transactions?idTag=T1&limit=25"
    # the sorted column turns round; another starts in the list's default direction
    assert (
        v.sort_url("transactionId")
        == "/transactions?idTag=T1&limit=25&sort=transactionId&order=asc"
    )
    assert v.sort_url("idTag") == "/transactions?idTag=T1&limit=25&sort=idTag&order=desc"
    assert (v.aria_sort("transactionId"), v.aria_sort("idTag")) == ("descending", "none")


def test_pages_and_sizes_are_bounded() -> None:
    assert page_size("37") == page_size("abc") == page_size(None) == DEFAULT_PAGE_SIZE
    assert view(page="-4").page == 0
    assert view(page="9" * 40).offset <= 1_000_000_000
    assert view(page="x").page == 0
    shown = view(page="1", limit="25").showing({"items": [{}] * 25, "total": 60})
    assert (shown.first_shown, shown.last_shown, shown.has_previous, shown.has_next) == (
        26,
        50,
        True,
        True,
    )
    last = view(page="2", limit="25").showing({"items": [{}] * 10, "total": 60})
    assert (last.has_next, last.full) == (False, False)
    capped = view(limit="25").showing({"items": [{}] * 25, "total": 100_000, "totalCapped": True})
    assert capped.has_next and capped.capped


def test_search_patterns_and_orders() -> None:
    assert like_pattern("a_b%c\\") == "%a\\_b\\%c\\\\%"
    keys = {"id": SortKey("id"), "seen": SortKey("last_seen", nullable=True)}
    assert order_by(keys, Order("seen", descending=True), "id") == (
        "last_seen DESC NULLS LAST, id DESC"
    )
    assert order_by(keys, Order("id"), "id") == "id ASC"
    with pytest.raises(ValueError, match="allowed: id, seen"):
        order_by(keys, Order("password"), "id")
