"""Shipped YAML recipes, one folder per stage (`data/`, `sft/`, `rl/`). Each file opens with a comment giving the
command that runs it. A recipe is named by its path or by `STAGE/NAME` / `NAME` (what `rlvr ls` shows)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parent


def shipped() -> list[Path]:
    return sorted(ROOT.glob("*/*.yaml"))


def find_recipe(name: str, stage: str | None = None) -> Path:
    """A recipe file: an existing path, else a shipped recipe `STAGE/NAME` or `NAME` (in `stage` first)."""
    path = Path(name)
    if path.exists():
        return path
    stem = name.removesuffix(".yaml")
    # STAGE/NAME anywhere; a bare NAME in the command's own stage only (never an SFT preset read as an RL config)
    candidates = [ROOT / f"{stem}.yaml"] if "/" in stem else []
    if "/" not in stem:
        candidates += [ROOT / stage / f"{stem}.yaml"] if stage else sorted(ROOT.glob(f"*/{stem}.yaml"))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    known = ", ".join(f"{p.parent.name}/{p.stem}" for p in shipped())
    raise FileNotFoundError(f"{name}: no such recipe file or shipped recipe (shipped: {known})")


def command_line(path: Path) -> str:
    """The command a recipe opens with (its first comment line, without '#')."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""
