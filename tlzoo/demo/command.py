"""CLI command ``tlzoo demo``: transfer learning vs training from scratch, offline, with real numbers.

The work is :func:`tlzoo.demo.run.run_demo`; this module parses the options and
prints its report (a table, one verdict line per modality, the reloaded
models' predictions, the files written) or, with ``--json``, the report itself.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

DESCRIPTION = """\
Show transfer learning at work, offline, in a few minutes on a laptop CPU.

For each modality the demo trains the same network three ways on a new task
with only a few labels per class, and tests all three on the same held-out data:
  transfer: linear probe   pretrained feature layers frozen, a new task layer trained
  transfer: fine-tune      LP-FT: a linear probe, then every layer fine-tuned
  from scratch             the same architecture from random weights

  text   the real pretrained all-MiniLM-L6-v2 -> 4 topics; the test sentences name
         things no training sentence does (train: football, test: hockey)
  image  a small ResNet, first pretrained here on 14 shapes -> 6 other shapes
  audio  a small Whisper-style encoder, first pretrained here on 40 spoken words
         (espeak-ng; tones without it) -> 8 new words that differ in one sound

The numbers are whatever the seeded runs give; the summary says when transfer
does not win. Models, plots and results.json go to --output-dir."""

EPILOG = """\
examples:
  tlzoo demo                                  # everything: about 3 minutes on 2 CPU cores
  tlzoo demo --modalities text --json         # one modality, results as JSON
  tlzoo demo --quick -o /tmp/demo             # tiny sizes: checks the plumbing in seconds
  tlzoo demo --modalities image --push-to https://huggingface.co --repo-id me/shapes-demo"""

# per-epoch and per-step logging of the library: too much for the demo's output
_CHATTY = ("tlzoo.training.loop", "tlzoo.data", "tlzoo.features.extraction", "tlzoo.workflow", "tlzoo.model.adapted",
           "tlzoo.training.train", "tlzoo.hub")
# "no pipeline() export for whisper" is expected here, not news
_NOTICES = ("tlzoo.model.export",)


