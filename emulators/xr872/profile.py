"""Fixed facts of the XF16 board: XRadio XR872 SoC with a 1 MiB SPI NOR.

Sources and assumptions (see docs/xr872-emulator.md for the full story):

* Flash: a 1 MiB (8 Mbit) SPI NOR with 4 KiB sectors, 32/64 KiB blocks and
  256-byte pages that wrap (REFERENCE.md "Board XF16"). We model a GigaDevice
  GD25Q80: JEDEC id ``C8 40 14`` (manufacturer 0xC8, memory type 0x40,
  capacity code 0x14 = 2**20 bytes). Timings are the typical values of the
  GD25Q80-class datasheets: 4 KiB sector erase 45 ms, 32 KiB block 150 ms,
  64 KiB block 250 ms, chip erase 3 s, page program 0.7 ms per 256 bytes.
* Memory map (XR872 SDK image.cfg: boot loads to 0x00268000 with entry
  0x00268101, the app to 0x00201000 with entry 0x00201101): SRAM is modelled
  as 0x00200000-0x0026FFFF (448 KiB); the mask ROM as 0x00000000-0x0001FFFF.
  XR809 images load into the XR809's SRAM at 0x00010000-0x0006FFFF (PhoenixMC
  uploads its XR809 RAM stub to 0x00010000 and jumps to 0x00010101), which on
  an XR872 is ROM: that is how the XR872 ROM refuses an XR809 image.
* BROM version 2: PhoenixMC's XR872 path treats ROMs reporting version 2+ as
  not needing a RAM loader (XR809 reports 1, XR806 reports 3).
* The flash layout follows the XR872 SDK image.cfg for a 1 MiB part (boot at
  0 K, app 32 K, app_xip 76 K, wlan_bl 980 K, wlan_fw 984 K, wlan_sdd 1018 K,
  image max 1020 K); the system-info sector is the last 4 KiB (1020 K).
"""

from __future__ import annotations

from emulators.flash import FlashGeometry

# -- flash ---------------------------------------------------------------
FLASH_SIZE = 1 << 20
FLASH_SECTOR = 0x1000
FLASH_PAGE = 256
JEDEC_ID = bytes([0xC8, 0x40, 0x14])  # GigaDevice GD25Q80: C8 40 14
FLASH_NAME = "GD25Q80 (1 MiB SPI NOR)"

# Datasheet typical times (seconds)
ERASE_4K_TIME = 0.045
ERASE_32K_TIME = 0.150
ERASE_64K_TIME = 0.250
ERASE_CHIP_TIME = 3.0
PAGE_PROGRAM_TIME = 0.7e-3


def flash_geometry() -> FlashGeometry:
    """The GD25Q80: uniform 4 KiB sectors, 256-byte pages (program time per byte)."""
    return FlashGeometry.uniform(
        FLASH_SIZE,
        FLASH_SECTOR,
        page_size=FLASH_PAGE,
        erase_time=ERASE_4K_TIME,
        program_time=PAGE_PROGRAM_TIME / FLASH_PAGE,
        name=FLASH_NAME,
    )


# -- memory map ------------------------------------------------------------
ROM_BASE = 0x00000000
ROM_SIZE = 0x00020000
SRAM_BASE = 0x00200000
SRAM_SIZE = 0x00070000
SRAM_END = SRAM_BASE + SRAM_SIZE

XR809_SRAM_BASE = 0x00010000
XR809_SRAM_END = 0x00070000

# -- boot ROM --------------------------------------------------------------
ROM_BAUD = 115200
BROM_VERSION = 2
MAX_BAUD = 3_000_000
MIN_BAUD = 9600

# -- image layout (flash offsets) --------------------------------------------
BOOT_OFFSET = 0x00000
BOOT_MAX_LEN = 0x8000  # 32 KiB (image.cfg "max_len")
APP_OFFSET = 0x08000  # 32 K
APP_XIP_OFFSET = 0x13000  # 76 K
WLAN_BL_OFFSET = 0xF5000  # 980 K
WLAN_FW_OFFSET = 0xF6000  # 984 K
WLAN_SDD_OFFSET = 0xFE800  # 1018 K
IMAGE_MAX_SIZE = 0xFF000  # 1020 K
SYSINFO_OFFSET = 0xFF000  # last 4 KiB sector
SYSINFO_SIZE = 0x1000

XR872_BOOT_LOAD = 0x00268000
XR872_BOOT_ENTRY = 0x00268101
XR872_APP_LOAD = 0x00201000
XR872_APP_ENTRY = 0x00201101
XIP_BASE = 0x00400000  # flash XIP window: app_xip is linked at XIP_BASE + flash offset

XR809_BOOT_LOAD = 0x00010000
XR809_BOOT_ENTRY = 0x00010101
XR809_APP_LOAD = 0x00018000
XR809_APP_ENTRY = 0x00018101

# -- application console ------------------------------------------------------
LOGIN_USER = "admin"
LOGIN_PASSWORD = "xf16cam"
FIRMWARE_VERSION = "V2.3.7"
SDK_VERSION = "v1.2.1"
