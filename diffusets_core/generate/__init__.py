"""Generation to disk: the pipeline's ECGs written as files, above the pipeline and below training.

* :mod:`.to_disk` -- :func:`generate_to_disk` (``diffusets generate --report``): one request, one folder of
  ``ecg_NNNNNN`` records;
* :mod:`.dataset` -- :func:`generate_dataset` (``diffusets generate --conditions``): a WFDB/``.npy`` dataset from a
  conditions file, sharded over torchrun ranks;
* :mod:`.conditions` -- reading and checking the conditions (:func:`validate_conditions`,
  :class:`ConditionsError`), expanding them into batches of ECGs;
* :mod:`.writer` -- WFDB/``.npy``/PNG writing (:func:`export_batch`, :func:`write_wfdb`), per-batch part files
  and their merge;
* :mod:`.rates` -- output sampling rates and resampling; :mod:`.sharding` -- torchrun ranks, barriers, the batches
  of each rank;
* :mod:`.outputs` -- the output folder: checked before anything is written, locked while a process writes, tied to
  the request recorded in it.

Both commands resume an interrupted run of the same request and refuse any other request into the same folder.
"""

from .conditions import ConditionsError, ConditionsSummary, validate_conditions
from .dataset import DatasetConfig, generate_dataset
from .outputs import OutputBusyError, OutputDirError, RequestMismatchError
from .rates import OUTPUT_RATES
from .to_disk import generate_to_disk
from .writer import export_batch, write_wfdb

__all__ = [
    "ConditionsError",
    "ConditionsSummary",
    "OUTPUT_RATES",
    "OutputBusyError",
    "OutputDirError",
    "RequestMismatchError",
    "export_batch",
    "DatasetConfig",
    "generate_dataset",
    "generate_to_disk",
    "validate_conditions",
    "write_wfdb",
]
