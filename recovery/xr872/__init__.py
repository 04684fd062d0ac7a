"""The XR872 engine (XRadio boot ROM UART protocol).

Imports flow one way: ``cli`` -> ``operations`` (info, dump, write, clone) ->
``driver`` (the session: entering the ROM, sync, baud, chunked flash reads and
writes) -> ``brom`` (frames and checksums) -> ``recovery.transport``. ``image``
reads the AWIH image chain and the unit's own data.
"""
