"""``fedcodec privacy``: plan a site's ε before joining, and show what a site has spent."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("privacy", help="differential-privacy budget: plan and status")
    sub = parser.add_subparsers(dest="privacy_command", metavar="ACTION", required=True)
    plan = sub.add_parser("plan", help="project ε for realistic site sizes (table + PNG curve)")
    plan.add_argument("--units", type=int, nargs="+", default=[500, 2000, 10000],
                      help="privacy units per site (default: 500 2000 10000)")
    plan.add_argument("--unit", default="patient", help="what one unit is (named in every ε)")
    plan.add_argument("--rounds", type=int, default=50)
    plan.add_argument("--local-steps", type=int, default=20)
    plan.add_argument("--batch-units", type=float, default=64.0,
                      help="expected units per batch (Poisson rate = batch / units)")
    plan.add_argument("--noise", type=float, default=1.0, help="noise multiplier σ")
    plan.add_argument("--delta", type=float, default=1e-5)
    plan.add_argument("--target", type=float, default=8.0, help="target ε, drawn on the plot")
    plan.add_argument("--accountant", choices=("rdp", "prv"), default="rdp")
    plan.add_argument("--png", type=Path, default=Path("privacy-plan.png"))
    plan.set_defaults(func=run_plan)
    status = sub.add_parser("status", help="a site's units, policy, spent ε and refused rounds")
    status.add_argument("state_dir", type=Path, help="the site's state folder")
    status.set_defaults(func=run_status)
    audit = sub.add_parser(
        "audit", help="empirical ε lower bound of the site's DP-SGD (canaries, one-run audit)",
        description="Insert canaries into the site's training units, train once with the site's "
                    "DP-SGD (Opacus, as a federated round trains), score the canaries and derive "
                    "an empirical ε lower bound (Steinke, Nasr and Jagielski 2023), printed next "
                    "to the ε the accountant claims. --positive-control also trains without "
                    "noise: its bound must be far higher, or the audit has no power.")
    audit.add_argument("--data-dir", type=Path, required=True, help="the site's DICOM folder")
    audit.add_argument("--quick", action="store_true", help="200 canaries, 60 steps instead of 300 and 160 (well under a minute a run)")
    audit.add_argument("--positive-control", action="store_true",
                       help="also train without DP (no clipping, no noise) and audit that")
    audit.add_argument("--out", type=Path, default=None, help="write audit.json here")
    audit.add_argument("--unit", default="patient", help="privacy unit of the site's own data")
    audit.add_argument("--target-epsilon", type=float, default=8.0, help="claimed ε of the DP run")
    audit.add_argument("--seed", type=int, default=0)
    audit.set_defaults(func=run_audit_command)


def run_plan(args: argparse.Namespace) -> int:
    from fedcodec.shared.privacy import PRIVACY_UNITS
    from fedcodec.shared.privacy.planning import epsilon_curve, plan_epsilon, plot_plan

    if args.unit not in PRIVACY_UNITS:
        from fedcodec.shared.errors import FedcodecError

        raise FedcodecError(f"unknown privacy unit {args.unit!r}; choose one of {', '.join(PRIVACY_UNITS)}")
    rows = plan_epsilon(args.units, args.rounds, args.local_steps, args.batch_units, args.noise,
                        args.delta, args.accountant)
    print(f"Projected ε per site: {args.rounds} rounds x {args.local_steps} local steps, "
          f"{args.batch_units:g} {args.unit}s per batch (Poisson), σ = {args.noise:g}, "
          f"δ = {args.delta:g}, {args.accountant.upper()} accountant")
    print(f"{args.unit + 's':>10}  {'sample rate':>11}  {'steps':>6}  {'ε (' + args.unit + ')':>14}  "
          f"within ε={args.target:g}")
    for row in rows:
        ok = "yes" if row.epsilon <= args.target else "no"
        print(f"{row.units:>10,}  {row.sample_rate:>11.4f}  {row.steps:>6}  {row.epsilon:>14.3f}  {ok}")
    curves = {n: epsilon_curve(n, args.rounds, args.local_steps, args.batch_units, args.noise,
                               args.delta, args.accountant) for n in args.units}
    path = plot_plan(args.png, curves, args.unit, args.delta, args.noise, args.target)
    print(f"curve: {path}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    """The site's units, policy, spent ε per accountant (with rounds charged twice) and refusals."""
    import json
    from collections import Counter

    from fedcodec.client.federated.site_policy import load_policy, read_refusals
    from fedcodec.client.federated.site_survey import load_survey
    from fedcodec.shared.errors import FedcodecError

    state_dir = Path(args.state_dir)
    if not state_dir.is_dir():
        raise FedcodecError(f"no privacy accountant in {state_dir}: no such site state folder")
    survey = load_survey(state_dir)
    if survey is not None:
        print(survey.summary() + " (as of the last `fedcodec join`)")
    print(f"policy: {load_policy(state_dir).describe()}")
    files = sorted(state_dir.glob("privacy-*.json"))
    if not files:
        print("no privacy accountant yet (no round trained)")
    for path in files:
        try:
            state = json.loads(path.read_text())
            print(f"{path.name}: ε = {state['epsilon']:.3f} ({state['unit']}-level, "
                  f"δ = {state['delta']:g}, {state['mechanism']}), target {state['target_epsilon']:g}, "
                  f"{sum(n for _, _, n in state['history'])} DP-SGD steps in {len(state['rounds'])} rounds")
            charged = Counter(r.get("round") for r in state["rounds"])
            again = sorted(r for r, n in charged.items() if n > 1 and r is not None)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise FedcodecError(f"privacy accountant {path} is unreadable: {exc}") from None
        if again:
            print(f"  rounds charged more than once (an attempt aborted and retried; its ε stays "
                  f"spent): {', '.join(map(str, again))}")
    if files:
        print("  ε counts every round this site trained in, including a round whose aggregate was "
              "never used (aborted after the site trained): the site is charged before it trains")
    refusals = read_refusals(state_dir)
    if refusals:
        print(f"refused {len(refusals)} round attempt(s); last: {refusals[-1]['reason']}")
    return 0


def run_audit_command(args: argparse.Namespace) -> int:
    from fedcodec.client.federated.dp_audit import run_site_audit

    for result in run_site_audit(args.data_dir, quick=args.quick, unit=args.unit,
                                 target_epsilon=args.target_epsilon, seed=args.seed,
                                 positive_control=args.positive_control, out=args.out):
        print(result.line())
    if args.out is not None:
        print(f"results: {args.out / 'audit.json'}")
    return 0
