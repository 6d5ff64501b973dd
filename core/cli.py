"""Command line.

    python -m core.cli caption VIDEO [VIDEO ...] --out DIR   caption files directly
    python -m core.cli check                                  verify Redis, workers, database, ffmpeg, model
    python -m core.cli purge                                  empty the waiting queue, cancel those jobs
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

from .services.captions import MAX_ROWS
from .services.errors import CaptionError


def _caption(args: argparse.Namespace) -> int:
    from .services.pipeline import CaptionOptions, caption_file

    try:
        options = CaptionOptions(model=args.model or "", language=args.language or "",
                                 burn_in=not args.no_burn_in, rows=args.rows,
                                 start_timecode=args.start_timecode or "",
                                 timecode_mode="ndf" if args.non_drop_frame else "", mov=args.mov,
                                 qc_profile=args.qc_profile or "",
                                 speaker_changes=False if args.no_speaker_changes else None,
                                 vocabulary=args.vocabulary)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    failures = 0
    for video in args.videos:
        try:
            result = caption_file(video, args.out, options)
        except CaptionError as err:
            message = str(err)
        except Exception as err:  # noqa: BLE001 - report it per file and go on with the next
            logging.getLogger(__name__).debug("unexpected failure", exc_info=True)
            message = f"{video}: unexpected error: {type(err).__name__}: {err}"
        else:
            print(json.dumps(result), flush=True)
            continue
        failures += 1
        print(json.dumps({"source": video, "error": message}), flush=True)
        print(f"error: {message}", file=sys.stderr)
    return 1 if failures else 0


def _queue():
    from .celery_app import create_celery
    from .config import process_settings
    from .queue import QueueClient

    return QueueClient(create_celery(process_settings(), include_tasks=False), process_settings())


def _check(args: argparse.Namespace) -> int:
    from .config import process_settings
    from .services.checks import run_checks

    results = run_checks(process_settings(), _queue())
    for check in results:
        print(f"{'OK  ' if check.ok else 'FAIL'} {check.name:9} {check.detail}")
        if not check.ok and check.fix:
            print(f"     {'':9} fix: {check.fix}")
    failed = [c.name for c in results if not c.ok]
    print("all checks passed" if not failed else f"{len(failed)} problem(s): {', '.join(failed)}")
    return 1 if failed else 0


def _purge(args: argparse.Namespace) -> int:
    from .jobs.actions import purge_waiting

    result = purge_waiting(_queue())
    print(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.cli", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    cap = sub.add_parser("caption", help="caption video files; prints one JSON line per input")
    cap.add_argument("videos", nargs="+", metavar="VIDEO")
    cap.add_argument("--out", required=True, type=Path, help="output directory")
    cap.add_argument("--model", help="tiny.en, base, or a CTranslate2 model directory (default: WHISPER_MODEL)")
    cap.add_argument("--language", help="language code, or 'auto' to detect (default: LANGUAGE)")
    cap.add_argument("--no-burn-in", action="store_true", help="write caption files only")
    cap.add_argument("--rows", type=int, default=2, choices=range(1, MAX_ROWS + 1),
                     help="rows per pop-on caption (default 2)")
    cap.add_argument("--start-timecode", metavar="HH:MM:SS;FF",
                     help="programme start of the SCC (HH:MM:SS;FF or HH:MM:SS:FF), or 'source' for the file's own "
                          "timecode (default: START_TIMECODE, 00:00:00;00)")
    cap.add_argument("--non-drop-frame", action="store_true", help="non-drop-frame SCC labels (HH:MM:SS:FF)")
    cap.add_argument("--mov", action="store_true",
                     help="also a QuickTime file: the source's streams copied, plus a CEA-608 caption track")
    cap.add_argument("--qc-profile", help="house profile of the QC report: broadcast-608, netflix-like, dcmp "
                                          "(default: QC_PROFILE)")
    cap.add_argument("--no-speaker-changes", action="store_true",
                     help='no ">>" marks at a change of speaker (default: SPEAKER_CHANGES)')
    cap.add_argument("--vocabulary", metavar="TERMS",
                     help="the show's names and terms, comma-separated, e.g. \"O'Neill,Kyiv\" (default: VOCABULARY)")
    cap.add_argument("-v", "--verbose", action="store_true")
    cap.set_defaults(run=_caption)
    sub.add_parser("check", help="verify the infrastructure and say how to fix what is wrong").set_defaults(run=_check)
    sub.add_parser("purge", help="empty the waiting queue and mark those jobs cancelled").set_defaults(run=_purge)
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not verbose:
        warnings.filterwarnings("ignore")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
