"""Evaluation: signal level (FID/rFID, precision-recall, density-coverage, CLIP score), feature level (HR and
intervals measured on the ECG) and diagnostic level (classifier, TSTR/TRTR).

Submodules are imported by the caller (``from diffusets_core.eval import metrics``); what each one holds:

Measurements and judges
    ``metrics`` (FID, precision / recall, density / coverage, CLIP score), ``features`` (HR and intervals
    measured on an ECG), ``clip`` (the ECG-text CLIP), ``classifiers`` (the multi-label classifier, TSTR / TRTR),
    ``fit_judges`` (both trained on a run's training split), ``judge`` (:class:`~.judge.BenchmarkJudge`: fit once,
    score many sets), ``reconstruction`` (what an autoencoder keeps), ``baselines`` (nearest neighbour,
    deepfake-ecg), ``paraphrase`` (reworded reports), ``embedding_probe`` (what the text embeddings know about
    heart rate), ``twin`` (personal consistency: a generated ECG's median beat, QRS axis and intervals against its
    own subject's target and another subject's counterpart).

The benchmark (:func:`.report.evaluate_run`, in the order it runs)
    ``config`` (its settings, :class:`~.config.EvalConfig`, and the guidance sweep's), ``taxonomy`` (classes), ``splits`` (the run's data), ``conditions`` (evaluated test records), ``sets``
    (generated and baseline sets), ``signal_level``, ``feature_level``, ``diagnostic_level`` (the tables),
    ``targets`` (met / missed), ``output`` and ``figures`` (files), ``timing``, ``report`` (the orchestrator),
    ``commands`` (``diffusets evaluate`` and ``diffusets guidance-sweep``).

Choosing the guidance and reading the results
    ``guidance`` (validation sweep, the ``auto`` rule), ``summaries`` (findings as sentences), ``views`` (tables
    shaped for the chapter), ``ablation`` (the generator ablation's table and findings).
"""

__all__ = [
    "ablation",
    "baselines",
    "classifiers",
    "clip",
    "commands",
    "conditions",
    "config",
    "diagnostic_level",
    "embedding_probe",
    "feature_level",
    "features",
    "figures",
    "fit_judges",
    "guidance",
    "judge",
    "metrics",
    "output",
    "paraphrase",
    "reconstruction",
    "report",
    "sets",
    "signal_level",
    "splits",
    "summaries",
    "targets",
    "taxonomy",
    "timing",
    "twin",
    "views",
]
