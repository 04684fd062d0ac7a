"""The W90P745 engine (Winbond boot loader console, Xmodem).

Imports flow one way: ``cli`` -> ``operations`` (info, dump, restore) ->
``driver`` (the loader's console: attach, echo-checked commands, ``d`` pages,
``ls``, FX with the Xmodem sender of ``recovery.xmodem``) -> ``recovery.transport``.
``parsers`` reads ``d`` pages, ``ls -al`` and the banner; ``dumpdir`` keeps the
dump directory and its manifest.
"""
