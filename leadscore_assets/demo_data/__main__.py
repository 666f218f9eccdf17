"""`python -m leadscore_assets.demo_data linkedin --rows 5000 --data-dir data`

`all` writes every source's export; `feedback` (a CRM outcome file for open LinkedIn leads,
`--rows` = outcomes) is separate because dropping it starts a retrain when the sensor runs.
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
    args = parser.parse_args(argv)
    names = list(SOURCES) if args.source == "all" else [args.source]
    for name in names:
        kwargs = {"seed": args.seed}
        if args.rows:
            kwargs["rows"] = args.rows
        print(f"{name}: wrote {GENERATORS[name](args.data_dir, **kwargs)}")


if __name__ == "__main__":
    main()
