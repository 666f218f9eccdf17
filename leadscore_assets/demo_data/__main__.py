"""`python -m leadscore_assets.demo_data linkedin --rows 5000 --data-dir data`

`all` writes every source's export; `feedback` (a CRM outcome file for open LinkedIn leads,
`--rows` = outcomes) is separate because dropping it starts a retrain when the sensor runs:
`feedback --scenario shifted --batch 2 --rows 300` writes file 2 of a sequence whose outcomes
come from a changed world (`noisy`: mostly coin flips; `faithful`, the default: the truth file).
"""

import argparse

from leadscore_assets.demo_data import byo_table, email_crm, feedback, linkedin, saas_crm, web_sessions

SOURCES = {
    "linkedin": linkedin.write,
    "email_crm": email_crm.write,
    "saas_crm": saas_crm.write,
    "web_sessions": web_sessions.write,
    "byo_table": byo_table.write,
}
GENERATORS = {**SOURCES, "feedback": feedback.write}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write demo lead exports with known truth.")
    parser.add_argument("source", choices=[*GENERATORS, "all"])
    parser.add_argument("--rows", type=int, default=None, help="contacts to generate (default: the source's)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", default="data")
    fb = parser.add_argument_group("feedback only")
    fb.add_argument("--scenario", choices=feedback.SCENARIOS, default=None,
                    help="how outcomes are made: faithful (default, the truth file), shifted (some segments "
                         "now convert differently; also writes truth/linkedin_shifted.csv), noisy (mostly coin flips)")
    fb.add_argument("--batch", type=int, default=None,
                    help="file number k of a sequence (1, 2, ...): leaves out the leads files 1..k-1 reported")
    args = parser.parse_args(argv)
    if args.source != "feedback" and (args.scenario is not None or args.batch is not None):
        parser.error("--scenario and --batch apply to the feedback source only")
    if args.batch is not None and args.batch < 1:
        parser.error("--batch must be 1 or more")
    names = list(SOURCES) if args.source == "all" else [args.source]
    for name in names:
        kwargs = {"seed": args.seed}
        if args.rows:
            kwargs["rows"] = args.rows
        if name == "feedback":
            kwargs.update(scenario=args.scenario or "faithful", batch=args.batch)
        print(f"{name}: wrote {GENERATORS[name](args.data_dir, **kwargs)}")


if __name__ == "__main__":
    main()
