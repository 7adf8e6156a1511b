"""The machine presets: one hardware description per .toml file here, named by its stem. A
module of its own so that qsim.plan can name them without importing qsim.hardware.spec, which
imports qsim.plan."""

from pathlib import Path

PRESET_DIR = Path(__file__).parent


def hardware_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))
