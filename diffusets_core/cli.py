"""The ``diffusets`` command line: one subcommand per pipeline stage.

Each subcommand imports the module of its stage when it runs, not at the top of this file: the stages pull in
torch (about 2 s) and evaluation pulls matplotlib, scipy and scikit-learn, which ``diffusets --help``,
``diffusets prepare`` and ``diffusets embed`` do not need. This is the top layer; nothing imports it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .argtypes import device_spec, nonnegative_int, positive_int, positive_int_range
from .data.preprocess import MODEL_FS

#: What ``diffusets --help`` tells a user (the module docstring is for contributors).
DESCRIPTION = (
    "DiffuSETS: generate 12-lead ECGs from clinical text reports and patient information. One subcommand per "
    "stage: cohort, prepare, embed, train-vae, encode, train-unet, guidance-sweep, evaluate, generate, export, book; "
    "train-twin adds the digital twin (generate --reference)."
)

#: --reprofile, for the commands that take --profile and a run directory (book, train-vae, train-unet, train-twin).
REPROFILE_HELP = (
    "switch a run recorded with another profile to --profile's (its profile.json is rewritten; models already "
    "trained keep the settings they were trained with)"
)


def _cmd_cohort(args: argparse.Namespace) -> int:
    from .data.cohort import build_cohort

    summary = build_cohort(
        args.out,
        n=args.n,
        seed=args.seed,
        workers=args.workers,
        progress=not args.quiet,
        wording=args.wording,
        records_per_subject=args.records_per_subject,
    )
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from .data.prepare import PrepareConfig, prepare_dataset
    from .data.preprocess import PreprocessConfig

    config = PrepareConfig(
        n=args.n,
        seed=args.seed,
        preprocess=PreprocessConfig(baseline_removal=args.baseline_removal),
        subject_id=args.subject_id,
        code_map=args.code_map,
        exclude=args.exclude,
        header_fields=args.header_field,
    )
    res = prepare_dataset(
        args.source, args.data_dir, args.run_dir, config, workers=args.workers, progress=not args.quiet
    )
    print(res)
    return 0


def _cmd_embed(args: argparse.Namespace) -> int:
    from .text.embed import EmbedConfig, embed_run

    config = EmbedConfig(
        backend=args.backend,
        model=args.model,
        base_url=args.base_url,
        prompt_mode=args.prompt_mode,
        batch_size=args.batch_size,
    )
    summary = embed_run(args.run_dir, config, progress=not args.quiet)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _run_profile(args: argparse.Namespace):
    """The profile a command runs RUN_DIR with (config.run_profile): --profile, else the one RUN_DIR records, else cpu.
    Nothing is written here; a --profile that the run's record refuses is the caller's to report."""
    from .config import run_profile

    if args.reprofile and args.profile is None:
        raise ValueError("--reprofile: name the profile to switch the run to with --profile")
    overrides = dict(getattr(args, "set", None) or [])
    return run_profile(args.run_dir, args.profile, overrides=overrides)


def _override(text: str) -> tuple[str, object]:
    """argparse type of ``--set KEY=VALUE`` (config.parse_override); the key is checked with the profile."""
    from .config import parse_override

    try:
        return parse_override(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: --set, for the commands that take --profile (book, train-vae, train-unet, train-twin).
SET_HELP = (
    "change one setting of the profile for this run, KEY=VALUE with KEY the dotted path of a profile file "
    "(unet.train.max_steps=2, data.n=120, vae.model.channels=[32,64,64], notebook_params.04_diffusion.ddpm_steps=4); "
    "repeatable; the value is read as in a profile file, the result checked as a whole; the run records the changed "
    "profile"
)


def _cmd_train(args: argparse.Namespace) -> int:
    """train-vae / train-unet: the stage's model and training settings come from the run's profile; the profile is
    recorded in RUN_DIR once the model is trained."""
    from .config import ProfileMismatch, write_profile_record
    from .train.unet import train_text_only_unet, train_unet
    from .train.vae import train_vae

    choice = _run_profile(args)
    problem = choice.mismatch(reprofile=args.reprofile)
    if problem:
        raise ProfileMismatch(problem)
    prof = choice.profile
    cfg = getattr(prof, args.stage)
    train = train_vae if args.stage == "vae" else train_unet
    if getattr(args, "text_only", False):  # the paper's "noc" ablation, beside the main model
        train = train_text_only_unet
    model, extra = dict(cfg.model), dict(cfg.extra)
    print(f"[{args.command}] {choice.note()}", file=sys.stderr, flush=True)
    summary = train(
        args.run_dir, model, {**cfg.train, **_train_overrides(args)}, seed=prof.seed, resume=not args.restart, **extra
    )
    if summary and choice.needs_record():  # summary is {} on the other torchrun ranks: rank 0 records
        write_profile_record(choice.run_dir, prof)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _cmd_train_twin(args: argparse.Namespace) -> int:
    """train-twin: the twin run prepared and the twin trained (apps.twin_training) with the profile's chapter-11
    parameters (``notebook_params.11_digital_twin``, checked against the chapter's parameters cell); the profile is
    recorded in RUN_DIR once the twin is trained, as train-unet records it."""
    from .apps.twin_training import TWIN_CHAPTER, train_twin_run
    from .book import check_profile_parameters
    from .config import ProfileMismatch, write_profile_record

    choice = _run_profile(args)
    problem = choice.mismatch(reprofile=args.reprofile)
    if problem:
        raise ProfileMismatch(problem)
    prof = choice.profile
    check_profile_parameters(prof, [TWIN_CHAPTER], where=choice.source())
    print(f"[train-twin] {choice.note()}", file=sys.stderr, flush=True)
    summary = train_twin_run(
        choice.run_dir,
        prof.notebook_params.get(TWIN_CHAPTER),
        seed=prof.seed,
        device=args.device,
        max_steps=args.max_steps,
        resume=not args.restart,
        progress=not args.quiet,
    )
    if summary["trained"] and choice.needs_record():  # trained is {} on the other torchrun ranks: rank 0 records
        write_profile_record(choice.run_dir, prof)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _cmd_encode(args: argparse.Namespace) -> int:
    from .train.latents import encode_latents

    print(json.dumps(encode_latents(args.run_dir, device=args.device), indent=2))
    return 0


def _train_overrides(args: argparse.Namespace) -> dict:
    out = {}
    if args.max_steps is not None:
        out["max_steps"] = args.max_steps
    if args.device:
        out["device"] = args.device
    return out


def _generate_command(args: argparse.Namespace) -> str:
    """What the output folder's lock records about this command (shown to a concurrent one)."""
    what = f"--conditions {args.conditions}" if args.conditions is not None else f"--report {args.report!r}"
    model = f"--model {args.model}" if args.model is not None else f"--run {args.run}"
    return f"diffusets generate {model} {what} --out {args.out}"


def _generate_source(args: argparse.Namespace) -> Path:
    """The model ``generate`` loads: --run (a run directory, or a model folder) or --model (a model folder).
    Raises ValueError for both or neither, CheckpointError (a ValueError) for a --model without its index."""
    from .diffusion.model_folder import read_index

    if (args.run is None) == (args.model is None):
        raise ValueError("generate: give the model with --run RUN_DIR or --model FOLDER (one of them)")
    if args.model is None:
        return args.run
    read_index(args.model)  # names the missing or unreadable model_index.json
    return args.model


def _reference_record(args: argparse.Namespace) -> str:
    """The WFDB record ``generate --reference`` reads: the value itself when it names a record (``RECORD.hea``
    exists), else a record id of ``--run``'s ``data/manifest.csv`` (what ``Explorer.reference_choices`` and the
    manifest list), resolved to the file that run prepared it from. Raises ValueError when it is neither."""
    from .data.store import SignalStore
    from .layout import MANIFEST_FILE, data_dir

    given = str(args.reference)
    stem = given[:-4] if given.endswith((".hea", ".dat")) else given
    if Path(stem + ".hea").is_file():
        return given
    manifest = None if args.run is None else data_dir(args.run) / MANIFEST_FILE
    if manifest is None or not manifest.is_file():
        raise ValueError(f"--reference {given}: no WFDB record {stem}.hea")
    store = SignalStore(args.run)
    rows = store.manifest[store.manifest["record_id"] == given]
    if rows.empty:
        raise ValueError(f"--reference {given}: neither a WFDB record ({stem}.hea) nor a record id of {manifest}")
    path = Path(store.info["data_dir"]) / str(rows["source_path"].iloc[0])
    if not path.with_name(path.name + ".hea").is_file():
        raise ValueError(f"--reference {given}: record {given} of {manifest} was prepared from {path}, which is gone")
    return str(path)


def _cmd_export(args: argparse.Namespace) -> int:
    from .diffusion.pipeline import export_model

    out = export_model(
        args.run_dir, args.out, unet_dir=args.unet_dir, overwrite=args.overwrite, text_cache=args.text_cache
    )
    print(json.dumps({"model_folder": str(out), "load_with": f"diffusets generate --model {out} ..."}, indent=2))
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    try:
        return _cmd_generate_checked(args)
    except FileNotFoundError:
        raise  # messages that already name the missing file
    except OSError as exc:  # what the checks before writing could not foresee (disk full, a mount gone read-only)
        raise RuntimeError(
            f"{exc} (while generating into --out {args.out}: check that it is a folder you may write into and that "
            "the disk has space; rerunning the same command resumes)"
        ) from None


def _cmd_generate_checked(args: argparse.Namespace) -> int:
    from .diffusion.pipeline import DiffuSETSPipeline
    from .generate.to_disk import generate_to_disk
    from .viz.ecgplot import plot_12lead

    if args.conditions is not None and args.reference is not None:
        raise ValueError("generate: --reference applies to --report (one patient), not to --conditions datasets")
    if args.conditions is not None:
        given = [
            f
            for f, v in (
                ("--report", args.report),
                ("--age", args.age),
                ("--sex", args.sex),
                ("--hr", args.hr),
                ("-n", args.n),
            )
            if v is not None
        ]
        if given:
            raise ValueError(
                f"generate: {', '.join(given)} cannot be combined with --conditions (the file gives each row's "
                "report, age, sex, hr and n); give one or the other"
            )
        return _cmd_generate_dataset(args)
    if args.report is None or args.age is None or args.sex is None or args.hr is None:
        raise ValueError("generate: give --report, --age, --sex and --hr, or --conditions FILE.csv")
    if args.fs is not None:
        raise ValueError("generate: --fs applies to --conditions datasets; --report writes the model's rate")
    formats = [f.strip() for f in (args.formats or "wfdb,npy,png").split(",") if f.strip()]
    pipe = DiffuSETSPipeline.from_pretrained(_generate_source(args), device=args.device or "auto")
    cond = pipe.conditions(args.report, args.age, args.sex, args.hr, n=1 if args.n is None else args.n)
    twin = {}
    if args.reference is not None:  # checked (model, file, leads, rate) before anything is written
        from .data.wfdb_io import RecordError

        reference = _reference_record(args)
        try:
            pipe.reference_latents(reference, len(cond), args.reference_guidance)
        except RecordError as exc:  # a file that is not a usable ECG: said like every other bad input
            raise ValueError(f"--reference: {exc}") from None
        twin = {"reference": reference, "reference_guidance": args.reference_guidance}
    elif args.reference_guidance != 1.0:
        raise ValueError("generate: --reference-guidance needs --reference RECORD")
    res = generate_to_disk(
        pipe,
        cond,
        args.out,
        batch_size=args.batch_size,
        formats=formats,
        progress=not args.quiet,
        command=_generate_command(args),
        seed=args.seed,
        sampler=args.sampler,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        guidance_on=args.guidance_on,
        plot=plot_12lead,
        **twin,
    )
    print(json.dumps(res, indent=2))
    return 0


def _cmd_generate_dataset(args: argparse.Namespace) -> int:
    """generate --conditions: a WFDB/.npy dataset, sharded over torchrun ranks (generate.dataset)."""
    from .device import resolve_device
    from .diffusion.pipeline import DiffuSETSPipeline
    from .generate.dataset import DatasetConfig, generate_dataset
    from .generate.outputs import check_out_dir
    from .generate.sharding import init_ranks

    check_out_dir(args.out)  # a bad --out is said before the model loads
    source = _generate_source(args)
    device = resolve_device(args.device or "auto")
    init_ranks(device)
    pipe = DiffuSETSPipeline.from_pretrained(source, device=str(device))
    config = DatasetConfig(
        fs=MODEL_FS if args.fs is None else args.fs,
        batch_size=args.batch_size,
        formats=(args.formats or "wfdb,npy").split(","),
        seed=args.seed,
        sampler=args.sampler,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        guidance_on=args.guidance_on,
    )
    res = generate_dataset(
        pipe, args.conditions, args.out, config, progress=not args.quiet, command=_generate_command(args)
    )
    if res["rank"] == 0:
        print(json.dumps(res, indent=2))
    return 0


def _cmd_book(args: argparse.Namespace) -> int:
    """book: every input (profile, --only, --data-dir, the run's recorded profile) is checked, and every problem
    reported, before anything is written into the run."""
    from .book import NotebookFailed, check_profile_parameters, run_book, select_chapters

    choice = _run_profile(args)
    profile = choice.profile
    problems = []
    chapters = None
    try:
        chapters = select_chapters(profile, args.only)
    except ValueError as exc:
        if args.only:
            problems.append(f"--only: {exc}")
    if chapters is not None:
        try:  # named by the file the profile was read from
            check_profile_parameters(profile, chapters, where=choice.source())
        except ValueError as exc:
            problems.append(str(exc))
    if args.data_dir is not None:
        data_dir = Path(args.data_dir).expanduser().resolve()  # relative to where the command was run
        if profile.data.source == "cohort":
            problems.append(
                f"--data-dir: profile {profile.name!r} builds its own cohort (data.source: cohort) and would ignore "
                f"{data_dir}; use a profile whose data.source is mimic, ptbxl or wfdb"
            )
        elif not data_dir.is_dir():
            problems.append(f"--data-dir: no such folder {data_dir}")
        else:
            profile.data.data_dir = str(data_dir)
    mismatch = choice.mismatch(reprofile=args.reprofile)
    if mismatch:
        problems.append(mismatch)
    if problems:
        raise ValueError("\nerror: ".join(problems))
    print(f"[book] {choice.note()}", flush=True)
    try:
        result = run_book(
            profile, run_dir=choice.run_dir, only=args.only, build=not args.no_build, reprofile=args.reprofile
        )
    except NotebookFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def _add_cohort_parser(sub: argparse._SubParsersAction) -> None:
    """The subcommand ``cohort``."""
    c = sub.add_parser("cohort", help="build the embedded synthetic cohort (WFDB, MIMIC-IV-ECG layout)")
    c.add_argument("--n", type=positive_int, default=4000, help="number of records (default 4000)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--workers", type=int, default=2)
    c.add_argument("--out", required=True, type=Path, help="output folder")
    c.add_argument(
        "--wording",
        choices=["bank", "fixed"],
        default="bank",
        help="bank: each statement worded by the wording bank (default); fixed: the canonical statements only",
    )
    c.add_argument(
        "--records-per-subject",
        type=positive_int_range,
        default=None,
        metavar="K|LO-HI",
        help="twin layout: every subject gets K (or LO to HI) records from one morphology template, with findings "
        "and heart rate drawn per record (default: the standard layout, 1-2 records per subject, each its own "
        "morphology)",
    )
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(func=_cmd_cohort)


def _add_prepare_parser(sub: argparse._SubParsersAction) -> None:
    """The subcommand ``prepare``."""
    c = sub.add_parser("prepare", help="read, preprocess and store a dataset into RUN_DIR/data")
    c.add_argument("run_dir", type=Path)
    c.add_argument("--source", required=True, choices=["cohort", "mimic", "ptbxl", "wfdb"])
    c.add_argument("--data-dir", required=True, type=Path)
    c.add_argument("--n", type=positive_int, default=None, help="first N records only")
    c.add_argument("--seed", type=int, default=0, help="seed of the subject-level split")
    c.add_argument("--workers", type=nonnegative_int, default=2, help="worker processes (0 or 1: in this process)")
    c.add_argument("--baseline-removal", action="store_true")
    c.add_argument(
        "--subject-id",
        default=None,
        metavar="RULE",
        help="where the patient id comes from: auto (default), record, header:KEY, path:REGEX "
        "(group 'subject' or 1 on the record path) or csv:FILE (columns record_id,subject_id)",
    )
    c.add_argument(
        "--code-map",
        type=Path,
        default=None,
        metavar="CSV",
        help="code,text table for diagnosis codes in WFDB headers (e.g. Challenge SNOMED CT #Dx)",
    )
    c.add_argument(
        "--header-field",
        action="append",
        default=None,
        metavar="FIELD=KEY",
        help="WFDB header comment key holding age, sex or report (source wfdb; repeatable, report more than once), "
        "e.g. --header-field age=patient_age, for headers that none of the known conventions "
        "(LUDB, INCART, PTB, Challenge) describe",
    )
    c.add_argument(
        "--exclude",
        type=Path,
        default=None,
        metavar="FILE",
        help="record ids to skip, one a line (manifest reason 'excluded by FILE')",
    )
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(func=_cmd_prepare)


def _add_embed_parser(sub: argparse._SubParsersAction) -> None:
    """The subcommand ``embed``."""
    c = sub.add_parser("embed", help="embed a prepared dataset's reports through the persistent cache")
    c.add_argument("run_dir", type=Path)
    c.add_argument("--backend", default="local", choices=["local", "openai"])
    c.add_argument("--model", default=None)
    c.add_argument("--base-url", default=None, help="OpenAI-compatible server (the key is read from OPENAI_API_KEY)")
    c.add_argument("--prompt-mode", default="paper", choices=["paper", "clean"])
    c.add_argument("--batch-size", type=positive_int, default=64)
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(func=_cmd_embed)


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    """The subcommands ``train-vae`` and ``train-unet``."""
    for name, stage, hlp in (
        ("train-vae", "vae", "train the VAE on RUN_DIR's training split"),
        ("train-unet", "unet", "train the conditional U-Net on RUN_DIR's latents"),
    ):
        c = sub.add_parser(name, help=hlp)
        c.add_argument("run_dir", type=Path)
        c.add_argument(
            "--profile",
            default=None,
            help="settings from this profile (default: the one RUN_DIR records in profile.json, else cpu); "
            "a profile other than the recorded one needs --reprofile",
        )
        c.add_argument("--reprofile", action="store_true", help=REPROFILE_HELP)
        c.add_argument("--set", action="append", type=_override, default=None, metavar="KEY=VALUE", help=SET_HELP)
        c.add_argument("--max-steps", type=positive_int, default=None)
        c.add_argument("--device", type=device_spec, default=None, help="auto (default), cpu, cuda, cuda:1, ...")
        c.add_argument("--restart", action="store_true", help="ignore an existing last.pt instead of resuming")
        if stage == "unet":
            c.add_argument(
                "--text-only",
                action="store_true",
                help="train the paper's text-only ablation (no sex/age/HR) into RUN_DIR/unet_noc",
            )
        c.set_defaults(func=_cmd_train, stage=stage)


def _add_train_twin_parser(sub: argparse._SubParsersAction) -> None:
    """The subcommand ``train-twin``."""
    c = sub.add_parser(
        "train-twin",
        help="the digital twin: build RUN_DIR/twin (a cohort with several records per subject, encoded and embedded "
        "as RUN_DIR) and fine-tune RUN_DIR's U-Net with a reference-ECG encoder into RUN_DIR/twin/unet",
    )
    c.add_argument("run_dir", type=Path, help="a run with a trained VAE and FiLM U-Net (train-vae, train-unet)")
    c.add_argument(
        "--profile",
        default=None,
        help="settings from this profile's notebook_params.11_digital_twin (twin_n, records_per_subject, "
        "reference_channels, reference_dropout, identity_steps, encoder_lr_scale, twin_train, workers; a key left "
        "out takes chapter 11's default); default: the profile RUN_DIR records, else cpu",
    )
    c.add_argument("--reprofile", action="store_true", help=REPROFILE_HELP)
    c.add_argument("--set", action="append", type=_override, default=None, metavar="KEY=VALUE", help=SET_HELP)
    c.add_argument("--max-steps", type=positive_int, default=None, help="fine-tuning steps (default: twin_train's)")
    c.add_argument("--device", type=device_spec, default=None, help="auto (default), cpu, cuda, cuda:1, ...")
    c.add_argument("--restart", action="store_true", help="ignore the twin's existing last.pt instead of resuming")
    c.add_argument("--quiet", action="store_true", help="no progress bars")
    c.set_defaults(func=_cmd_train_twin)


def _add_encode_parser(sub: argparse._SubParsersAction) -> None:
    """The subcommand ``encode``."""
    c = sub.add_parser("encode", help="encode RUN_DIR's signals into VAE latents")
    c.add_argument("run_dir", type=Path)
    c.add_argument("--device", type=device_spec, default="auto")
    c.set_defaults(func=_cmd_encode)


def _add_generate_parser(sub: argparse._SubParsersAction) -> None:
    """The subcommand ``generate``."""
    c = sub.add_parser(
        "generate", help="generate ECGs from a report and patient info, or a dataset from a conditions file"
    )
    # --run-dir as well: torchrun's own parser takes "--run" for an abbreviation of its --run-path
    c.add_argument(
        "--run",
        "--run-dir",
        dest="run",
        default=None,
        type=Path,
        help="a run directory with trained vae/ and unet/ (spell it --run-dir under torchrun)",
    )
    c.add_argument(
        "--model",
        default=None,
        type=Path,
        help="instead of --run: a model folder written by `diffusets export` (no run directory needed)",
    )
    c.add_argument("--report", default=None, help='statements joined with "|", e.g. "Sinus tachycardia|ST elevation"')
    c.add_argument("--age", type=float, default=None)
    c.add_argument("--sex", default=None, help="M or F")
    c.add_argument("--hr", type=float, default=None, help="heart rate in bpm")
    c.add_argument(
        "--conditions",
        type=Path,
        default=None,
        metavar="CSV",
        help="a dataset: columns report, age, sex, hr, optional n (ECGs per row) and seed; writes WFDB "
        "records + manifest.csv + npy shards to --out (resumable; shards over torchrun ranks)",
    )
    c.add_argument(
        "--fs",
        type=float,
        default=None,
        choices=[MODEL_FS, 100.0, 500.0],
        help=f"with --conditions: output sampling rate in Hz (default {MODEL_FS:g}, the model's; others resampled "
        "with scipy resample_poly)",
    )
    c.add_argument("-n", type=positive_int, default=None, help="with --report: number of ECGs (default 1)")
    c.add_argument("--out", required=True, type=Path)
    c.add_argument(
        "--sampler",
        default=None,
        choices=["ddim", "ddpm", "dpmsolver++"],
        help="default: the run's validated setting (unet/sampling.json), else ddim",
    )
    c.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help="sampling steps (ddpm: 1000 as the paper); default: the run's validated setting, else 50",
    )
    c.add_argument(
        "--guidance-scale",
        type=float,
        default=None,
        help="classifier-free guidance; default: the run's validated scale, else 1.0 (none)",
    )
    c.add_argument(
        "--guidance-on",
        default=None,
        choices=["all", "text"],
        help="guide the report and patient values together (all) or the report alone (text); default: the run's",
    )
    c.add_argument(
        "--reference",
        default=None,
        metavar="RECORD",
        help="with --report and a twin model (RUN/twin, `diffusets train-twin`): the patient's own earlier ECG, a "
        "WFDB record path (12 leads, at least 10 s; prepared as the run's records were) or a record id of --run's "
        "data/manifest.csv: generate that patient's ECG under the new report",
    )
    c.add_argument(
        "--reference-guidance",
        type=float,
        default=1.0,
        help="with --reference: guidance on the reference alone (1: plain conditioning, the default; >1 stronger)",
    )
    c.add_argument("--seed", type=nonnegative_int, default=0, help="base seed, >= 0: ECG i gets seed + i (default 0)")
    c.add_argument("--batch-size", type=positive_int, default=32, help="ECGs per sampler call (default 32)")
    c.add_argument(
        "--formats",
        "--format",
        default=None,
        help="comma-separated: wfdb, npy, png (default wfdb,npy,png; with --conditions wfdb,npy)",
    )
    c.add_argument("--device", default=None)
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(func=_cmd_generate)


