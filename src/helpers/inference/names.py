"""Output file names that never clash: one run writes one file per name, whatever its inputs
are called (a.jpg, a.png and a-2.jpg, or IMG_0001.jpg in two folders)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class OutputNames:
    """The names one output folder has given out; `claim` hands out a stem whose files are
    all free, compared without letter case, as macOS and Windows compare file names."""

    taken: set[str] = field(default_factory=set)

    def claim(self, stem: str, *suffixes: str) -> str:
        """stem, or stem-2, stem-3... the first for which every stem+suffix is still free;
        those names are taken from now on. Several suffixes keep twins together (a.jpg and
        a_gradcam.jpg)."""
        ends = suffixes or ("",)
        chosen, n = stem, 1
        while any(f"{chosen}{end}".casefold() in self.taken for end in ends):
            n += 1
            chosen = f"{stem}-{n}"
        self.taken.update(f"{chosen}{end}".casefold() for end in ends)
        return chosen
