"""U-Boot 1.1.4's environment: flash storage with a CRC32 header, and its editing rules.

Sources: U-Boot 1.1.4 ``common/env_flash.c``, ``common/env_common.c``, ``common/cmd_nvedit.c``.

Storage (common/env_flash.c, env_common.c): ``crc32`` (little-endian, zlib
CRC of the data area) followed by ``CFG_ENV_SIZE - 4`` bytes of ``name=value\\0``
strings ending with an extra ``\\0``. A bad CRC at power-on gives
``*** Warning - bad CRC, using default environment`` and the defaults.
``setenv`` of an existing variable deletes it and appends the new value at the
end (so ``printenv`` shows it last); ``ethaddr`` cannot be overwritten once set.
CFG_ENV_SIZE is the variant's (:class:`~emulators.hi3511.profile.Variant`).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from emulators.hi3511 import profile


@dataclass
class Environment:
    vars: dict[str, str] = field(default_factory=dict)
    from_flash: bool = False
    size: int = profile.UPSTREAM.env_size

    @classmethod
    def defaults(cls, variant: profile.Variant = profile.UPSTREAM) -> Environment:
        env = cls(dict(profile.DEFAULT_ENV), size=variant.env_size)
        env.vars["bootdelay"] = str(variant.config_bootdelay)  # default_environment
        return env

    @classmethod
    def decode(cls, blob: bytes, size: int = profile.UPSTREAM.env_size) -> Environment | None:
        """The environment stored in ``blob``, or None when its CRC is bad."""
        (crc,) = struct.unpack_from("<I", blob, 0)
        data = blob[4:size]
        if zlib.crc32(data) != crc:
            return None
        env = cls(from_flash=True, size=size)
        for item in data.split(b"\0"):
            if not item:
                break
            name, _, value = item.partition(b"=")
            env.vars[name.decode("latin-1")] = value.decode("latin-1")
        return env

    def encode(self) -> bytes:
        body = b"".join(f"{k}={v}".encode("latin-1") + b"\0" for k, v in self.vars.items())
        body += b"\0"
        size = self.size - 4
        if len(body) > size:
            raise ValueError("environment overflow")
        body += b"\0" * (size - len(body))
        return struct.pack("<I", zlib.crc32(body)) + body

    def used(self) -> int:
        """Bytes used, as printenv reports them: the offset of the final terminator."""
        return sum(len(k) + len(v) + 2 for k, v in self.vars.items())

    def get(self, name: str) -> str | None:
        return self.vars.get(name)

    def set(self, name: str, value: str | None) -> None:
        self.vars.pop(name, None)
        if value is not None:
            self.vars[name] = value