def _add_export_parser(sub: argparse._SubParsersAction) -> None:
    """The subcommand ``export``."""
    c = sub.add_parser(
        "export",
        help="write a run's model as a self-contained folder to share (safetensors, configs, index, model card)",
    )
    c.add_argument("run_dir", type=Path, help="the run directory (or a model folder, to copy it)")
    c.add_argument("--out", required=True, type=Path, help="the model folder to write")
    c.add_argument(
        "--unet-dir", default="unet", help="which U-Net of the run: unet (default) or unet_noc (the text-only ablation)"
    )
    c.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty folder that is not a previous export (a previous export is always replaced)",
    )
    c.add_argument(
        "--text-cache",
        action="store_true",
        help="also ship the run's cached prompt vectors (text_cache/), to reproduce its samples bit for bit with "
        "an embedder whose vectors depend on their batch (the local MiniLM)",
    )
    c.set_defaults(func=_cmd_export)


def _add_book_parser(sub: argparse._SubParsersAction) -> None:
    """The subcommand ``book``."""
    c = sub.add_parser("book", help="execute the notebooks of a profile with papermill and build the book")
    c.add_argument(
        "--profile",
        default=None,
        help="profiles/<name>.yaml or a path (default: the profile the run directory records in profile.json, "
        "else cpu); a profile other than the recorded one needs --reprofile",
    )
    c.add_argument("--reprofile", action="store_true", help=REPROFILE_HELP)
    c.add_argument("--set", action="append", type=_override, default=None, metavar="KEY=VALUE", help=SET_HELP)
    c.add_argument("--run-dir", type=Path, default=None, help="override the profile's run directory")
    c.add_argument("--data-dir", default=None, help="override the profile's data.data_dir (an existing folder)")
    c.add_argument("--only", nargs="+", default=None, help="run only these chapters of the profile (e.g. 01_data)")
    c.add_argument("--no-build", action="store_true", help="execute notebooks but skip jupyter-book build")
    c.set_defaults(func=_cmd_book)


def build_parser() -> argparse.ArgumentParser:
    """The ``diffusets`` command line: one subcommand per stage, in the order a run goes through them."""
    p = argparse.ArgumentParser(prog="diffusets", description=DESCRIPTION)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    _add_cohort_parser(sub)
    _add_prepare_parser(sub)
    _add_embed_parser(sub)
    _add_train_parser(sub)
    _add_encode_parser(sub)
    _add_train_twin_parser(sub)
    _add_generate_parser(sub)
    _add_export_parser(sub)
    # the evaluation commands' own module adds them (it imports the benchmark only when one of them runs)
    from .eval.commands import add_evaluate_parser, add_guidance_parser

    add_evaluate_parser(sub)
    add_guidance_parser(sub)
    _add_book_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        # Known failure modes carry messages that name the file/field; a traceback adds nothing for users.
        if args.verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
