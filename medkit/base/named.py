"""Registries of named entries (backbones, 3-D checkpoints): one rule for adding, listing and looking up."""

from .errors import UnknownNameError

__all__ = ["NamedRegistry"]


class NamedRegistry:
    """Entries with a `.name`, keyed by it; a duplicate name is refused and an unknown one lists the known."""

    def __init__(self, kind: str):
        self.kind = kind  # "backbone", "checkpoint": what error messages call an entry
        self._entries: dict = {}

    def add(self, entry):
        """Add `entry` and return it; a second entry with the same name is refused."""
        if entry.name in self._entries:
            raise ValueError(f"A {self.kind} named {entry.name!r} is already registered.")
        self._entries[entry.name] = entry
        return entry

    def names(self) -> list[str]:
        """Return the registered names, sorted."""
        return sorted(self._entries)

    def get(self, name):
        """Return the entry named `name`, or raise an UnknownNameError listing the known names."""
        if name not in self._entries:
            raise UnknownNameError(f"Unknown {self.kind} {name!r}. Known {self.kind}s: {', '.join(self.names())}.")
        return self._entries[name]
