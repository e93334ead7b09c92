#!/usr/bin/env python3
"""Writes N customer lines of `customers import` (NDJSON) to stdout, for bench/import.sh.

    bench/import_lines.py N [--seed S]

Varied like tests/api/data_tools.rs: every line has a name and a unique
email; a third have a phone, a quarter an address, a fifth metadata. Lines
differ by --seed, so a second file with another seed is all new lines.
"""
import json
import sys


def main() -> None:
    args = sys.argv[1:]
    seed = ""
    if "--seed" in args:
        at = args.index("--seed")
        seed = args[at + 1]
        del args[at : at + 2]
    count = int(args[0])
    out = sys.stdout
    write = out.write
    for n in range(count):
        tag = f".{seed}" if seed else ""
        customer = {"name": f"Customer {n} Ünïcode{tag}", "email": f"c{n}{tag}@example.com"}
        if n % 3 == 0:
            customer["phone"] = f"+4420794600{n % 100:02d}"
        if n % 4 == 0:
            customer["address"] = {"line1": f"{n} Main St", "city": "London", "country": "GB"}
        if n % 5 == 0:
            customer["metadata"] = {"crm_id": str(n), "tier": "gold"}
        write(json.dumps(customer, ensure_ascii=False, separators=(",", ":")))
        write("\n")


if __name__ == "__main__":
    main()