def register_demo(sub: Any) -> None:
    """Add the ``demo`` sub-command to the ``tlzoo`` parser."""
    p = sub.add_parser(
        "demo",
        help="see transfer learning beat training from scratch, offline, in minutes",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--modalities", default="image,audio,text", metavar="LIST",
                   help="comma-separated modalities to run (default: image,audio,text)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and one epoch: seconds, numbers mean little")
    p.add_argument("-o", "--output-dir", default="tlzoo-demo",
                   help="where models, plots and results go (default: ./tlzoo-demo)")
    p.add_argument("--seed", type=int, default=0, help="seed of data, weights and training (default: 0)")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch CPU threads (default: 1, which keeps the numbers the same on every machine)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--push-to", metavar="ENDPOINT",
                   help="a Hub endpoint URL: push the first modality's fine-tuned model there")
    p.add_argument("--repo-id", help="repo to push to (default: <your user>/tlzoo-demo-<modality>)")
    p.add_argument("--token", help="Hub token for the push (default: HF_TOKEN or your stored login)")
    p.add_argument("--no-register", dest="register", action="store_false",
                   help="do not add the pretrained image and audio source models to your own zoo")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo and print its report."""
    from tlzoo.cli.commands import UsageError, echo, echo_json
    from tlzoo.demo.run import parse_modalities, run_demo
    from tlzoo.errors import ConfigurationError

    try:
        modalities = parse_modalities(args.modalities)
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from exc
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be a positive integer, got {args.threads}.")
    if (args.repo_id or args.token) and not args.push_to:
        raise UsageError("--repo-id and --token are for pushing: add --push-to ENDPOINT (e.g. https://huggingface.co).")
    if not getattr(args, "debug", False):
        _quiet_libraries()
    report = run_demo(args.output_dir, modalities=modalities, quick=args.quick, seed=args.seed,
                      num_threads=args.threads, push_to=args.push_to, repo_id=args.repo_id, token=args.token,
                      register_sources=args.register)
    if args.json:
        echo_json(report)
    else:
        for line in format_report(report):
            echo(line)
    return 1 if report["pushed"] and report["pushed"]["error"] else 0


def _quiet_libraries() -> None:
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in _NOTICES:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:  # transformers resets its logger's level when first imported, so set it through its own API
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _time(report: dict[str, Any], row: dict[str, Any]) -> str:
    cache = report["modalities"][row["modality"]]["methods"][row["method"]].get("feature_cache") or {}
    cached = row["method"] == "linear_probe" and cache.get("cached") and not cache.get("computed")
    return f"{row['seconds']:.1f} s" + (" (features from cache)" if cached else "")


def format_report(report: dict[str, Any]) -> list[str]:
    """The lines ``tlzoo demo`` prints for a :func:`tlzoo.demo.run.run_demo` report."""
    from tlzoo.cli.commands import table

    minutes, seconds = divmod(round(report["seconds"]), 60)
    threads = f"{report['num_threads']} torch thread{'s' if report['num_threads'] != 1 else ''}"
    lines = [f"tlzoo demo: transfer learning vs training from scratch (seed {report['seed']}, {threads}"
             f"{', quick sizes' if report['quick'] else ''}): {minutes} min {seconds} s", ""]
    rows = [(r["modality"], r["label"], _pct(r["accuracy"]), f"{r['f1']:.3f}", _time(report, r))
            for r in report["table"]]
    if rows:
        lines += [table(rows, ["modality", "method", "test accuracy", "F1 (macro)", "train time"]), ""]
    mods = report["modalities"]
    done = {name: m for name, m in mods.items() if m["status"] == "ok"}
    if done:
        lines.append("Tasks (train / validation / test examples) and source models:")
        for name, m in done.items():
            t, s = m["target"], m["source"]
            sizes = " / ".join(str(t["split_sizes"][k]) for k in ("train", "validation", "test"))
            lines.append(f"  {name}: {t['task']} ({', '.join(t['classes'])}): {sizes}; chance {_pct(t['chance'])}")
            if "accuracy" in s:
                lines.append(f"    source: {s['model']}, pretrained here on {s['task']} ({s['examples']} examples) "
                             f"in {s['seconds']:.0f} s: {_pct(s['accuracy'])} on held-out source examples")
            else:
                lines.append(f"    source: {s['model']}")
            r = m["recipe"]
            lines.append(f"    training: linear probe {r['probe_epochs']} epochs; LP-FT the same probe, then "
                         f"{r['fine_tune_epochs']} epochs at lr {r['fine_tune_learning_rate']:g}; scratch "
                         f"{r['scratch_epochs']} epochs at lr {r['scratch_learning_rate']:g}")
        lines.append("")
    lines.append("Summary:")
    lines += [f"  {m['summary']}" for m in mods.values()]
    notes = [f"  {name}: {note}" for name, m in mods.items() for note in m.get("notes", [])]
    if notes:
        lines += ["", "Notes:", *notes]
    if report["predictions"]:
        lines += ["", "Saved, reloaded with tlzoo.load, and predicted on test examples:"]
        for check in report["predictions"]:
            same = "same" if check["matches_in_memory"] else "DIFFERENT"
            lines.append(f"  {check['modality']} ({check['model_dir']}; {same} predictions as before saving):")
            for p in check["predictions"]:
                text = p["input"] if len(p["input"]) <= 70 else p["input"][:67] + "..."
                mark = "ok" if p["label"] == p["true"] else "wrong"
                lines.append(f"    {text!r}: true {p['true']} -> predicted {p['label']} ({p['score']:.2f}, {mark})")
    pushed = report["pushed"]
    if pushed and pushed["error"]:
        lines += ["", f"Push of the {pushed['modality']} model to {pushed['repo_id']} FAILED: {pushed['error']}"]
    elif pushed:
        lines += ["", f"Pushed the {pushed['modality']} model to {pushed['repo_id']} at {pushed['endpoint']}: "
                      f"{pushed['commit_url']}"]
    lines += ["", f"Written to {report['output_dir']}:"]
    if report["plots"]["comparison"]:
        lines.append(f"  {report['plots']['comparison']}  (accuracy and F1 of every method)")
    lines += [f"  {path}  (training curves)" for path in report["plots"]["curves"].values()]
    lines.append(f"  {report['output_dir']}/<modality>/<method>/model  (the adapted models), results.json")
    for entry in report.get("registered", []):
        lines.append(f"  {entry['folder']}  (the pretrained {entry['modality']} source model; in your zoo as "
                     f"{entry['name']!r}: tlzoo adapt {entry['name']} YOUR_DATA, offline)")
    return lines
