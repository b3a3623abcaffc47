"""The `mdp-prune` command (also `python -m mdp_prune`), built from the configuration dataclasses so that every
field has exactly one flag.

    mdp-prune run --dataset digits --planner lt --rounds 5 --seed 0 --out results/
    mdp-prune control RUN_DIR --kind reinit --rounds 3,7,12,15
    mdp-prune export RUN_DIR --round 7 --output ticket.pt

Each command holds the run folder it works in (`store.lock`): a second command on the same folder stops with a
one-line error instead of writing beside the first.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from mdp_prune.config import PRESETS, RunConfig, flag
from mdp_prune.errors import UserError
from mdp_prune.store import paths


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one line (exit code 2) instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _tuple_of(kind: type) -> Any:
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from None

    parse.__name__ = f"comma-separated {kind.__name__}s"
    return parse


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


_bool.__name__ = "boolean"


def config_fields() -> list[tuple[str, dataclasses.Field, Any]]:
    """(dotted name, field, default) for every command-line configurable field."""
    out = []
    defaults = RunConfig()
    for f in dataclasses.fields(RunConfig):
        value = getattr(defaults, f.name)
        if dataclasses.is_dataclass(value):
            out += [(f"{f.name}.{g.name}", g, getattr(value, g.name)) for g in dataclasses.fields(value)]
        else:
            out.append((f.name, f, value))
    return out


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), default=argparse.SUPPRESS,
                        help="the paper's recipe for a model (Frankle & Carbin 2019, Fig. 2); flags still win")
    groups: dict[str, Any] = {}
    for dotted, f, default in config_fields():
        section = dotted.split(".")[0] if "." in dotted else "run"
        group = groups.setdefault(section, parser.add_argument_group(f"{section} options"))
        if isinstance(default, tuple):
            kind = _tuple_of(type(default[0]))
        else:
            kind = _bool if isinstance(default, bool) else type(default)
        shown = ",".join(str(v) for v in default) if isinstance(default, tuple) else default
        group.add_argument(flag(f.name), dest=dotted, type=kind, default=argparse.SUPPRESS,
                           metavar=f.name.upper(), help=f"{f.metadata['help']} (default: {shown!s})")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    values = dict(PRESETS[args.preset]) if getattr(args, "preset", None) else {}
    values.update({k: v for k, v in vars(args).items() if "." in k or k in ("rounds", "data_dir", "device")})
    return RunConfig().replace(**values).validate()


def add_threads_argument(parser: argparse.ArgumentParser, text: str) -> None:
    """`--threads`: a runtime option like --quiet, never a configuration field, so it names no run folder."""
    parser.add_argument("--threads", type=int, default=None, metavar="N", help=text)


def check_threads(threads: int | None) -> None:
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be at least 1, got {threads}")


def set_threads(threads: int | None) -> None:
    """Apply --threads (None: leave torch's default)."""
    check_threads(threads)
    if threads is None:
        return
    import torch

    torch.set_num_threads(threads)


def quiet_openmp() -> None:
    """Idle OpenMP threads sleep instead of spinning, so a run beside another process does not steal its cores.
    OpenMP reads this when torch loads it: call before torch is first imported (every command's main does)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


_THREADS_HELP = ("torch threads (default: $OMP_NUM_THREADS if set, else one per physical core); with several "
                 "processes side by side, give each --threads 1 and run one per core")


def _int_list(text: str) -> list[int]:
    return list(_tuple_of(int)(text))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mdp-prune", description="Lottery tickets with a learned pruning planner.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run (or resume) IMP with rewinding and a planner",
                         description="Run IMP with rewinding; a rerun of the same configuration resumes it.")
    add_config_arguments(run)
    run.add_argument("--out", default="results", help="results folder (default: results)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    add_threads_argument(run, _THREADS_HELP)

    control = sub.add_parser("control", help="random-reinitialisation or random-pruning control of a run's tickets")
    control.add_argument("run_dir", type=Path, help="a run folder written by `run`")
    control.add_argument("--kind", choices=paths.CONTROL_KINDS, default="reinit",
                         help="reinit: the ticket's mask with fresh random weights; random-prune: random masks "
                              "at the ticket's per-layer densities with the rewound weights (default: reinit)")
    control.add_argument("--rounds", type=_int_list, default=None,
                         help="comma-separated rounds to test (default: every round after 0)")
    control.add_argument("--quiet", action="store_true", help="no progress bars")
    add_threads_argument(control, _THREADS_HELP)

    export = sub.add_parser("export", help="write a round's ticket (mask + rewound weights) to one file")
    export.add_argument("run_dir", type=Path, help="a run folder written by `run`")
    export.add_argument("--round", type=int, default=None, help="round to export (default: the last one)")
    export.add_argument("--output", type=Path, default=None, help="file to write (default: RUN_DIR/ticket.pt)")

    cut = sub.add_parser("truncate", help="forget a run's rounds from R on; rerunning its command redoes them",
                         description="Forget round R and every later one (rows, masks, planner states, Q-learning "
                                     "logs, controls), keeping what a rerun needs to redo them exactly.")
    cut.add_argument("run_dir", type=Path, help="a run folder written by `run`")
    cut.add_argument("--round", type=int, required=True, help="first round to forget (at least 1)")

    check = sub.add_parser("proxy-check", help="rank correlation of the planner's proxy with retrained accuracy")
    check.add_argument("run_dir", type=Path, help="a run folder written by `run`")
    check.add_argument("--round", type=int, default=0,
                       help="round whose trained weights the plans prune (default: 0, the dense network)")
    check.add_argument("--plans", type=int, default=20, help="plans from the action set to retrain (default: 20)")
    check.add_argument("--rewind-shares", type=_shares, default=(),
                       help="also score the rewind proxy retrained for these shares of a round's steps, comma "
                            "separated (e.g. 0.05,0.1,0.2; default: none): how long must a retrain be?")
    check.add_argument("--pruned-examples", type=_counts, default=(),
                       help="also score the pruned proxy on these numbers of validation examples, comma "
                            "separated (e.g. 5000; default: none, only the run's qlearning.proxy_examples): "
                            "how much of its error is the noise of a small subset?")
    check.add_argument("--quiet", action="store_true", help="no progress bars")
    add_threads_argument(check, _THREADS_HELP)
    return parser


def _comma_list(kind: type, valid: Callable[[Any], bool], rule: str) -> Callable[[str], tuple]:
    """`_tuple_of(kind)`, each value of which must also be `valid`."""
    values_of = _tuple_of(kind)

    def parse(text: str) -> tuple:
        values = values_of(text)
        bad = [v for v in values if not valid(v)]
        if bad:
            raise argparse.ArgumentTypeError(f"{rule}, got {bad[0]:g}")
        return values

    return parse


_shares = _comma_list(float, lambda s: 0 < s <= 1, "each share must be in (0, 1]")
_counts = _comma_list(int, lambda n: n >= 1, "each count must be at least 1")


def _run_dir(path: Path) -> Path:
    if not paths.is_run_dir(path):
        raise UserError(f"{path} is not a run folder (no {paths.CONFIG} and {paths.ROUNDS})")
    return path


def guarded(action: Callable[[], int | None]) -> int:
    """Run a command: a user mistake is one line on stderr and exit code 2, an interruption exit code 130."""
    try:
        return action() or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    quiet_openmp()
    args = build_parser().parse_args(argv)
    return guarded(lambda: _dispatch(args))


def _dispatch(args: argparse.Namespace) -> None:
    from mdp_prune.store.lock import folder_lock

    set_threads(getattr(args, "threads", None))
    if args.command == "run":
        from mdp_prune.experiments.imp import run_imp

        config = config_from_args(args)
        run = run_imp(config, args.out, progress=not args.quiet)
        print(run)
    elif args.command == "control":
        from mdp_prune.experiments.controls import run_control

        print(run_control(_run_dir(args.run_dir), args.kind, args.rounds, progress=not args.quiet))
    elif args.command == "export":
        from mdp_prune.experiments.imp import export_ticket
        from mdp_prune.store import io

        run = _run_dir(args.run_dir)
        with folder_lock(run, "run folder"):
            last = io.last_round(run)
            round_ = last if args.round is None else args.round
            if not 0 <= round_ <= last:
                raise UserError(f"--round must be between 0 and {last}, got {round_}")
            print(export_ticket(run, round_, args.output))
    elif args.command == "truncate":
        from mdp_prune.experiments.imp import truncate_run

        with folder_lock(_run_dir(args.run_dir), "run folder"):
            removed = truncate_run(args.run_dir, args.round)
        print(f"removed {removed} round(s) from {args.run_dir}; rerun its command to redo them")
    elif args.command == "proxy-check":
        from mdp_prune.experiments.proxy_check import proxy_check

        run = _run_dir(args.run_dir)
        summary = proxy_check(run, args.round, args.plans, progress=not args.quiet,
                              rewind_shares=args.rewind_shares, pruned_examples=args.pruned_examples)
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        print(f"tables in {paths.proxy_check_file(run, args.round).parent}")
