"""The explorer's ipywidgets front-end (JupyterLab, Colab): wires controls to :meth:`Explorer.explore`.

Controls: report statements (pick several from the cohort's statements, or type them, ``|``-separated), age,
sex, heart rate, seed, guidance scale; with a twin model (:func:`diffusets_core.models.twin.is_twin`) also a
Reference dropdown (None, or a test record of the twin run: its id and report); a Generate button; Save WFDB /
Save PNG buttons. Output: the ECG on standard paper (with the reference ECG beside it when one was chosen), the
measurements, the interpreter's reading and whether it names the requested classes, and the real training ECG
with the closest report. Bad input shows the :class:`ExplorerInputError` message in the widget (no traceback).
Generation is synchronous: about half a second per ECG with the fast path.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from ..models.twin import is_twin
from .explorer import Explorer, ExplorerInputError, ExplorerResult, ReferenceECG

__all__ = ["ExplorerWidget"]


class ExplorerWidget:
    """Build with an :class:`Explorer`; :attr:`box` is the ipywidgets container to display. The controls are
    attributes (``statements``, ``typed``, ``age``, ``sex``, ``hr``, ``seed``, ``guidance``, ``reference``), so a
    test or a notebook can set them and call :meth:`generate` / :meth:`save` directly.

    ``reference_run``: the twin run whose ``test`` records the Reference dropdown offers (default: the explorer's
    own run, :attr:`Explorer.run_dir`); ``n_references``: how many of them. The dropdown is part of the widget only
    when the pipeline's U-Net is a twin."""

    def __init__(
        self,
        explorer: Explorer,
        *,
        save_dir: str | os.PathLike = "explorer_saved",
        default_statements: tuple[str, ...] = ("Sinus rhythm", "Right bundle branch block"),
        show_nearest: bool = True,
        n_statements: int = 40,
        reference_run: str | os.PathLike | None = None,
        n_references: int = 200,
    ):
        import ipywidgets as W

        self.explorer = explorer
        self.save_dir = Path(save_dir)
        self.show_nearest = show_nearest
        self.result: ExplorerResult | None = None
        choices = explorer.statements(limit=n_statements)
        self.statements = W.SelectMultiple(
            options=choices,
            value=tuple(s for s in default_statements if s in choices),
            rows=8,
            description="Statements",
        )
        self.typed = W.Text(value="", placeholder="or type statements, separated by |", description="Typed")
        # plain number boxes, not bounded ones: out-of-range input must reach the back-end's message, not be clamped
        self.age = W.FloatText(value=60, description="Age (y)")
        self.sex = W.Dropdown(options=["M", "F"], value="M", description="Sex")
        self.hr = W.FloatText(value=75, description="HR (bpm)")
        self.seed = W.IntText(value=0, description="Seed")
        self.guidance = W.FloatText(value=round(explorer.guidance_scale(), 2), description="Guidance")
        self.twin = is_twin(getattr(explorer.pipe, "unet", None))
        self.reference_run = Path(reference_run) if reference_run is not None else explorer.run_dir
        self.reference = W.Dropdown(options=self._reference_options(n_references), value=None, description="Reference")
        if not self.twin:
            self.reference.layout.display = "none"
        self.run_button = W.Button(description="Generate", button_style="primary", icon="heartbeat")
        self.save_wfdb = W.Button(description="Save WFDB", icon="save", disabled=True)
        self.save_png = W.Button(description="Save PNG", icon="image", disabled=True)
        self.message = W.HTML()
        self.summary = W.HTML()
        self.plot = W.Output()
        self.nearest_plot = W.Output()
        self.reference_plot = W.Output()
        self.run_button.on_click(lambda _: self.generate())
        self.save_wfdb.on_click(lambda _: self.save(("wfdb",)))
        self.save_png.on_click(lambda _: self.save(("png",)))
        controls = W.VBox(
            [
                W.HBox([self.statements, W.VBox([self.typed, self.age, self.sex, self.hr])]),
                W.HBox([self.seed, self.guidance, *([self.reference] if self.twin else [])]),
                W.HBox([self.run_button, self.save_wfdb, self.save_png]),
                self.message,
            ]
        )
        # the reference beside the generated ECG, wrapping below it when the window is narrower than two print-outs
        figures = W.HBox([self.plot, self.reference_plot], layout=W.Layout(flex_flow="row wrap"))
        self.box = W.VBox([controls, figures, self.summary, self.nearest_plot])

    def _reference_options(self, limit: int) -> list[tuple[str, str | None]]:
        """``(label, record_id)`` of the dropdown: None, then the twin run's test records (``id · report``)."""
        options: list[tuple[str, str | None]] = [("None", None)]
        if not self.twin or self.reference_run is None:
            return options
        for r in Explorer.reference_choices(self.reference_run, limit=limit).itertuples():
            report = str(r.report).replace("|", " / ")
            options.append((f"{r.record_id} · {report[:60]}{'…' if len(report) > 60 else ''}", r.record_id))
        return options

    def show(self) -> ExplorerWidget:
        """Display the widget and generate its default conditions once; returns ``self``."""
        from IPython.display import display

        display(self.box)
        self.generate()
        return self

    def report(self) -> str:
        """The picked statements followed by the typed ones, ``|``-joined."""
        typed = [s.strip() for s in self.typed.value.split("|") if s.strip()]
        return "|".join(list(self.statements.value) + typed)

    def _show_message(self, text: str, error: bool) -> None:
        color = "#a31515" if error else "#176f2c"
        self.message.value = f"<span style='color:{color}'>{html.escape(text)}</span>"

    def generate(self) -> ExplorerResult | None:
        """Run the back-end for the current controls and redraw; returns the result, or None on bad input (the
        message is shown in the widget)."""
        import matplotlib.pyplot as plt
        from IPython.display import display

        try:
            reference = None
            if self.reference.value is not None:
                reference = ReferenceECG.from_run(self.reference_run, self.reference.value)
            res = self.explorer.explore(
                self.report(),
                self.age.value,
                self.sex.value,
                self.hr.value,
                seed=self.seed.value,
                guidance_scale=self.guidance.value,
                reference=reference,
            )
        except ExplorerInputError as exc:
            self._show_message(str(exc), error=True)
            self.save_wfdb.disabled = self.save_png.disabled = True
            return None
        self.result = res
        self.save_wfdb.disabled = self.save_png.disabled = False
        self._show_message(f"generated in {res.seconds['generate']:.2f} s", error=False)
        self.summary.value = res.summary_html()
        self.plot.clear_output(wait=True)
        with self.plot:
            fig = res.figure()
            display(fig)
            plt.close(fig)
        self.reference_plot.clear_output(wait=True)
        ref_fig = res.reference_figure()
        if ref_fig is not None:
            with self.reference_plot:
                display(ref_fig)
                plt.close(ref_fig)
        self.nearest_plot.clear_output(wait=True)
        if self.show_nearest and res.nearest is not None:
            with self.nearest_plot:
                fig = res.nearest_figure()
                display(fig)
                plt.close(fig)
        return res

    def save(self, formats: tuple[str, ...] = ("wfdb", "png")) -> list[Path]:
        """Save the last generated ECG under :attr:`save_dir`; the files are listed in the widget's message."""
        if self.result is None:
            self._show_message("nothing to save yet: press Generate first", error=True)
            return []
        files = self.result.save(self.save_dir, formats=formats)
        self._show_message("saved " + ", ".join(str(f) for f in files), error=False)
        return files
