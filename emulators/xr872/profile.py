"""Fixed facts of the XF16 board: XRadio XR872 SoC with a 1 MiB SPI NOR.

Sources and assumptions (see docs/xr872-emulator.md for the full story):

* Flash: a 1 MiB (8 Mbit) SPI NOR with 4 KiB sectors, 64 KiB blocks and
  256-byte pages that wrap (REFERENCE.md "Board XF16"). JEDEC id ``C7 40 14``,
  one of the two ids REFERENCE.md lists as seen on XF16 units (capacity code
  0x14 = 2**20 bytes; BK7231GUIFlashTool ``XRBaseFlasher.cs`` derives the size
  from the third byte). The part behind the id is not named by any source:
  the timings are assumptions (typical 1 MiB SPI NOR datasheet values: 4 KiB
  sector erase 45 ms, 64 KiB block 250 ms, chip erase 3 s, page program 0.7 ms).
* Memory map (XR872 SDK image.cfg: boot loads to 0x00268000 with entry
  0x00268101, the app to 0x00201000 with entry 0x00201101): SRAM is modelled
  as 0x00200000-0x0026FFFF (448 KiB, assumption); the mask ROM as
  0x00000000-0x00027FFF (BK7231GUIFlashTool ``XRRomFlasherBase.cs``
  ``XR872_ROM_SIZE = 0x28000``). The eFuse controller's registers are at
  0x40043C40 (CTRL), 0x40043C60 (READ_VALUE) and 0x40043C90 (TIMING)
  (``XRRomFlasherBase.cs``).
  XR809 images load into the XR809's SRAM at 0x00010000-0x0006FFFF (PhoenixMC
  uploads its XR809 RAM stub to 0x00010000 and jumps to 0x00010101), which on
  an XR872 is ROM: that is how the XR872 ROM refuses an XR809 image.
* BROM version 2: PhoenixMC's XR872 path treats ROMs reporting version 2+ as
  not needing a RAM loader (XR809 reports 1, XR806 reports 3).
* The flash layout follows the skylark SDK's ``project/image_cfg/image.cfg``
  (boot 0 K, app 32 K, app_xip 75 K, wlan_bl 980 K, wlan_fw 985 K, wlan_sdd
  1017 K, image max_size 1020 K); sysinfo is the last 4 KiB (1020 K,
  ``prj_conf_opt.h`` ``PRJCONF_SYSINFO_ADDR``).
* The six UART rates the tools use (BK7231GUIFlashTool ``XR809Flasher.cs``
  ``SupportedBaudRates``; phoenixMC ``settings*.ini``): 9600, 115200, 921600,
  1000000, 1500000, 3000000.
"""

from __future__ import annotations

from emulators.flash import FlashGeometry

# -- flash ---------------------------------------------------------------
FLASH_SIZE = 1 << 20
FLASH_SECTOR = 0x1000
FLASH_PAGE = 256
JEDEC_ID = bytes([0xC7, 0x40, 0x14])  # seen on XF16 units (REFERENCE.md)
FLASH_NAME = "1 MiB SPI NOR (JEDEC C7 40 14)"

# Datasheet typical times (seconds)
ERASE_4K_TIME = 0.045
ERASE_32K_TIME = 0.150
ERASE_64K_TIME = 0.250
ERASE_CHIP_TIME = 3.0
PAGE_PROGRAM_TIME = 0.7e-3


def flash_geometry() -> FlashGeometry:
    """The 1 MiB SPI NOR: uniform 4 KiB sectors, 256-byte pages (program time per byte)."""
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
ROM_SIZE = 0x00028000
SRAM_BASE = 0x00200000
SRAM_SIZE = 0x00070000
SRAM_END = SRAM_BASE + SRAM_SIZE

XR809_SRAM_BASE = 0x00010000
XR809_SRAM_END = 0x00070000

# -- boot ROM --------------------------------------------------------------
ROM_BAUD = 115200
BROM_VERSION = 2
TOOL_BAUDS = (9600, 115200, 921600, 1_000_000, 1_500_000, 3_000_000)

EFUSE_CTRL = 0x40043C40
EFUSE_READ_VALUE = 0x40043C60
EFUSE_TIMING = 0x40043C90

# -- image layout (flash offsets) --------------------------------------------
BOOT_OFFSET = 0x00000
BOOT_MAX_LEN = 0x8000  # 32 KiB (image.cfg "max_len")
APP_OFFSET = 0x08000  # 32 K
APP_XIP_OFFSET = 0x12C00  # 75 K
WLAN_BL_OFFSET = 0xF5000  # 980 K
WLAN_FW_OFFSET = 0xF6400  # 985 K
WLAN_SDD_OFFSET = 0xFE400  # 1017 K
IMAGE_MAX_SIZE = 0xFF000  # 1020 K
SYSINFO_OFFSET = 0xFF000  # last 4 KiB sector
SYSINFO_SIZE = 0x1000

XR872_BOOT_LOAD = 0x00268000
XR872_BOOT_ENTRY = 0x00268101
XR872_APP_LOAD = 0x00201000
XR872_APP_ENTRY = 0x00201101
NO_LOAD = 0xFFFFFFFF  # image.cfg "sram_offs"/"ep" of app_xip and the wlan sections

XR809_BOOT_LOAD = 0x00010000
XR809_BOOT_ENTRY = 0x00010101
XR809_APP_LOAD = 0x00018000
XR809_APP_ENTRY = 0x00018101

# -- firmware ----------------------------------------------------------------------
FIRMWARE_VERSION = "V2.3.7"  # this model's label in the app section
SDK_VERSION = "1.2.1"  # REFERENCE.md: the stock firmware is SDK 1.2.x (patch level assumed)
SDK_BUILD = "Mar 18 2021 10:21:07"  # __DATE__ __TIME__ of the build (assumption)
CPU_CLOCK = 240_000_000  # REFERENCE.md: 240 MHz
HF_CLOCK = 40_000_000  # assumption (the SDK supports 24/26/40 MHz crystals)
