"""The OCPP 1.6 feature profiles Voltaro serves, one module each (see
:mod:`voltaro.central.profile` for what a profile declares).

To add one: write its module here exporting a :class:`~voltaro.central.profile.Profile`, add
it to :data:`PROFILES`, add its migration to ``voltaro/store/migrations/`` (named in the
profile's ``migrations``) and its tests. Nothing else names its actions.
"""

from __future__ import annotations

from voltaro.central.profile import Profile
from voltaro.central.profiles.core import CORE
from voltaro.central.profiles.firmware import FIRMWARE
from voltaro.central.profiles.local_list import LOCAL_LIST
from voltaro.central.profiles.remote_trigger import REMOTE_TRIGGER
from voltaro.central.profiles.reservation import RESERVATION

PROFILES: tuple[Profile, ...] = (CORE, FIRMWARE, REMOTE_TRIGGER, RESERVATION, LOCAL_LIST)

__all__ = ["PROFILES"]
