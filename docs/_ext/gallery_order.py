"""The order of the examples gallery: the order in which to read it."""

from pathlib import Path

READING_ORDER = [
    "plot_quick_start.py",
    "plot_grid_search.py",
    "plot_learning_curves.py",
    "plot_implicit_recommend.py",
    "plot_sequential.py",
    "plot_side_features_cold_start.py",
    "plot_architectures.py",
    "plot_save_load.py",
]


class ReadingOrder:
    """Sort key of sphinx-gallery's ``within_subsection_order``; examples not
    listed come last, by name."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        name = Path(filename).name
        position = READING_ORDER.index(name) if name in READING_ORDER else None
        return (0, position, "") if position is not None else (1, 0, name)
