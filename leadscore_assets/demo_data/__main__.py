"""`python -m leadscore_assets.demo_data linkedin --rows 5000 --data-dir data`"""

import argparse

from leadscore_assets.demo_data import byo_table, email_crm, linkedin, saas_crm, web_sessions

GENERATORS = {
    "linkedin": linkedin.write,
    "email_crm": email_crm.write,
    "saas_crm": saas_crm.write,
    "web_sessions": web_sessions.write,
    "byo_table": byo_table.write,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write demo lead exports with known truth.")
    parser.add_argument("source", choices=[*GENERATORS, "all"])
    parser.add_argument("--rows", type=int, default=None, help="contacts to generate (default: the source's)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args(argv)
    names = list(GENERATORS) if args.source == "all" else [args.source]
    for name in names:
        kwargs = {"seed": args.seed}
        if args.rows:
            kwargs["rows"] = args.rows
        print(f"{name}: wrote {GENERATORS[name](args.data_dir, **kwargs)}")


if __name__ == "__main__":
    main()
