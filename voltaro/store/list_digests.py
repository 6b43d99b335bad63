"""The digest of a Local Authorization List (``{idTag: idTagInfo}``): what tells two lists
apart without reading them, and under which a list is stored (migration 0019). Voltaro
computes it here for the lists it wants chargers to hold and for the entries an update sets;
the SQL functions of migration 0018 compute the same from stored entries. Pure functions."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

DIGEST_MODULUS = 1 << 128
DIGEST_PREFIX = "sum:"  # the old form (before migration 0018) was 32 hex digits


INFO_KEYS = ("expiryDate", "parentIdTag", "status")  # the schema's idTagInfo, in byte order


def entry_hash(id_tag: str, info: Mapping[str, Any]) -> int:
    """One entry's share of its list's :func:`digest`: the first 16 bytes of the SHA-256 of
    the id tag and then, for each of :data:`INFO_KEYS` that ``info`` holds, the key and its
    value, each as a netstring (its length in UTF-8 bytes, ``:``, its text), as a
    big-endian number. (The schema allows no other key, and strings only.)

    The SQL function ``local_list_hashes`` (migration 0018) computes the same from the
    stored entries (a test checks they agree)."""
    parts = [id_tag.encode()]
    for key in INFO_KEYS:
        value = info.get(key)
        if value is not None:
            text = value if isinstance(value, str) else orjson.dumps(value).decode()
            parts += [key.encode(), text.encode()]
    data = b"".join(b"%d:%s" % (len(part), part) for part in parts)
    return int.from_bytes(hashlib.sha256(data).digest()[:16], "big")


def digest(entries: Mapping[str, Any]) -> str:
    """A short fingerprint of a list: equal lists, equal digests, whatever their order; lists
    that differ, different digests (but for a chance of 2^-128). The sum of the entries'
    :func:`entry_hash` modulo 2^128, so an update changes it by the entries it changed alone
    (in SQL: migration 0018's functions). Not a defence against tags made on purpose
    to collide: whoever can choose the tags can set any list anyway."""
    return f"{DIGEST_PREFIX}{hash_sum(entries)}"


def hash_sum(entries: Mapping[str, Any]) -> int:
    """The sum of ``entries``' :func:`entry_hash` modulo 2^128 (their :func:`digest`'s
    number): what they add to a list's digest."""
    return sum(entry_hash(id_tag, info) for id_tag, info in entries.items()) % DIGEST_MODULUS
