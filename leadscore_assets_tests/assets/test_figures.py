"""Figures are rendered once: the report file, the MLflow artifact and the inline picture share the bytes."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from leadscore_assets.assets.common import figure_markdown, png_markdown, write_figures  # noqa: E402


class _Store:
    def __init__(self):
        self.logged = []

    def log_artifact(self, local_file, artifact_path):
        self.logged.append((local_file.read_bytes(), f"{artifact_path}/{local_file.name}"))


def test_each_figure_is_rendered_once_and_its_bytes_written_logged_and_embedded(tmp_path, monkeypatch):
    figures = {}
    for name in ("roc", "lift"):
        fig, ax = plt.subplots(figsize=(3, 2), dpi=50)
        ax.plot([0, 1], [0, 1])
        figures[name] = fig
    expected_md = figure_markdown(figures)
    renders = []
    original = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: renders.append(1) or original(self, *a, **k))
    store = _Store()

    pngs = write_figures(figures, tmp_path, store, "search")

    assert len(renders) == len(figures)
    assert store.logged == [(pngs[n], f"search/{n}.png") for n in figures]  # where log_figure put them
    assert all((tmp_path / f"{n}.png").read_bytes() == pngs[n] for n in figures)
    assert pngs["roc"].startswith(b"\x89PNG")
    assert png_markdown(pngs) == expected_md
    for fig in figures.values():
        plt.close(fig)
